//! `bench mse`: the MSE door's figures. Glass-to-glass latency through fragmented MP4 over
//! a WebSocket (a headless reader decoding with openh264, as a browser's player would),
//! time from connecting to the first decoded frame over 20 joins, and the server's CPU per
//! MSE viewer against a WebRTC viewer (server in its own process).

use std::time::{Duration, Instant};

use sightline_publisher::barcode;
use sightline_tests::{MseEvent, MseViewer, TestServer};

use super::{process_cpu, receiving_viewers, report, server_process_with_camera, BenchTls};

/// Viewers of each kind for the CPU comparison.
const VIEWERS: usize = 20;
const WINDOW: Duration = Duration::from_secs(10);

pub async fn run() -> anyhow::Result<()> {
    latency_and_join().await?;
    cpu_per_viewer().await
}

async fn latency_and_join() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut cfg = BenchTls::None.publisher(&server);
    // Only the keyframe-request path can start a new viewer.
    cfg.keyframe_interval = Duration::from_secs(60);
    let _publisher = server.start_publisher(cfg).await?;
    let url = server.http_url();

    let mut viewer = MseViewer::connect(&url, "bench", None).await?;
    viewer.next_frame(Duration::from_secs(10)).await?;
    let end = Instant::now() + WINDOW;
    let mut samples = Vec::new();
    while Instant::now() < end {
        let f = viewer.next_frame(Duration::from_secs(5)).await?;
        if let Some(stamp) = f.stamp {
            samples.push(f.received_at_us.saturating_sub(stamp.capture_us) as f64 / 1000.0);
        }
    }
    report(
        "glass-to-glass latency 720p30, MSE (fMP4 over WebSocket, loopback) (ms)",
        &mut samples,
        "target p95 < 150 ms",
    );
    viewer.close().await;

    let mut samples = Vec::new();
    for _ in 0..20 {
        let start = barcode::now_us();
        let mut viewer = MseViewer::connect(&url, "bench", None).await?;
        let f = viewer.next_frame(Duration::from_secs(10)).await?;
        samples.push(f.received_at_us.saturating_sub(start) as f64 / 1000.0);
        viewer.close().await;
        // Spaced like real users, and past the SFU's keyframe-request throttle.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    report(
        "MSE connect → first decoded frame, 720p30, IDR interval 60 s (ms)",
        &mut samples,
        "",
    );
    server.shutdown().await;
    Ok(())
}

/// Server CPU over [`WINDOW`] with a 720p30 camera and nobody watching, then with
/// [`VIEWERS`] MSE viewers, then with as many WebRTC viewers (neither decodes here).
async fn cpu_per_viewer() -> anyhow::Result<()> {
    let (server, _publisher) = server_process_with_camera().await?;
    let pid = server.pid();
    let (base, ws) = (server.http_url(), server.ws_url());
    let cpu_over_window = async || -> anyhow::Result<f64> {
        let c0 = process_cpu(pid)?;
        tokio::time::sleep(WINDOW).await;
        Ok((process_cpu(pid)? - c0).as_secs_f64())
    };
    let idle = cpu_over_window().await?;

    // MSE viewers, each drained by a task of its own.
    let mut readers = Vec::new();
    for _ in 0..VIEWERS {
        let mut v = MseViewer::connect(&base, "bench", None).await?;
        readers.push(tokio::spawn(async move {
            let mut frames = 0u64;
            while let Ok(event) = v.next(Duration::from_secs(5)).await {
                frames += u64::from(matches!(event, MseEvent::Frame { .. }));
            }
            frames
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mse = cpu_over_window().await?;
    for r in &readers {
        r.abort();
    }

    let viewers = receiving_viewers(&ws, VIEWERS).await?;
    let webrtc = cpu_over_window().await?;
    for v in viewers {
        v.close().await;
    }
    let per_viewer =
        |cpu: f64| (cpu - idle).max(0.0) / WINDOW.as_secs_f64() * 100.0 / VIEWERS as f64;
    println!(
        "server CPU per viewer, 720p30 at 2 Mbit/s, {VIEWERS} viewers each: MSE {:.2} % of a core, \
         WebRTC {:.2} % (camera alone: {:.1} %)",
        per_viewer(mse),
        per_viewer(webrtc),
        idle / WINDOW.as_secs_f64() * 100.0
    );
    Ok(())
}
