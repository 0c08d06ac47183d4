//! `bench control`: camera control figures (issue 4).
//!
//! (a) Time from sending a settings command to the first decoded frame at the new setting,
//!     over alternating changes, for picture size (first frame of the new size), frame rate
//!     (first pair of frames whose capture times are the new rate's interval apart, ±25 %)
//!     and bitrate (first moment the trailing 1 s of received H.264 payload is within ±20 %
//!     of the new target; the window may still hold frames from before the command, so this
//!     is when a viewer's bitrate meter would show the new value). The response time (command
//!     sent → response received) is printed beside each.
//! (b) CPU of an idle on-demand publisher: the `sightline-publisher` binary in its own process,
//!     connected and idle, over 30 s (/proc/PID/stat), and the same process while one viewer
//!     watches, for comparison.
//!
//! Everything runs on the real pieces: in-process server (signaling + SFU), webrtc-rs
//! publisher, str0m headless viewer decoding with openh264.

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use sightline_publisher::barcode::now_us;
use sightline_publisher::source::SourceUrl;
use sightline_publisher::PublisherConfig;
use sightline_tests::harness::publisher_config;
use sightline_tests::noisy_movie::noisy_movie;
use sightline_tests::temp::TempPath;
use sightline_tests::{DecodedFrame, HeadlessViewer, TestPublisher, TestServer, ViewerConfig};

use sightline_tests::child::{workspace_binary, ChildGuard};

use super::{process_cpu, report};

/// Changes measured per setting.
const CHANGES: usize = 10;
/// Longest wait for a change to show.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run() -> anyhow::Result<()> {
    println!("## Camera control (issue 4)");
    resolution().await?;
    frame_rate().await?;
    bitrate().await?;
    idle_on_demand_cpu().await?;
    Ok(())
}

/// A server, a publisher with `cfg`, and a viewer with a control channel that has seen the
/// publisher's state and a first frame.
async fn setup(
    cfg: PublisherConfig,
) -> anyhow::Result<(TestServer, TestPublisher, HeadlessViewer)> {
    let server = TestServer::start().await?;
    let mut cfg = cfg;
    cfg.server = server.ws_url();
    let camera = cfg.camera_id.clone();
    let publisher = server.start_publisher(cfg).await?;
    let mut config = ViewerConfig::new(server.ws_url(), camera);
    config.control = true;
    let mut viewer = HeadlessViewer::connect(config).await?;
    viewer.wait_welcome(REPLY_TIMEOUT).await?;
    viewer
        .control()
        .wait_state(REPLY_TIMEOUT, "the publisher's state", |_| true)
        .await?;
    viewer.next_frame(REPLY_TIMEOUT).await?;
    Ok((server, publisher, viewer))
}

/// Send `settings`; returns (send time µs, response time ms). A refusal is an error.
async fn change(
    viewer: &HeadlessViewer,
    settings: serde_json::Value,
) -> anyhow::Result<(u64, f64)> {
    let sent = now_us();
    let r = viewer
        .update_settings(settings.clone(), REPLY_TIMEOUT)
        .await?;
    if !r.success {
        bail!("{settings} refused: {}", r.message);
    }
    Ok((sent, (now_us() - sent) as f64 / 1000.0))
}

