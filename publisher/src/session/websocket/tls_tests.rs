//! [`connect`] against loopback WebSocket servers: `wss://` with a test CA made here (trusted
//! through a `--ca-file`, or not), the token on the upgrade, and refusals at the upgrade.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::*;

const TOKEN: &str = "t0ken-S3CRET";

/// The Authorization header of each upgrade a test server saw (`None`: no header).
type Seen = Arc<Mutex<Vec<Option<String>>>>;

fn test_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Sightline test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for `names`, signed by `ca`, with its key.
fn server_cert(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

/// Write `pem` to a fresh file in the temp folder.
fn pem_file(pem: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "sightline-test-ca-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pem).unwrap();
    path
}

/// How a test server answers upgrades.
#[derive(Clone, Copy)]
enum Answer {
    Accept,
    /// 401 with the JSON body the server side sends.
    Unauthorized,
}

/// A loopback WebSocket server (TLS with `cert`, plain without) recording each upgrade's
/// Authorization header; it serves until the test ends.
// The upgrade callback's signature is tungstenite's, large error and all.
#[allow(clippy::result_large_err)]
async fn server(
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    answer: Answer,
) -> (SocketAddr, Seen) {
    let acceptor = cert.map(|(cert, key)| {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        TlsAcceptor::from(Arc::new(config))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = {
        let seen = Arc::clone(&seen);
        move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock().unwrap().push(auth);
            match answer {
                Answer::Accept => Ok(resp),
                Answer::Unauthorized => Err(tungstenite::http::Response::builder()
                    .status(401)
                    .body(Some(
                        r#"{"code":"unauthorized","message":"token expired"}"#.to_owned(),
                    ))
                    .unwrap()),
            }
        }
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                // Hold each connection until the client goes.
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, record).await {
                            while let Some(Ok(_)) = ws.next().await {}
                        }
                    }
                    None => {
                        if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await {
                            while let Some(Ok(_)) = ws.next().await {}
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn wss(addr: SocketAddr) -> String {
    format!("wss://{addr}/ws")
}

#[tokio::test]
async fn wss_with_the_ca_file_reaches_the_server_with_the_token() {
    let ca = test_ca();
    let (addr, seen) = server(Some(server_cert(&ca, &["127.0.0.1"])), Answer::Accept).await;
    let tls = tls_client_config(Some(&pem_file(&ca.pem()))).unwrap();
    let ws = connect(&wss(addr), Some(TOKEN), &tls).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(format!("Bearer {TOKEN}"))],
        "the token went with the upgrade"
    );
    drop(ws);
    // The same settings serve every attempt.
    let again = connect(&wss(addr), Some(TOKEN), &tls).await;
    assert!(again.is_ok());
}

#[tokio::test]
async fn without_the_ca_the_issuer_is_unknown() {
    let ca = test_ca();
    let (addr, seen) = server(Some(server_cert(&ca, &["127.0.0.1"])), Answer::Accept).await;
    let tls = tls_client_config(None).unwrap();
    let err = format!(
        "{:#}",
        connect(&wss(addr), Some(TOKEN), &tls).await.unwrap_err()
    );
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("pass --ca-file"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no upgrade over a bad TLS session"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_not_valid() {
    let ca = test_ca();
    let (addr, _) = server(
        Some(server_cert(&ca, &["other.example", "www.other.example"])),
        Answer::Accept,
    )
    .await;
    let tls = tls_client_config(Some(&pem_file(&ca.pem()))).unwrap();
    let err = format!(
        "{:#}",
        connect(&wss(addr), Some(TOKEN), &tls).await.unwrap_err()
    );
    assert!(
        err.contains("not valid for 127.0.0.1: it names other.example, www.other.example"),
        "{err}"
    );
}

#[tokio::test]
async fn a_self_signed_server_certificate_can_be_trusted_directly() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let (addr, _) = server(Some((cert.der().clone(), key)), Answer::Accept).await;
    let tls = tls_client_config(Some(&pem_file(&cert.pem()))).unwrap();
    let result = connect(&wss(addr), None, &tls).await;
    assert!(result.is_ok(), "{:#}", result.unwrap_err());
}

#[tokio::test]
async fn plain_ws_works_and_refusals_at_the_upgrade_are_one_clear_line() {
    let tls = tls_client_config(None).unwrap();
    let (addr, seen) = server(None, Answer::Accept).await;
    let ws = connect(&format!("ws://{addr}/ws"), None, &tls)
        .await
        .unwrap();
    drop(ws);
    assert_eq!(*seen.lock().unwrap(), [None], "no token, no header");

    let (addr, _) = server(None, Answer::Unauthorized).await;
    let err = format!(
        "{:#}",
        connect(&format!("ws://{addr}/ws"), Some(TOKEN), &tls)
            .await
            .unwrap_err()
    );
    assert_eq!(
        err,
        "server refused: unauthorized: token expired (HTTP 401 Unauthorized)"
    );
}

#[test]
fn unusable_ca_files_are_errors_naming_the_file() {
    let missing = std::env::temp_dir().join("sightline-no-such-ca.pem");
    let err = format!("{:#}", tls_client_config(Some(&missing)).unwrap_err());
    assert!(err.contains("sightline-no-such-ca.pem"), "{err}");
    let junk = pem_file("not a certificate\n");
    let err = format!("{:#}", tls_client_config(Some(&junk)).unwrap_err());
    assert!(err.contains(&junk.display().to_string()), "{err}");
    assert!(err.contains("no certificate"), "{err}");
}
