//! `bench paths`: each network path a viewer can take (issue 9), measured with headless
//! Chromium on a host of the topology harness and the publisher binary at home behind its
//! NAT (720p30), the server and coturn in the bench's own namespace. Per path: time to first
//! frame over 20 page loads (navigation start → first frame presented), glass-to-glass from
//! the test pattern's barcode as the page reads it.
//! Needs the test namespace (`scripts/netns`) and root, like the network tests.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use sightline_tests::browser::{netns_ip, Browser};
use sightline_tests::coturn::Coturn;
use sightline_tests::harness::{get_json, wait_until, TestServer};
use sightline_tests::page::{chromium_in, on_page, page_server_config};
use sightline_tests::topology::{Site, Topology};

use super::{report, FPS, H, W};

const JOINS: usize = 20;
/// After each first frame, time for the page's barcode reader to take readings.
const WATCH: Duration = Duration::from_secs(2);
const SECRET: &str = "bench-paths-turn-secret-0123";

/// One way from the camera to the viewer.
struct Path {
    /// What `bench paths KEY...` picks it by.
    key: &'static str,
    name: &'static str,
    site: Site,
    ice_tcp: bool,
    /// TURN (`udp` or `tcp` transport) handed to clients.
    turn: Option<&'static str>,
    /// STUN handed to clients (so both ends of a direct path learn their public address).
    stun: bool,
    /// The page's query: `?relay=1` (TURN only), `?mode=p2p` (straight from the camera).
    query: &'static str,
    /// What the page's route must say.
    via: &'static str,
    protocol: &'static str,
}

const PATHS: [Path; 5] = [
    Path {
        key: "udp",
        name: "UDP (cafe, behind NAT)",
        site: Site::Cafe,
        ice_tcp: true,
        turn: None,
        stun: false,
        query: "",
        via: "server",
        protocol: "udp",
    },
    Path {
        key: "ice-tcp",
        name: "ICE-TCP (office, no UDP out)",
        site: Site::Office,
        ice_tcp: true,
        turn: None,
        stun: false,
        query: "",
        via: "server",
        protocol: "tcp",
    },
    Path {
        key: "turn-udp",
        name: "TURN over UDP (phone, symmetric NAT, ?relay=1)",
        site: Site::Phone,
        ice_tcp: true,
        turn: Some("udp"),
        stun: false,
        query: "?relay=1",
        via: "relay",
        protocol: "udp",
    },
    Path {
        key: "turn-tcp",
        name: "TURN over TCP (office, ICE-TCP off)",
        site: Site::Office,
        ice_tcp: false,
        turn: Some("tcp"),
        stun: false,
        query: "",
        via: "relay",
        protocol: "tcp",
    },
    Path {
        key: "p2p",
        name: "P2P direct (cafe, ?mode=p2p, STUN)",
        site: Site::Cafe,
        ice_tcp: true,
        turn: None,
        stun: true,
        query: "?mode=p2p",
        via: "direct",
        protocol: "udp",
    },
];

/// Stamps the first presented frame of each page load, before the page's own scripts run.
const FIRST_FRAME: &str = r#"
    window.__firstFrameAt = null;
    document.addEventListener('DOMContentLoaded', () => {
      const v = document.querySelector('video');
      if (v && v.requestVideoFrameCallback) {
        v.requestVideoFrameCallback(() => { window.__firstFrameAt = performance.now(); });
      }
    });
"#;

/// Measure the paths whose keys are among `args` (every path when none is).
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let named = |p: &Path| args.iter().any(|a| a == p.key);
    let picked: Vec<&Path> = if PATHS.iter().any(named) {
        PATHS.iter().filter(|p| named(p)).collect()
    } else {
        PATHS.iter().collect()
    };
    println!("## Network paths (issue 9): {W}x{H}@{FPS} from home, Chromium per site");
    let ip = netns_ip()?
        .context("run inside the test namespace: scripts/netns target/release/bench paths")?;
    let topology = Topology::up()?;
    let coturn = Coturn::start(ip, ip, SECRET).await?;
    for path in picked {
        measure(&topology, ip, &coturn, path)
            .await
            .with_context(|| format!("{}: {}", path.name, coturn.log()))?;
    }
    Ok(())
}

async fn measure(
    topology: &Topology,
    ip: std::net::IpAddr,
    coturn: &Coturn,
    path: &Path,
) -> anyhow::Result<()> {
    let mut config = page_server_config(ip, ip)?;
    if !path.ice_tcp {
        config.sfu.tcp_port = None;
    }
    if let Some(transport) = path.turn {
        config.ice = coturn.ice_config(transport);
    }
    if path.stun {
        config.ice.stun_urls = vec![coturn.stun_url()];
    }
    let server = TestServer::start_with(config).await?;
    let _publisher = topology.publisher(Site::Home, &server.ws_url(), "bench-path", (W, H))?;
    let base = server.http_url();
    wait_until(Duration::from_secs(15), "camera online", async || {
        let cams = get_json(format!("{base}/api/cameras")).await.ok()?;
        (cams.as_array()?.iter().any(|c| c["state"] == "online")).then_some(())
    })
    .await?;
    let browser = chromium_in(topology.host_ns(path.site)).await?;
    browser.add_init_script(FIRST_FRAME)?;
    let url = format!("{base}/{}", path.query);

    let mut first_frame = Vec::new();
    let mut glass = Vec::new();
    for join in 0..JOINS {
        let url = url.clone();
        let (ms, readings, route) =
            on_page(&browser, "bench-paths.png", move |b| join_once(b, &url)).await?;
        first_frame.push(ms);
        glass.extend(readings);
        if join == 0 {
            ensure!(
                route["via"] == path.via && route["protocol"] == path.protocol,
                "expected {} over {}, the page says {route}",
                path.via,
                path.protocol
            );
        }
    }
    drop(browser);
    server.shutdown().await;

    println!("### {}", path.name);
    report(
        "first frame, page load → presented (ms)",
        &mut first_frame,
        "",
    );
    report("glass-to-glass (ms)", &mut glass, "");
    Ok(())
}

/// One page load: ms from navigation start to the first frame, then the page's barcode
/// readings (glass-to-glass, ms) and its route.
fn join_once(b: &Browser, url: &str) -> anyhow::Result<(f64, Vec<f64>, Value)> {
    b.goto("about:blank")?;
    b.goto(url)?;
    let at = b.wait_for("return window.__firstFrameAt;", Duration::from_secs(30))?;
    std::thread::sleep(WATCH);
    let readings: Vec<f64> = b
        .execute("return window.sightline.latencyReadings;", &[])?
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let route = b.execute("return window.sightline.stats.route;", &[])?;
    Ok((at.as_f64().unwrap_or(f64::NAN), readings, route))
}