async fn resolution() -> anyhow::Result<()> {
    let mut cfg = publisher_config("", "bench-size");
    (cfg.width, cfg.height, cfg.fps) = (1280, 720, 30);
    let (server, publisher, mut viewer) = setup(cfg).await?;
    let (mut to_frame, mut to_reply) = (Vec::new(), Vec::new());
    for i in 0..CHANGES {
        let (w, h) = if i % 2 == 0 { (640, 360) } else { (1280, 720) };
        viewer.clear_events();
        let (sent, reply_ms) = change(&viewer, json!({"width": w, "height": h})).await?;
        let f = first_frame(&mut viewer, |f| (f.width, f.height) == (w, h)).await?;
        to_frame.push((f.received_at_us.saturating_sub(sent)) as f64 / 1000.0);
        to_reply.push(reply_ms);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    report(
        "picture size 1280x720 ⇄ 640x360 (test pattern, 30 fps): command → first decoded frame of the new size (ms)",
        &mut to_frame,
        "",
    );
    report("  same changes: command → response (ms)", &mut to_reply, "");
    viewer.close().await;
    publisher.stop().await;
    server.shutdown().await;
    Ok(())
}

async fn frame_rate() -> anyhow::Result<()> {
    let mut cfg = publisher_config("", "bench-fps");
    (cfg.width, cfg.height, cfg.fps) = (640, 480, 30);
    let (server, publisher, mut viewer) = setup(cfg).await?;
    let (mut to_frame, mut to_reply) = (Vec::new(), Vec::new());
    for i in 0..CHANGES {
        let fps: u32 = if i % 2 == 0 { 10 } else { 30 };
        let want_us = 1_000_000.0 / fps as f64;
        viewer.clear_events();
        let (sent, reply_ms) = change(&viewer, json!({ "fps": fps })).await?;
        let mut prev: Option<DecodedFrame> = None;
        let f = first_frame(&mut viewer, |f| {
            let hit = match (prev.and_then(|p| p.stamp), f.stamp) {
                (Some(a), Some(b)) => {
                    let d = b.capture_us.saturating_sub(a.capture_us) as f64;
                    // Captured after the command, at the new interval.
                    b.capture_us >= sent && (d - want_us).abs() <= want_us * 0.25
                }
                _ => false,
            };
            prev = Some(*f);
            hit
        })
        .await?;
        to_frame.push((f.received_at_us.saturating_sub(sent)) as f64 / 1000.0);
        to_reply.push(reply_ms);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    report(
        "frame rate 30 ⇄ 10 fps (test pattern 640x480): command → first frame pair at the new interval ±25 % (ms)",
        &mut to_frame,
        "",
    );
    report("  same changes: command → response (ms)", &mut to_reply, "");
    viewer.close().await;
    publisher.stop().await;
    server.shutdown().await;
    Ok(())
}

async fn bitrate() -> anyhow::Result<()> {
    let movie = TempPath::file("bench-bitrate.mjpeg", &noisy_movie(640, 480, 20))?;
    let mut cfg = publisher_config("", "bench-bitrate");
    cfg.source = SourceUrl::File {
        path: movie.path().to_owned(),
    };
    (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (640, 480, 15, 300_000);
    let (server, publisher, mut viewer) = setup(cfg).await?;
    let (mut to_rate, mut to_reply) = (Vec::new(), Vec::new());
    let mut missed = 0;
    // (received at µs, payload bytes) of the last second or so.
    let mut window: VecDeque<(u64, usize)> = VecDeque::new();
    settle(&mut viewer, &mut window).await?;
    for i in 0..CHANGES {
        let target: u64 = if i % 2 == 0 { 800_000 } else { 300_000 };
        let (sent, reply_ms) = change(&viewer, json!({ "bitrate": target })).await?;
        to_reply.push(reply_ms);
        let deadline = sent + CHANGE_TIMEOUT.as_micros() as u64;
        let mut reached = None;
        while now_us() < deadline {
            let f = viewer.next_frame(REPLY_TIMEOUT).await?;
            push(&mut window, &f);
            let rate = window.iter().map(|&(_, b)| b as f64 * 8.0).sum::<f64>();
            if f.received_at_us > sent && (rate - target as f64).abs() <= target as f64 * 0.2 {
                reached = Some(f.received_at_us - sent);
                break;
            }
        }
        match reached {
            Some(us) => to_rate.push(us as f64 / 1000.0),
            None => missed += 1,
        }
        settle(&mut viewer, &mut window).await?;
    }
    report(
        "bitrate 300k ⇄ 800k (noisy MJPEG file 640x480, 15 fps): command → trailing 1 s received rate within ±20 % (ms)",
        &mut to_rate,
        "",
    );
    if missed > 0 {
        println!("  {missed} of {CHANGES} changes never reached ±20 % within {CHANGE_TIMEOUT:?}");
    }
    report("  same changes: command → response (ms)", &mut to_reply, "");
    viewer.close().await;
    publisher.stop().await;
    server.shutdown().await;
    Ok(())
}

/// Let the rate settle for 3 s, keeping the window filled.
async fn settle(
    viewer: &mut HeadlessViewer,
    window: &mut VecDeque<(u64, usize)>,
) -> anyhow::Result<()> {
    viewer.clear_events();
    let end = now_us() + 3_000_000;
    while now_us() < end {
        let f = viewer.next_frame(REPLY_TIMEOUT).await?;
        push(window, &f);
    }
    Ok(())
}

/// Add a frame to the trailing one-second window.
fn push(window: &mut VecDeque<(u64, usize)>, f: &DecodedFrame) {
    window.push_back((f.received_at_us, f.bytes));
    while window
        .front()
        .is_some_and(|&(t, _)| t + 1_000_000 <= f.received_at_us)
    {
        window.pop_front();
    }
}

/// The first frame `pick` accepts, within [`CHANGE_TIMEOUT`].
async fn first_frame(
    viewer: &mut HeadlessViewer,
    mut pick: impl FnMut(&DecodedFrame) -> bool,
) -> anyhow::Result<DecodedFrame> {
    let deadline = tokio::time::Instant::now() + CHANGE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = viewer.next_frame(left).await?;
        if pick(&f) {
            return Ok(f);
        }
    }
}

/// The publisher binary, on demand, in its own process: CPU while idle, then while watched.
async fn idle_on_demand_cpu() -> anyhow::Result<()> {
    const IDLE: Duration = Duration::from_secs(30);
    const WATCHED: Duration = Duration::from_secs(10);
    let exe = workspace_binary("sightline-publisher")?;
    let server = TestServer::start().await?;
    let child = ChildGuard(
        Command::new(&exe)
            .args([
                "--server",
                &server.ws_url(),
                "--camera-id",
                "bench-idle",
                "--on-demand",
                "--no-state",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?,
    );
    let pid = child.0.id();
    server
        .wait_camera_online("bench-idle", Duration::from_secs(20))
        .await?;
    // Past start-up work (encoder check, connecting).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames_in = async || server.sfu().stats().await.frames_received;
    let (c0, f0) = (process_cpu(pid)?, frames_in().await);
    tokio::time::sleep(IDLE).await;
    let (c1, f1) = (process_cpu(pid)?, frames_in().await);
    let idle = (c1 - c0).as_secs_f64() / IDLE.as_secs_f64() * 100.0;
    println!(
        "idle on-demand publisher (binary defaults: 1280x720 test pattern, 30 fps): {idle:.2} % of a core over {}s ({:.2} s CPU), {} frames sent meanwhile",
        IDLE.as_secs(),
        (c1 - c0).as_secs_f64(),
        f1 - f0
    );

    let mut viewer =
        HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "bench-idle")).await?;
    viewer.next_frame(Duration::from_secs(15)).await?;
    let c2 = process_cpu(pid)?;
    let end = tokio::time::Instant::now() + WATCHED;
    while tokio::time::Instant::now() < end {
        viewer.next_frame(Duration::from_secs(5)).await?;
    }
    let c3 = process_cpu(pid)?;
    println!(
        "  the same publisher while one viewer watches: {:.1} % of a core over {}s",
        (c3 - c2).as_secs_f64() / WATCHED.as_secs_f64() * 100.0,
        WATCHED.as_secs()
    );
    viewer.close().await;
    drop(child);
    server.shutdown().await;
    Ok(())
}
