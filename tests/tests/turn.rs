//! TURN with a real coturn (started by `turn-config/run-coturn`): the server mints
//! credentials for each session, and a publisher that may use nothing but TURN reaches the
//! SFU through the relay. Runs in the test network namespace (the relay, the SFU and coturn
//! on its address), and skips loudly outside it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sightline_protocol::wire::ServerMessage;
use sightline_signaling::ice::IceConfig;
use sightline_tests::browser::netns_or_skip;
use sightline_tests::coturn::Coturn;
use sightline_tests::harness::loopback_server_config;
use sightline_tests::{HeadlessViewer, SignalClient, TestServer, ViewerConfig};

const SECRET: &str = "turn-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// A server whose SFU listens on `ip` only (so media must reach it there, as the relay
/// does) and hands out TURN on coturn at `ip:port`, signed with `secret`.
async fn server_with_turn(ip: IpAddr, port: u16, transport: &str, secret: &str) -> TestServer {
    let mut config = loopback_server_config();
    config.sfu.bind_ips = vec![ip];
    config.ice = IceConfig {
        stun_urls: vec![format!("stun:{}", SocketAddr::new(ip, port))],
        turn_urls: vec![format!(
            "turn:{}?transport={transport}",
            SocketAddr::new(ip, port)
        )],
        turn_secret: Some(secret.as_bytes().to_vec()),
        turn_ttl: Duration::from_secs(600),
    };
    TestServer::start_with(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_carries_stun_and_fresh_turn_credentials() {
    let Some(ip) = netns_or_skip("hello_carries_stun_and_fresh_turn_credentials") else {
        return;
    };
    let server = server_with_turn(ip, 3478, "udp", SECRET).await;
    let mut client = SignalClient::connect(&server.ws_url()).await.unwrap();
    let ServerMessage::Hello { ice_servers, .. } = client.recv_timeout(WAIT).await.unwrap() else {
        panic!("hello first");
    };
    assert_eq!(ice_servers.len(), 2, "{ice_servers:?}");
    assert_eq!(ice_servers[0].urls, vec![format!("stun:{ip}:3478")]);
    assert_eq!(ice_servers[0].username, None);
    let user = ice_servers[1].username.clone().unwrap();
    let (expiry, subject) = user.split_once(':').unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expires in the TTL"
    );
    assert!(subject.starts_with("session-"));
    assert_eq!(
        ice_servers[1].credential.clone().unwrap(),
        sightline_signaling::ice::turn_password(SECRET.as_bytes(), &user)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_publisher_plays_through_a_real_coturn() {
    let Some(ip) = netns_or_skip("a_relay_only_publisher_plays_through_a_real_coturn") else {
        return;
    };
    let coturn = Coturn::start(ip, ip, SECRET).await.unwrap();
    // The publisher's WebRTC stack (webrtc-rs 0.21) allocates over UDP only; TURN over TCP
    // is for browsers.
    for transport in ["udp"] {
        let server = server_with_turn(ip, coturn.port, transport, SECRET).await;
        let camera = format!("cam-turn-{transport}");
        let mut cfg = server.publisher_config(&camera);
        cfg.relay_only = true;
        let _publisher = server.start_publisher(cfg).await.unwrap();
        server.wait_camera_online(&camera, WAIT).await.unwrap();
        let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), &camera))
            .await
            .unwrap();
        for _ in 0..15 {
            let f = viewer.next_frame(WAIT).await.unwrap_or_else(|e| {
                panic!(
                    "no video through TURN over {transport}: {e}\ncoturn:\n{}",
                    coturn.log()
                )
            });
            assert!(f.stamp.is_some());
        }
        viewer.close().await;
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_turn_secret_is_refused_by_coturn_and_the_direct_path_still_works() {
    let Some(ip) = netns_or_skip("a_wrong_turn_secret_is_refused_by_coturn") else {
        return;
    };
    let coturn = Coturn::start(ip, ip, SECRET).await.unwrap();
    let server = server_with_turn(ip, coturn.port, "udp", "not-the-secret-coturn-has").await;
    let mut relayed = server.publisher_config("cam-wrong-secret");
    relayed.relay_only = true;
    let _relayed = server.start_publisher(relayed).await.unwrap();
    let _direct = server.start_camera("cam-direct").await.unwrap();
    server.wait_camera_online("cam-direct", WAIT).await.unwrap();
    let mut direct = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "cam-direct"))
        .await
        .unwrap();
    let mut refused =
        HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "cam-wrong-secret"))
            .await
            .unwrap();
    for _ in 0..15 {
        direct.next_frame(WAIT).await.unwrap();
    }
    assert!(
        refused.next_frame(Duration::from_secs(3)).await.is_err(),
        "no relay without valid credentials"
    );
    let log = coturn.log();
    assert!(log.contains("Cannot find credentials"), "{log}");
    direct.close().await;
    refused.close().await;
    server.shutdown().await;
}
