//! `bench whip`: a camera (360p30) published over WHIP and watched over WHEP, both by the suite's own
//! clients (`whip_client`, `whep_player`), on an in-process server: glass-to-glass latency
//! (the barcode's capture time → decoded in the player) and WHEP time to first frame (POST
//! → first decoded frame, 20 joins). The WHIP client answers keyframe requests at once, as
//! OBS and ffmpeg do, so a join waits for one PLI round trip and an IDR.

use std::time::{Duration, Instant};

use sightline_tests::whep_player::WhepPlayer;
use sightline_tests::whip_client::WhipClient;
use sightline_tests::TestServer;

use crate::report;

/// 360p30: the client's own software encoder (a per-pixel pattern and openh264, in the
/// bench's process beside the player's decoder and the server) does not keep 30 fps at 720p
/// on a 2-core machine, and the figures would be the client's backlog.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

pub async fn run() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let whip = WhipClient::start(server.http_addr(), "bench", None, (WIDTH, HEIGHT)).await?;
    server
        .wait_camera_online("bench", Duration::from_secs(10))
        .await?;

    let mut player = WhepPlayer::start(server.http_addr(), "bench", None).await?;
    player.next_frame(Duration::from_secs(10)).await?;
    let end = Instant::now() + Duration::from_secs(10);
    let mut latency = Vec::new();
    while Instant::now() < end {
        let f = player.next_frame(Duration::from_secs(5)).await?;
        if let Some(stamp) = f.stamp {
            latency.push(f.received_at_us.saturating_sub(stamp.capture_us) as f64 / 1000.0);
        }
    }
    player.delete(None).await?;
    report(
        "WHIP → WHEP glass-to-glass, 360p30 (ms)",
        &mut latency,
        "like the WebSocket path's",
    );

    let mut first = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let mut player = WhepPlayer::start(server.http_addr(), "bench", None).await?;
        player.next_frame(Duration::from_secs(10)).await?;
        first.push(start.elapsed().as_secs_f64() * 1000.0);
        player.delete(None).await?;
        // Past the SFU's keyframe-request throttle, like spaced-out users.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    report(
        "WHEP POST → first decoded frame, WHIP camera 360p30 (ms)",
        &mut first,
        "target p95 < 300 ms",
    );
    whip.delete(None).await?;
    server.shutdown().await;
    Ok(())
}
