//! A private certificate authority made in the test: a CA, a server certificate it signs,
//! PEM files on disk for the server's `--tls-cert`/`--tls-key` and the publisher's
//! `--ca-file`, and a rustls client configuration that trusts the CA.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::temp::TempPath;

/// A CA and one server certificate signed by it, written to a temporary folder.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// base64 of the SHA-256 of the server certificate's public key (SPKI): what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes to trust exactly this certificate.
    pub spki_sha256_base64: String,
    dir: TempPath,
}

impl TestPki {
    /// A new CA named `ca_name` and a certificate for `names` (DNS names or IP addresses).
    pub fn new(ca_name: &str, names: &[&str]) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sightline test server");
        let cert = params.signed_by(&key, &issuer)?;

        use base64::Engine as _;
        use sha2::Digest as _;
        let spki = sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key));
        let pki = TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            spki_sha256_base64: base64::engine::general_purpose::STANDARD.encode(spki),
            dir: TempPath::dir("pki")?,
        };
        pki.write_files()?;
        Ok(pki)
    }

    fn write_files(&self) -> anyhow::Result<()> {
        for (path, pem) in [
            (self.ca_path(), &self.ca_pem),
            (self.cert_path(), &self.cert_pem),
            (self.key_path(), &self.key_pem),
        ] {
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_path(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Put another CA's certificate and key in this one's server files (a renewal).
    pub fn install_from(&self, other: &TestPki) -> anyhow::Result<()> {
        // Key first: a reload between the two writes then fails (mismatch) and is retried
        // at the next change, instead of serving a half-renewed pair.
        std::fs::write(self.key_path(), &other.key_pem)?;
        std::fs::write(self.cert_path(), &other.cert_pem)?;
        Ok(())
    }

    /// A TLS client configuration that trusts this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("our own PEM")).expect("our own CA");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }
}
