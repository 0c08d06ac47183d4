//! `bench soak [MINUTES]`: the server under steady load for a long time (30 minutes unless
//! told), to show its memory stays flat. Not a CI step: it is slow by design.
//!
//! The server runs in its own process (its resident memory is what is sampled); here run
//! one 720p30 test-pattern publisher at 2 Mbit/s, steady viewers that watch throughout, and
//! churn: every few seconds a viewer joins, watches a little and leaves, so every path that
//! allocates per viewer (peer, routes, send buffers, signaling session) is taken thousands of
//! times. A leak of even a few KiB per join shows as growth.
//!
//! It prints the resident memory once a minute, then the growth from the end of the
//! warm-up to the end, and a least-squares slope over those samples.

use std::time::{Duration, Instant};

use sightline_tests::HeadlessViewer;

use crate::{receiving_viewers, rss_kib, server_process_with_camera};

const STEADY_VIEWERS: usize = 5;
/// A churning viewer joins this often...
const CHURN_EVERY: Duration = Duration::from_secs(3);
/// ...and leaves after watching this long.
const CHURN_WATCH: Duration = Duration::from_secs(4);
/// Memory before this is start-up (allocator pools, buffers reaching their working size).
const WARM_UP: Duration = Duration::from_secs(120);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let minutes: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(30);
    let length = Duration::from_secs(minutes * 60).max(WARM_UP + SAMPLE_EVERY * 3);
    let (server, _publisher) = server_process_with_camera().await?;
    let ws = server.ws_url();
    let steady = receiving_viewers(&ws, STEADY_VIEWERS).await?;
    println!(
        "soak: {:.0} min, 720p30 2 Mbit/s camera, {STEADY_VIEWERS} steady viewers, one more \
         joining every {CHURN_EVERY:?} for {CHURN_WATCH:?}",
        length.as_secs_f64() / 60.0
    );

    let start = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new(); // (seconds, MiB) after the warm-up
    let mut churning: Vec<(Instant, HeadlessViewer)> = Vec::new();
    let (mut joins, mut failed_joins) = (0u64, 0u64);
    let mut next_join = start;
    let mut next_sample = start;
    let mut next_print = start;
    while start.elapsed() < length {
        let now = Instant::now();
        if now >= next_join {
            next_join += CHURN_EVERY;
            match receiving_viewers(&ws, 1).await {
                Ok(mut v) => {
                    joins += 1;
                    churning.push((Instant::now() + CHURN_WATCH, v.remove(0)));
                }
                Err(e) => {
                    failed_joins += 1;
                    println!("  a join failed: {e:#}");
                }
            }
        }
        while churning.first().is_some_and(|(leave, _)| *leave <= now) {
            churning.remove(0).1.close().await;
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            let rss = rss_kib(server.pid())? as f64 / 1024.0;
            let t = start.elapsed();
            if t >= WARM_UP {
                samples.push((t.as_secs_f64(), rss));
            }
            if now >= next_print {
                next_print += Duration::from_secs(60);
                println!(
                    "  {:>3} min: server RSS {rss:.1} MiB, {joins} joins so far",
                    t.as_secs() / 60
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (_, v) in churning {
        v.close().await;
    }

    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    let slope_per_hour = slope(&samples) * 3600.0;
    let mut gaps = 0;
    for v in &steady {
        let s = v.stats();
        gaps += s.frames_not_contiguous;
        anyhow::ensure!(s.sessions == 1, "a steady viewer had to reconnect: {s:?}");
    }
    println!(
        "soak: server RSS {first:.1} MiB after the {:.0} s warm-up, {last:.1} MiB at the end \
         ({:+.1} MiB), slope {slope_per_hour:+.2} MiB/hour over {} samples; {joins} viewers \
         joined and left ({failed_joins} joins failed); steady viewers: {gaps} frames after a gap",
        WARM_UP.as_secs_f64(),
        last - first,
        samples.len()
    );
    for v in steady {
        v.close().await;
    }
    Ok(())
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}
