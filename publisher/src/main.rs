//! `sightline-publisher`: publish a video source to a Sightline server over WebRTC.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use sightline_publisher::source::SourceUrl;
use sightline_publisher::units::parse_bitrate;
use sightline_publisher::PublisherConfig;

// No `Debug`: the arguments hold the token.
#[derive(Parser)]
#[command(name = "sightline-publisher", version, about)]
/// Publish a camera (or a synthetic test pattern) to a Sightline server. Connects out only,
/// and reconnects by itself whenever the server or the network goes away.
struct Args {
    /// Signaling WebSocket URL of the server: ws://HOST:PORT/ws, or wss://HOST/ws through
    /// TLS (verified against the system's root certificates and --ca-file).
    #[arg(
        long,
        env = "SIGHTLINE_SERVER",
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    server: String,
    /// Token the server asks publishers for, sent as `Authorization: Bearer TOKEN` when
    /// connecting (use wss:// so it is not sent in the clear). Prefer the environment
    /// variable: command lines are visible to other users.
    #[arg(
        long,
        env = "SIGHTLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// PEM file of extra certificates to trust for wss:// (a private CA, or the server's
    /// self-signed certificate), on top of the system's root certificates.
    #[arg(long, env = "SIGHTLINE_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Camera id to register (letters, digits, '-', '_', '.').
    #[arg(long, default_value = "test")]
    camera_id: String,
    /// Human-readable camera name (defaults to the camera id).
    #[arg(long)]
    name: Option<String>,
    /// Video source:
    ///   test-pattern            built-in moving pattern with a frame-number barcode;
    ///   v4l2:0 | v4l2:NAME      USB/V4L2 camera (by index or name; see --list-cameras);
    ///   esp32-tcp://HOST:PORT   ESP32-CAM serving one JPEG per TCP connection (polled at
    ///                           --poll-fps);
    ///   esp32-push://ADDR:PORT[?allow=CIDR[,CIDR...]][&key=KEY]
    ///                           listen for devices that connect out and push JPEGs; only
    ///                           from the allowed address ranges, and (with key=) only
    ///                           after the line `KEY <KEY>`; with neither, only devices on
    ///                           this machine (loopback);
    ///   http(s)://...           MJPEG stream (multipart/x-mixed-replace) or JPEG snapshot
    ///                           URL (polled at --poll-fps);
    ///   rtsp://[USER:PASS@]HOST[:PORT]/PATH[?transport=udp]
    ///                           H.264 IP camera: passed through untouched when browser-safe
    ///                           (Baseline, Constrained Baseline, Main without B-frames),
    ///                           decoded and re-encoded otherwise; RTP interleaved on the
    ///                           RTSP TCP connection unless ?transport=udp (other query
    ///                           parameters go to the camera; %-encode @ : / in passwords);
    ///   file:PATH               MJPEG file (5-digit length before each frame, or plain
    ///                           concatenated JPEGs), looped at --fps.
    #[arg(long, default_value = "test-pattern", value_parser = SourceUrl::from_str, verbatim_doc_comment)]
    source: SourceUrl,
    /// Poll rate (JPEGs per second) for esp32-tcp:// and HTTP snapshot sources.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=120))]
    poll_fps: u32,
    /// Seconds a source may stall mid-read before it is reconnected.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    source_timeout: u64,
    /// Frame width in pixels (even).
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Frame height in pixels (even).
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Target video bitrate in bits/s; suffixes k and M accepted (800k, 2M).
    #[arg(long, default_value = "2M", value_parser = parse_bitrate)]
    bitrate: u32,
    /// Seconds between periodic keyframes (a safety net; viewers also request keyframes).
    /// 0 disables periodic keyframes.
    #[arg(long, default_value_t = 10)]
    keyframe_interval: u64,
    /// Folder where camera settings and presets persist across restarts (one JSON file per
    /// camera id). Default: $XDG_STATE_HOME/sightline, else ~/.local/state/sightline.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep settings in memory only (nothing read or written on disk).
    #[arg(long, conflicts_with = "state_dir")]
    no_state: bool,
    /// Stay connected but idle (no capture, no encoding, no media) until the server reports
    /// a viewer; stop again --idle-stop seconds after the last viewer left.
    #[arg(long)]
    on_demand: bool,
    /// With --on-demand: seconds to keep streaming after the last viewer left.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
    idle_stop: u64,
    /// Send media only through the TURN servers the server hands out (`sightline
    /// --turn-url`): for networks that allow nothing else, or to check TURN works.
    #[arg(long)]
    relay_only: bool,
    /// How many viewers may watch straight from this publisher (P2P: the page's
    /// `?mode=p2p`) at once. Each is one more copy of the stream on this network's uplink;
    /// viewers beyond it, and any whose direct connection fails, watch through the server.
    /// 0 turns direct viewing off.
    #[arg(long, default_value_t = sightline_publisher::config::DEFAULT_P2P_MAX, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(sightline_protocol::wire::MAX_P2P_VIEWERS)))]
    p2p_max: u32,
    /// Print every V4L2 camera with its formats (for --source v4l2:...) and exit.
    #[arg(long)]
    list_cameras: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if args.list_cameras {
        let cameras = sightline_publisher::source::v4l2::list_cameras()?;
        print!(
            "{}",
            sightline_publisher::source::v4l2::format_listing(&cameras)
        );
        return Ok(());
    }
    let mut config = PublisherConfig::new(args.server, args.camera_id);
    // An empty SIGHTLINE_TOKEN means no token.
    config.token = args.token.filter(|t| !t.is_empty());
    config.ca_file = args.ca_file;
    if let Some(name) = args.name {
        config.name = name;
    }
    config.source = args.source;
    config.poll_fps = args.poll_fps;
    config.source_timeout = Duration::from_secs(args.source_timeout);
    config.width = args.width;
    config.height = args.height;
    config.fps = args.fps;
    config.bitrate = args.bitrate;
    config.keyframe_interval = Duration::from_secs(args.keyframe_interval);
    config.state_dir = if args.no_state {
        None
    } else {
        args.state_dir
            .or_else(sightline_publisher::default_state_dir)
    };
    if config.state_dir.is_none() && !args.no_state {
        tracing::warn!("no state folder (set --state-dir or HOME): settings will not persist");
    }
    config.on_demand = args.on_demand;
    config.idle_stop = Duration::from_secs(args.idle_stop);
    config.relay_only = args.relay_only;
    config.p2p_max = args.p2p_max;
    tokio::select! {
        r = sightline_publisher::run(config) => r,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; exiting");
            Ok(())
        }
    }
}
