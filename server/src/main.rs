//! `sightline`: the server binary. Signaling (HTTP + WebSocket) and the SFU (one UDP port) in
//! one process; with `--demo`, also a built-in test-pattern camera publishing to itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_publisher::PublisherConfig;
use sightline_sfu::SfuConfig;
use sightline_signaling::server::{self, ServerConfig};

/// Sightline: live camera video to browsers through a WebRTC SFU.
///
/// Serves the web viewer at http://HTTP/, signaling at ws://HTTP/ws, the camera list at
/// /api/cameras, and forwards media on one UDP port. Publishers (`sightline-publisher`)
/// connect out to it; viewers open the web page. Log detail is set by RUST_LOG
/// (e.g. RUST_LOG=debug).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// HTTP address for the web viewer, the API and WebSocket signaling.
    #[arg(long, env = "SIGHTLINE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,

    /// UDP port for all WebRTC media (every publisher and viewer shares it).
    #[arg(long, env = "SIGHTLINE_UDP_PORT", default_value_t = 8090)]
    udp_port: u16,

    /// Local IP address to receive media on and advertise to peers; repeat for several.
    /// Default: every local IPv4 address, loopback included.
    #[arg(long = "media-ip", env = "SIGHTLINE_MEDIA_IPS", value_delimiter = ',')]
    media_ips: Vec<IpAddr>,

    /// Public address to advertise too, when the server sits behind a 1:1 NAT (cloud VMs).
    #[arg(long, env = "SIGHTLINE_PUBLIC_IP")]
    public_ip: Option<IpAddr>,

    /// Key that lets a viewer control cameras (settings, presets, start/stop): a viewer
    /// presents it in its subscribe message (`control_key`); one without it watches
    /// view-only, a wrong one is refused. WITHOUT a key, viewers connecting from this
    /// machine (loopback, as in the demo) may control and all others are view-only; behind a
    /// reverse proxy on this host every viewer looks local, so set a key there.
    #[arg(long, env = "SIGHTLINE_CONTROL_KEY", hide_env_values = true)]
    control_key: Option<String>,

    /// Folder with the web client. Default: the `web-client` folder of this source tree.
    #[arg(long, env = "SIGHTLINE_WEB_ROOT")]
    web_root: Option<PathBuf>,

    /// Also run a built-in test-pattern camera (id `demo`) that publishes to this server.
    #[arg(long)]
    demo: bool,

    /// Width of the demo camera's picture, in pixels.
    #[arg(long, default_value_t = 1280)]
    demo_width: u32,
    /// Height of the demo camera's picture, in pixels.
    #[arg(long, default_value_t = 720)]
    demo_height: u32,
    /// Frame rate of the demo camera.
    #[arg(long, default_value_t = 30)]
    demo_fps: u32,
}

/// The address a local client uses for a listening address (`0.0.0.0` → `127.0.0.1`).
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let web_root = match args.web_root {
        Some(dir) => Some(dir),
        None => {
            let built_in = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client"));
            if built_in.join("index.html").is_file() {
                Some(built_in)
            } else {
                tracing::warn!(
                    "no web client found at {}; pass --web-root to serve the viewer",
                    built_in.display()
                );
                None
            }
        }
    };
    let config = ServerConfig {
        http_addr: args.http,
        web_root,
        sfu: SfuConfig {
            udp_port: args.udp_port,
            bind_ips: args.media_ips,
            public_ip: args.public_ip,
            ..SfuConfig::default()
        },
        control_key: args.control_key.filter(|k| !k.is_empty()),
    };
    let server = server::start(config).await.context("starting the server")?;

    if args.demo {
        // The demo camera reaches the server the way any publisher does: over signaling and
        // ICE, through loopback.
        let ws = format!("ws://{}/ws", reachable(server.http_addr));
        let mut camera = PublisherConfig::new(ws, "demo");
        camera.name = "Test pattern".into();
        camera.width = args.demo_width;
        camera.height = args.demo_height;
        camera.fps = args.demo_fps;
        camera.keyframe_interval = Duration::from_secs(10);
        tokio::spawn(async move {
            if let Err(e) = sightline_publisher::run(camera).await {
                tracing::error!(error = %e, "demo camera stopped");
            }
        });
    }

    let url = format!("http://{}", reachable(server.http_addr));
    println!();
    println!("  Sightline is running. Open {url} in a browser.");
    println!(
        "  Media on UDP {:?}. Press Ctrl-C to stop.",
        server.sfu.local_addrs()
    );
    println!();

    tokio::signal::ctrl_c().await.ok();
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
