//! `bench restart`: how long the picture stays black when the server is killed (SIGKILL)
//! and started again on the same ports, as on a deploy.
//!
//! The server runs in its own process; one publisher (720p30 test pattern) and two headless
//! viewers run here and reconnect by themselves. One viewer asks for keyframes when its
//! decoder needs one, as browsers do; the other never does, so its figure shows what the
//! SFU's own keyframe requests achieve. Inside the test network namespace a headless
//! Chromium plays the web client too. Each round kills the server, waits two seconds,
//! starts it again and times, from that start: the camera back online, each viewer's media
//! connected, and its first decoded frame.

use std::time::{Duration, Instant};

use sightline_publisher::barcode::now_us;

use anyhow::Context;
use sightline_tests::browser::{netns_ip, Browser, BrowserOptions};
use sightline_tests::harness::publisher_config;
use sightline_tests::{HeadlessViewer, TestPublisher, ViewerConfig, ViewerEvent};

use crate::{report, ServerProcess};

const ROUNDS: usize = 5;
const DOWNTIME: Duration = Duration::from_secs(2);
/// Longest wait for the camera to be listed online (again).
const CAMERA_ONLINE: Duration = Duration::from_secs(30);

pub async fn run() -> anyhow::Result<()> {
    scenario(false).await?;
    scenario(true).await
}

/// `demo`: the camera runs inside the server (`sightline --demo`, as `scripts/demo`), so it
/// dies and comes back with it; else it is a publisher of its own that reconnects.
async fn scenario(demo: bool) -> anyhow::Result<()> {
    let page_ip = netns_ip()?;
    let mut server = ServerProcess::start(page_ip, demo)?;
    server.wait_up().await?;
    let ws = server.ws_url();
    let camera = if demo { "demo" } else { "restart" };
    let _publisher = (!demo).then(|| {
        let mut cfg = publisher_config(&ws, camera);
        (cfg.width, cfg.height, cfg.fps) = (1280, 720, 30);
        // Longer than a round: a frame can only come from a keyframe request.
        cfg.keyframe_interval = Duration::from_secs(60);
        TestPublisher::start(cfg)
    });
    server.wait_camera_online(CAMERA_ONLINE).await?;
    let mut viewers = Vec::new();
    for asks in [true, false] {
        let mut config = ViewerConfig::new(ws.clone(), camera);
        config.keyframe_request_on_error = asks;
        viewers.push(HeadlessViewer::connect(config).await?);
    }
    for v in &mut viewers {
        first_frame(v, 0, Duration::from_secs(20)).await?;
    }
    let page = match page_ip {
        Some(_) => Some(Page::open(format!("{}/?camera={camera}", server.http_url())).await?),
        None => {
            println!("(no Chromium figure: run inside scripts/netns for it)");
            None
        }
    };

    let (mut online, mut connected, mut asking, mut silent) = (vec![], vec![], vec![], vec![]);
    let (mut browser, mut keyframe_wait) = (vec![], vec![]);
    for round in 0..ROUNDS {
        server.kill();
        tokio::time::sleep(DOWNTIME).await;
        for v in &mut viewers {
            v.clear_events();
        }
        server.start_again()?;
        let t0 = Instant::now();
        let t0_us = now_us();
        server.wait_camera_online(CAMERA_ONLINE).await?;
        online.push(t0.elapsed().as_secs_f64() * 1000.0);
        for (i, v) in viewers.iter_mut().enumerate() {
            let (media, frame) = first_frame(v, round as u32 + 1, Duration::from_secs(30)).await?;
            let since = |at_us: u64| at_us.saturating_sub(t0_us) as f64 / 1000.0;
            connected.push(since(media));
            keyframe_wait.push(frame.saturating_sub(media) as f64 / 1000.0);
            if i == 0 { &mut asking } else { &mut silent }.push(since(frame));
        }
        if let Some(page) = &page {
            browser.push(page.first_frame_after(t0_us).await? as f64 / 1000.0);
        }
    }
    let what = if demo {
        "`sightline --demo` (camera inside the server)"
    } else {
        "server with a publisher of its own"
    };
    println!("{what} killed (SIGKILL), back after {DOWNTIME:?}, {ROUNDS} rounds; ms from the new server's start:");
    report("  camera online again", &mut online, "");
    report("  viewer media connected", &mut connected, "");
    report(
        "  first frame, viewer that sends PLI",
        &mut asking,
        "target: p95 < 3000 ms",
    );
    report(
        "  first frame, viewer that never asks",
        &mut silent,
        "target: p95 < 3000 ms",
    );
    report(
        "  headless viewers, media connected → first frame",
        &mut keyframe_wait,
        "target: < 200 ms",
    );
    if page.is_some() {
        report(
            "  first frame, Chromium web client",
            &mut browser,
            "target: p95 < 3000 ms",
        );
    }
    for v in viewers {
        v.close().await;
    }
    Ok(())
}

/// The web client in headless Chromium. A timer on the page notes (wall clock, ms) when the
/// video's decoded-frame counter last moved, whatever peer connection feeds it.
struct Page(std::sync::Arc<Browser>);

const WATCH: &str = r#"
    const v = document.querySelector('video');
    let last = -1;
    window.__framesAt = 0;
    setInterval(() => {
        const n = v.getVideoPlaybackQuality().totalVideoFrames;
        if (n !== last) { last = n; if (n > 0) window.__framesAt = Date.now(); }
    }, 10);
"#;

impl Page {
    async fn open(url: String) -> anyhow::Result<Self> {
        let browser = tokio::task::spawn_blocking(move || -> anyhow::Result<Browser> {
            let b = Browser::launch(BrowserOptions::default())?;
            b.goto(&url)?;
            b.wait_for(
                "return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames > 0;",
                Duration::from_secs(20),
            )
            .context("the page never played")?;
            b.execute(WATCH, &[])?;
            Ok(b)
        })
        .await??;
        Ok(Page(std::sync::Arc::new(browser)))
    }

    /// µs from `t0_us` until the page's video moved again (new frames decoded).
    async fn first_frame_after(&self, t0_us: u64) -> anyhow::Result<u64> {
        let b = self.0.clone();
        let t0_ms = t0_us / 1000;
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let at = b.wait_for(
                &format!("return window.__framesAt > {t0_ms} ? window.__framesAt : 0;"),
                Duration::from_secs(40),
            )?;
            Ok((at.as_u64().unwrap_or(0) * 1000).saturating_sub(t0_us))
        })
        .await?
    }
}

/// Wait for the first decoded frame of a session after `after`; returns when (wall clock,
/// µs) its media connected and when the frame was decoded.
async fn first_frame(
    v: &mut HeadlessViewer,
    after: u32,
    limit: Duration,
) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + limit;
    let mut media = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match v.next_event(left).await? {
            ViewerEvent::Connected { session, at_us } if session > after => media = Some(at_us),
            ViewerEvent::Frame(f) if f.session > after => {
                return Ok((media.unwrap_or(f.received_at_us), f.received_at_us));
            }
            _ => {}
        }
    }
}
