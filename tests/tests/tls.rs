//! HTTPS and WSS built into the server: a publisher and a viewer over `wss://` with a private
//! CA made here, video flowing; strangers (plain HTTP on the TLS port, a TLS handshake on the
//! plain port, silent connections, half-finished upgrades) take neither down; a renewed
//! certificate is served without a restart.

use std::sync::Arc;
use std::time::Duration;

use sightline_signaling::auth::Role;
use sightline_signaling::server::tls::TlsFiles;
use sightline_tests::harness::{loopback_server_config, with_tokens};
use sightline_tests::pki::TestPki;
use sightline_tests::raw_http;
use sightline_tests::{HeadlessViewer, SignalClient, TestServer, ViewerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const T: Duration = Duration::from_secs(10);

async fn tls_server(pki: &TestPki) -> TestServer {
    let mut config = with_tokens(loopback_server_config());
    config.tls = Some(TlsFiles {
        cert: pki.cert_path(),
        key: pki.key_path(),
    });
    // The harness's own API calls (camera online?) go through the plain loopback door.
    config.plain_loopback = true;
    TestServer::start_with(config).await.unwrap()
}

/// A TLS connection to the server trusting `trust`, for the name `localhost`.
async fn tls_connect(
    server: &TestServer,
    trust: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.http_addr()).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    TlsConnector::from(trust).connect(name, tcp).await
}

async fn hello_over_wss(
    server: &TestServer,
    trust: Arc<rustls::ClientConfig>,
) -> anyhow::Result<()> {
    let token = server.token(Role::View, "*").unwrap();
    let url = format!("{}?token={token}", server.ws_url());
    let (_c, _) = SignalClient::connect_hello_tls(&url, Some(trust), T).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_and_a_viewer_over_wss_with_video() {
    let pki = TestPki::new("Sightline test CA", &["localhost", "127.0.0.1"]).unwrap();
    let server = tls_server(&pki).await;
    assert!(server.ws_url().starts_with("wss://"), "{}", server.ws_url());

    let mut camera = server.publisher_config("cam-tls");
    camera.ca_file = Some(pki.ca_path());
    let _publisher = server.start_publisher(camera).await.unwrap();

    let mut config = ViewerConfig::new(server.ws_url(), "cam-tls");
    config.token = server.token(Role::View, "cam-tls");
    config.tls = Some(pki.client_config());
    let mut viewer = HeadlessViewer::connect(config).await.unwrap();
    let frame = viewer.next_frame(T).await.unwrap();
    assert!(frame.width > 0 && frame.height > 0);
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_do_not_take_the_tls_server_down() {
    let pki = TestPki::new("Sightline test CA", &["localhost", "127.0.0.1"]).unwrap();
    let server = tls_server(&pki).await;

    // Plain HTTP on the TLS port: no answer that looks like HTTP, the connection just ends.
    let plain = TcpStream::connect(server.http_addr()).await.unwrap();
    let r = raw_http::request(plain, "GET", "/api/cameras", &[], "").await;
    assert!(r.is_err(), "plain HTTP got an HTTP answer: {r:?}");

    // Silent TCP connections (no handshake) and half-finished upgrades over TLS, held open.
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(TcpStream::connect(server.http_addr()).await.unwrap());
    }
    let mut half = Vec::new();
    for _ in 0..20 {
        let mut s = tls_connect(&server, pki.client_config()).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        s.flush().await.unwrap();
        half.push(s);
    }

    // Everyone else is still served: WSS and HTTPS.
    hello_over_wss(&server, pki.client_config()).await.unwrap();
    let token = server.token(Role::View, "*").unwrap();
    let auth = format!("Bearer {token}");
    let s = tls_connect(&server, pki.client_config()).await.unwrap();
    let r = raw_http::request(s, "GET", "/api/cameras", &[("Authorization", &auth)], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // A client that does not trust the certificate is refused by its own side, and the
    // server goes on.
    let stranger = TestPki::new("Some other CA", &["localhost", "127.0.0.1"]).unwrap();
    assert!(tls_connect(&server, stranger.client_config())
        .await
        .is_err());
    hello_over_wss(&server, pki.client_config()).await.unwrap();
    drop((held, half));
    server.shutdown().await;
}

/// The plain HTTP server too: a TLS handshake sent to it, and half-finished upgrades held
/// open (slow loris), leave everyone else served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_do_not_take_the_plain_server_down() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let pki = TestPki::new("Sightline test CA", &["localhost", "127.0.0.1"]).unwrap();
    assert!(tls_connect(&server, pki.client_config()).await.is_err());
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(server.http_addr()).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    let token = server.token(Role::View, "*").unwrap();
    let url = format!("{}?token={token}", server.ws_url());
    SignalClient::connect_hello(&url, T).await.unwrap();
    drop(held);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let old = TestPki::new("Old CA", &["localhost", "127.0.0.1"]).unwrap();
    let renewed = TestPki::new("New CA", &["localhost", "127.0.0.1"]).unwrap();
    let server = tls_server(&old).await;
    hello_over_wss(&server, old.client_config()).await.unwrap();
    assert!(hello_over_wss(&server, renewed.client_config())
        .await
        .is_err());

    old.install_from(&renewed).unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while hello_over_wss(&server, renewed.client_config())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not picked up within {T:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        hello_over_wss(&server, old.client_config()).await.is_err(),
        "the old certificate is still served"
    );
    server.shutdown().await;
}
