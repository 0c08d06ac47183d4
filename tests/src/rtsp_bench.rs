//! `bench rtsp`: what an RTSP camera costs the publisher (issue 3).
//!
//! (a) Passthrough, 1280×720 at 30 fps Constrained Baseline from a real GStreamer RTSP
//!     server (x264), over RTP-in-TCP and over UDP: the latency the source adds (from retina
//!     reading the frame's last packet off the socket to the access unit returned by
//!     `next_frame`) and CPU per frame (the source's `sl-rtsp` thread plus the thread
//!     calling `next_frame`, from /proc schedstat).
//! (b) For comparison, the re-encode path's first half: High with B-frames, decoded in the
//!     source (the publisher's encode comes on top, see `bench encode`).
//! (c) Glass-to-glass through everything: the RTSP server stamps each picture's barcode
//!     before x264 encodes it; RTSP → publisher (passthrough) → SFU → headless viewer decode.
//!
//! The RTSP server (Python + GStreamer) runs on the same two cores and competes for them.

use std::time::Duration;

use anyhow::{bail, Context};
use sightline_publisher::barcode::{now_us, tag_for};
use sightline_publisher::source::{self, Payload, SourceSpec, SourceUrl};

use sightline_tests::harness::publisher_config;
use sightline_tests::rtsp_server::{RtspServer, RtspServerConfig};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;
/// Frames measured per run (10 s at 30 fps), after a warm-up.
const FRAMES: usize = 300;
const WARM_UP: usize = 30;

pub async fn run() -> anyhow::Result<()> {
    println!("## RTSP passthrough (issue 3)");
    source_cost(
        "passthrough, TCP interleaved",
        "constrained-baseline",
        0,
        "",
    )
    .await?;
    source_cost(
        "passthrough, UDP",
        "constrained-baseline",
        0,
        "?transport=udp",
    )
    .await?;
    source_cost(
        "re-encode path (decode only), High + B-frames, TCP",
        "high",
        2,
        "",
    )
    .await?;
    glass_to_glass().await?;
    Ok(())
}

fn server_config(profile: &str, bframes: u32, camera: &str) -> RtspServerConfig {
    RtspServerConfig {
        profile: profile.into(),
        bframes,
        width: W,
        height: H,
        fps: FPS,
        kbps: 2000,
        busy: true,
        tag: tag_for(camera),
        ..RtspServerConfig::default()
    }
}

/// What one source run measured.
struct Figures {
    added_us: Vec<f64>,
    cpu_per_frame_us: f64,
    path: String,
    passed_through: usize,
    decoded: usize,
    mean_bytes: f64,
}

async fn source_cost(label: &str, profile: &str, bframes: u32, query: &str) -> anyhow::Result<()> {
    let server = RtspServer::start(server_config(profile, bframes, "bench")).await?;
    let url = format!("{}{query}", server.url("/cam"));
    let mut f = tokio::task::spawn_blocking(move || measure(url)).await??;
    println!(
        "RTSP {label}, {W}x{H}@{FPS} ({}): {} passed through, {} decoded, {:.0} bytes per frame",
        f.path, f.passed_through, f.decoded, f.mean_bytes
    );
    percentiles(
        "  added latency, packet read → access unit handed on (µs)",
        &mut f.added_us,
    );
    println!(
        "  CPU per frame (source thread + caller): {:.0} µs = {:.2} % of one core at {FPS} fps{}",
        f.cpu_per_frame_us,
        f.cpu_per_frame_us * FPS as f64 / 1e4,
        if f.decoded == 0 {
            "  (target: no decode, < 1 ms per frame)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Take frames from the source on this (blocking) thread and time them.
fn measure(url: String) -> anyhow::Result<Figures> {
    let mut spec = SourceSpec::new(SourceUrl::Rtsp { url }, "bench");
    spec.read_timeout = Duration::from_secs(5);
    let mut src = source::open(&spec)?;
    for _ in 0..WARM_UP {
        src.next_frame()?;
    }
    let worker = find_thread(source::rtsp::THREAD_NAME)?;
    let (worker0, caller0) = (thread_cpu_ns(&worker)?, thread_cpu_ns("/proc/thread-self")?);
    let mut f = Figures {
        added_us: Vec::with_capacity(FRAMES),
        cpu_per_frame_us: 0.0,
        path: String::new(),
        passed_through: 0,
        decoded: 0,
        mean_bytes: 0.0,
    };
    let mut bytes = 0usize;
    for _ in 0..FRAMES {
        let frame = src.next_frame()?;
        f.added_us
            .push(now_us().saturating_sub(frame.capture_us) as f64);
        match frame.payload {
            Payload::H264(au) => {
                f.passed_through += 1;
                bytes += au.data.len();
            }
            Payload::Raw(_) => f.decoded += 1,
        }
    }
    let cpu_ns =
        (thread_cpu_ns(&worker)? - worker0) + (thread_cpu_ns("/proc/thread-self")? - caller0);
    f.cpu_per_frame_us = cpu_ns as f64 / 1000.0 / FRAMES as f64;
    f.mean_bytes = bytes as f64 / f.passed_through.max(1) as f64;
    f.path = src.detail().unwrap_or_default();
    Ok(f)
}

/// RTSP server's capture → decoded in a headless viewer, with the publisher passing the
/// camera's H.264 through.
async fn glass_to_glass() -> anyhow::Result<()> {
    const CAMERA: &str = "bench-rtsp";
    let rtsp = RtspServer::start(server_config("constrained-baseline", 0, CAMERA)).await?;
    let server = TestServer::start().await?;
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    (cfg.width, cfg.height, cfg.fps) = (W, H, FPS);
    cfg.source = SourceUrl::Rtsp {
        url: rtsp.url("/cam"),
    };
    let _publisher = server.start_publisher(cfg).await?;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA)).await?;
    viewer.next_frame(Duration::from_secs(15)).await?;
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut samples = Vec::new();
    while tokio::time::Instant::now() < end {
        let f = viewer.next_frame(Duration::from_secs(5)).await?;
        if let Some(stamp) = f.stamp {
            samples.push(f.received_at_us.saturating_sub(stamp.capture_us) as f64 / 1000.0);
        }
    }
    if samples.is_empty() {
        bail!("the viewer read no barcodes");
    }
    percentiles(
        "glass-to-glass, RTSP server capture → x264 → RTSP → publisher (passthrough) → SFU → \
         viewer decode, 720p30 (ms)",
        &mut samples,
    );
    viewer.close().await;
    server.shutdown().await;
    Ok(())
}

fn percentiles(what: &str, samples: &mut [f64]) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: n={} p50={:.1} p95={:.1} max={:.1}",
        samples.len(),
        pct(0.5),
        pct(0.95),
        samples[samples.len() - 1]
    );
}

/// `/proc/self/task/TID` of this process's thread called `name`.
fn find_thread(name: &str) -> anyhow::Result<String> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let dir = entry?.path();
        if std::fs::read_to_string(dir.join("comm"))?.trim() == name {
            return Ok(dir.display().to_string());
        }
    }
    bail!("no thread named {name}")
}

/// Nanoseconds a thread has spent on CPU (first field of its schedstat).
fn thread_cpu_ns(task_dir: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("{task_dir}/schedstat"))?;
    s.split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()
        .context("schedstat")
}
