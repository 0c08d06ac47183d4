//! HTTPS and WSS on the `--http` address: rustls (ring) under axum, with the certificate
//! re-read when its files change or on SIGHUP, so a renewed certificate needs no restart.
//!
//! Handshakes run in their own tasks with a time limit, so a client that opens a connection
//! and says nothing (or speaks plain HTTP to this port) holds nothing but its own socket.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// `--tls-cert` and `--tls-key`: PEM files (the certificate chain, leaf first; the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A client must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once; more wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;
/// How often the files' modification times are looked at.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The current certificate, swapped in place when the files change.
#[derive(Clone)]
pub struct Reloading {
    files: TlsFiles,
    current: Arc<RwLock<TlsAcceptor>>,
}

impl Reloading {
    /// Load the certificate now; errors name the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&files)?));
        Ok(Reloading {
            files,
            current: Arc::new(RwLock::new(acceptor)),
        })
    }

    fn acceptor(&self) -> TlsAcceptor {
        self.current.read().unwrap().clone()
    }

    /// Re-read the files; on error keep serving the old certificate.
    fn reload(&self, why: &str) {
        match server_config(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap() = TlsAcceptor::from(Arc::new(config));
                tracing::info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                why,
                "TLS certificate not reloaded; still serving the previous one"
            ),
        }
    }

    /// Reload when either file's modification time changes, or on SIGHUP, until shutdown.
    pub fn watch(&self, mut shutdown: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = this.stamps();
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = tick.tick() => {
                        let now = this.stamps();
                        if now != seen {
                            seen = now;
                            this.reload("files changed");
                        }
                    }
                    _ = hup => this.reload("SIGHUP"),
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    fn stamps(&self) -> [Option<SystemTime>; 2] {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        [modified(&self.files.cert), modified(&self.files.key)]
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading --tls-cert {}", files.cert.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no CERTIFICATE in it", files.cert.display());
    }
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("reading --tls-key {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!(
            "{}: no usable PRIVATE KEY in it ({e:?})",
            files.key.display()
        )
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .with_context(|| {
                format!(
                    "{} and {} do not make a usable certificate and key",
                    files.cert.display(),
                    files.key.display()
                )
            })?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A listener for `axum::serve` that yields finished TLS connections.
pub(crate) struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, tls: Reloading) -> Self {
        let local = tcp.local_addr().expect("a bound listener has an address");
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, tls, tx));
        TlsListener { local, ready }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Reloading,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (mut stream, remote) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = ready.closed() => return,
        };
        super::tune_socket(&mut stream);
        let acceptor = tls.acceptor();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
