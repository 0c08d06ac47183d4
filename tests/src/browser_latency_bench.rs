//! `bench browser-latency`: Chromium's glass-to-glass latency on loopback, as the page's own
//! barcode reader sees it (issue 11, goal 7). The server runs in its own process with its
//! built-in 720p30 test-pattern camera (`sightline --demo`) and media on the test
//! namespace's address (Chromium skips loopback for ICE); the page plays it and reads the
//! capture time burned into each frame it presents (`requestVideoFrameCallback`), against
//! the same wall clock. So the figure includes encode, the SFU hop, Chromium's jitter
//! buffer, decode and presentation. Being the `sightline` binary, any build of the server
//! can be measured with the same bench. Needs the test namespace (`scripts/netns`).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sightline_tests::browser::netns_ip;
use sightline_tests::page::{chromium, on_page, PLAY_TIMEOUT};

use super::{report, ServerProcess};

/// Readings are taken over this long, after the first ones.
const WATCH: Duration = Duration::from_secs(30);

pub async fn run() -> anyhow::Result<()> {
    let Some(ip) = netns_ip()? else {
        println!("(no Chromium glass-to-glass figure: run inside scripts/netns for it)");
        return Ok(());
    };
    let server = ServerProcess::start(Some(ip), true)?;
    server.wait_up().await?;
    let browser = chromium().await?;
    let url = format!("{}/?camera=demo", server.http_url());
    let mut readings: Vec<f64> = on_page(&browser, "bench-browser-latency.png", move |b| {
        b.goto(&url)?;
        b.wait_for(
            "return window.sightline.latencyReadings.length > 5;",
            PLAY_TIMEOUT,
        )
        .context("no barcode readings on the page")?;
        let from = b
            .execute("return window.sightline.latencyReadings.length;", &[])?
            .as_u64()
            .unwrap_or(0) as usize;
        std::thread::sleep(WATCH);
        let all = b.execute("return window.sightline.latencyReadings;", &[])?;
        Ok(all
            .as_array()
            .map(|a| a.iter().skip(from).filter_map(Value::as_f64).collect())
            .unwrap_or_default())
    })
    .await?;
    report(
        "Chromium glass-to-glass, 720p30 on loopback, frame presented (ms)",
        &mut readings,
        "target p95 < 40 ms",
    );
    drop(browser);
    Ok(())
}
