//! `sightline-publisher`: publish a video source to a Sightline server over WebRTC.

use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use sightline_publisher::source::SourceUrl;
use sightline_publisher::units::parse_bitrate;
use sightline_publisher::PublisherConfig;

#[derive(Debug, Parser)]
#[command(name = "sightline-publisher", version, about)]
/// Publish a camera (or a synthetic test pattern) to a Sightline server. Connects out only,
/// and reconnects by itself whenever the server or the network goes away.
struct Args {
    /// Signaling WebSocket URL of the server.
    #[arg(
        long,
        env = "SIGHTLINE_SERVER",
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    server: String,
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
    ///   esp32-push://ADDR:PORT  listen for devices that connect out and push JPEGs;
    ///   http(s)://...           MJPEG stream (multipart/x-mixed-replace) or JPEG snapshot
    ///                           URL (polled at --poll-fps);
    ///   rtsp://[USER:PASS@]HOST[:PORT]/PATH   H.264 IP camera (passed through when
    ///                           browser-safe, re-encoded otherwise);
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
    let mut config = PublisherConfig::new(args.server, args.camera_id);
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
    tokio::select! {
        r = sightline_publisher::run(config) => r,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; exiting");
            Ok(())
        }
    }
}
