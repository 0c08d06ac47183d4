//! Viewers on real networks: headless Chromium inside a site of the topology harness
//! (`tests/scripts/topology`: hosts behind nftables NATs hanging off the test namespace,
//! where the server, the camera and coturn run). Skips loudly outside the test namespace.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sightline_signaling::ice::IceConfig;
use sightline_tests::browser::{netns_or_skip, Browser, BrowserOptions};
use sightline_tests::coturn::Coturn;
use sightline_tests::harness::TestServer;
use sightline_tests::page::{
    assert_decoding, chromium_with, on_page, page_camera, page_server, page_server_config,
    PLAY_TIMEOUT,
};
use sightline_tests::topology::{Site, Topology};

const SECRET: &str = "networks-test-turn-secret-42";

/// Chromium on the host of `site`.
async fn chromium_at(topology: &Topology, site: Site) -> anyhow::Result<Arc<Browser>> {
    chromium_with(BrowserOptions {
        netns: Some(topology.host_ns(site)),
        ..BrowserOptions::default()
    })
    .await
}

/// Open the page, check it decodes, then wait until the page's route (from the selected
/// candidate pair) is `via` over `protocol`; returns the route's text.
async fn plays_by(
    browser: &Arc<Browser>,
    url: String,
    via: &'static str,
    protocol: &'static str,
    shot: &'static str,
) -> anyhow::Result<String> {
    on_page(browser, shot, move |b| {
        b.goto(&url)?;
        assert_decoding(b, 320, 240)?;
        let check = format!(
            "const r = window.sightline.stats.route;
             return r && r.via === '{via}' && r.protocol === '{protocol}' ? r.text : null;"
        );
        let text = b.wait_for(&check, PLAY_TIMEOUT)?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    })
    .await
}

/// The office lets no UDP out: ICE over TCP to the SFU's media port carries the video,
/// with no TURN server anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_viewer_plays_over_ice_tcp() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("an_office_viewer_plays_over_ice_tcp") else {
        return Ok(());
    };
    let topology = Topology::up()?;
    let server = page_server(ip, ip, false).await?;
    let camera = page_camera(&server, "cam-office", 320, 240);
    let browser = chromium_at(&topology, Site::Office).await?;
    let url = server.http_url();
    let result = plays_by(&browser, url, "server", "tcp", "office-ice-tcp.png").await;
    let stats = server.sfu().stats().await;
    drop(browser);
    camera.stop().await;
    server.shutdown().await;
    let text = result?;
    assert_eq!(text, "via the server (TCP)");
    assert!(stats.tcp_connections >= 1, "{stats:?}");
    Ok(())
}

/// With ICE-TCP off, the same office viewer gets through a real coturn over TCP, with the
/// credentials the server minted for its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ice_tcp_an_office_viewer_plays_through_turn_over_tcp() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("without_ice_tcp_an_office_viewer_plays_through_turn_over_tcp")
    else {
        return Ok(());
    };
    let topology = Topology::up()?;
    let coturn = Coturn::start(ip, ip, SECRET).await?;
    let server = turn_only_server(ip, coturn.port).await?;
    let camera = page_camera(&server, "cam-office-turn", 320, 240);
    let browser = chromium_at(&topology, Site::Office).await?;
    let url = server.http_url();
    let result = plays_by(&browser, url, "relay", "tcp", "office-turn-tcp.png").await;
    let stats = server.sfu().stats().await;
    drop(browser);
    camera.stop().await;
    server.shutdown().await;
    let text = result.map_err(|e| e.context(coturn.log()))?;
    assert_eq!(text, "relayed by TURN (TCP)");
    assert_eq!(stats.tcp_connections, 0, "no ICE-TCP: {stats:?}");
    Ok(())
}

/// A page server without ICE-TCP, handing out TURN over TCP on coturn at `ip:port`.
async fn turn_only_server(ip: IpAddr, port: u16) -> anyhow::Result<TestServer> {
    let mut config = page_server_config(ip, ip)?;
    config.sfu.tcp_port = None;
    config.ice = IceConfig {
        stun_urls: Vec::new(),
        turn_urls: vec![format!(
            "turn:{}?transport=tcp",
            SocketAddr::new(ip, port)
        )],
        turn_secret: Some(SECRET.as_bytes().to_vec()),
        turn_ttl: Duration::from_secs(600),
    };
    TestServer::start_with(config).await
}
