//! `bench auth`: what authentication and TLS cost.
//!
//! * the token check per connect (HS256 verify, claims, the failure table): µs;
//! * TLS handshakes per second against the server's TLS listener, and CPU per handshake
//!   (client and server run in this one process, so the CPU figure counts both sides: the
//!   server alone does better);
//! * glass-to-glass and subscribe → first frame with tokens over `ws://` and over `wss://`:
//!   TLS only carries signaling, so media should not notice.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_signaling::auth::{Auth, AuthMode, Role, Scope};
use sightline_signaling::server::tls::TlsFiles;
use sightline_tests::harness::{loopback_server_config, test_token_keys, with_tokens};
use sightline_tests::pki::TestPki;
use sightline_tests::TestServer;

use super::{join_on, latency_on, process_cpu, report, BenchTls};

pub async fn run() -> anyhow::Result<()> {
    token_check();
    tls_handshakes().await?;
    for tls in [false, true] {
        let (server, how, label) = if tls {
            let pki = TestPki::new("bench CA", &["localhost", "127.0.0.1"])?;
            let mut config = with_tokens(loopback_server_config());
            config.tls = Some(TlsFiles {
                cert: pki.cert_path(),
                key: pki.key_path(),
            });
            config.plain_loopback = true;
            (
                TestServer::start_with(config).await?,
                BenchTls::Trust(pki),
                "wss:// + token",
            )
        } else {
            let config = with_tokens(loopback_server_config());
            (
                TestServer::start_with(config).await?,
                BenchTls::None,
                "ws:// + token",
            )
        };
        latency_on(&server, &how, label).await?;
        join_on(&server, &how, &format!(", {label}")).await?;
        server.shutdown().await;
    }
    Ok(())
}

/// What a connecting client costs the server before it may do anything.
fn token_check() {
    let auth = Auth::new(AuthMode::Tokens(Box::new(test_token_keys())));
    let token = test_token_keys().issue_for(
        Role::Control,
        Scope::Only(vec!["front-door".into(), "garage".into()]),
        Duration::from_secs(3600),
        Some("bench".into()),
    );
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut samples = Vec::new();
    for _ in 0..50 {
        let n = 1000;
        let t = Instant::now();
        for _ in 0..n {
            let grant = auth.admit(ip, Some(&token), Instant::now());
            assert!(grant.is_ok());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    report(
        "token check per connect (µs, each sample the mean of 1000)",
        &mut samples,
        "",
    );
}

/// Full TLS handshakes (no resumption) against the server, 4 clients at once, for 3 s.
async fn tls_handshakes() -> anyhow::Result<()> {
    let pki = TestPki::new("bench CA", &["localhost", "127.0.0.1"])?;
    let mut config = loopback_server_config();
    config.tls = Some(TlsFiles {
        cert: pki.cert_path(),
        key: pki.key_path(),
    });
    let server = TestServer::start_with(config).await?;
    let addr = server.http_addr();
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = process_cpu(std::process::id())?;
    let start = Instant::now();
    let end = start + Duration::from_secs(3);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (done, trust) = (done.clone(), pki.client_config());
        clients.push(tokio::spawn(async move {
            let connector = tokio_rustls::TlsConnector::from(trust);
            while Instant::now() < end {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls_pki_types::ServerName::try_from("localhost")?;
                let _tls = connector.connect(name, tcp).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (process_cpu(std::process::id())? - cpu0).as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    println!(
        "TLS handshakes (ECDSA P-256, TLS 1.3, full): {:.0}/s on this machine; {:.2} ms CPU per \
         handshake counting client and server, so ≥ {:.0} handshakes/s per core for the server",
        n / wall,
        cpu * 1000.0 / n,
        n / cpu
    );
    server.shutdown().await;
    Ok(())
}
