//! The web client in a real headless Chromium: it must find the camera, play it without a
//! click, and really decode frames (not just show a <video> element).
//!
//! Needs Debian's `chromium` + `chromium-driver`, and a private network namespace holding
//! 10.77.0.1 (Chromium ignores loopback for ICE). Outside such a namespace the WebRTC tests
//! print a loud SKIPPED line and pass; `SIGHTLINE_NETNS=1` turns that skip into a failure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use sightline_signaling::auth::Role;
use sightline_signaling::server::tls::TlsFiles;
use sightline_tests::browser::{netns_or_skip, Browser, BrowserOptions};
use sightline_tests::harness::{self, TestPublisher, TestServer};
use sightline_tests::page::{
    assert_decoding, chromium, chromium_with, explain, on_page, page_camera, page_server,
    video_state, PLAY_TIMEOUT,
};
use sightline_tests::pki::TestPki;

/// From the server's return after an outage to new video on the page.
const BACK_AFTER_RESTART: Duration = Duration::from_secs(3);

#[test]
fn chromium_session_runs_scripts_and_takes_screenshots() -> anyhow::Result<()> {
    let browser = Browser::launch(BrowserOptions::default())?;
    browser.goto("data:text/html,<title>t</title><p id=p>hello</p>")?;
    let text = browser.execute(
        "return document.getElementById('p').textContent + arguments[0];",
        &[Value::from("!")],
    )?;
    assert_eq!(text, "hello!");
    let slow = browser.execute_async(
        "const done = arguments[arguments.length - 1]; setTimeout(() => done(6 * 7), 50);",
        &[],
    )?;
    assert_eq!(slow, 42);
    let png = browser.screenshot()?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let err = browser
        .execute("throw new Error('boom');", &[])
        .unwrap_err();
    assert!(format!("{err:#}").contains("boom"), "{err:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_plays_the_first_online_camera_and_switches() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("page_plays_the_first_online_camera_and_switches") else {
        return Ok(());
    };
    let server = page_server(ip, ip, false).await?;
    let cam1 = page_camera(&server, "cam", 640, 360);
    let cam2 = page_camera(&server, "cam2", 320, 240);
    let url = format!("{}/", server.http_url());

    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let browser = Browser::launch(BrowserOptions::default())?;
        let run = || -> anyhow::Result<()> {
            // Make sure both cameras are registered before the page picks the first online.
            browser.goto(&url)?;
            browser.wait_for(
                "return window.sightline && window.sightline.cameras
                     .filter(c => c.state === 'online').length === 2;",
                PLAY_TIMEOUT,
            )?;
            let first = browser.execute(
                "return window.sightline.cameras.find(c => c.state === 'online').id;",
                &[],
            )?;
            let (w, h) = if first == "cam" {
                (640, 360)
            } else {
                (320, 240)
            };
            assert_decoding(&browser, w, h).context("first camera")?;
            browser.save_screenshot("browser-desktop.png")?;

            // Click the other camera: a new subscription and peer connection replace the old.
            let other = if first == "cam" { "cam2" } else { "cam" };
            browser.execute(
                "document.querySelector(`button[data-id=\"${arguments[0]}\"]`).click();",
                &[Value::from(other)],
            )?;
            let (w, h) = if other == "cam" {
                (640, 360)
            } else {
                (320, 240)
            };
            assert_decoding(&browser, w, h).context("after switching cameras")?;

            browser.set_viewport(375, 812, true)?;
            std::thread::sleep(Duration::from_millis(500));
            browser.assert_fits_width(375)?;
            browser.save_screenshot("browser-phone.png")?;
            Ok(())
        };
        run().map_err(|e| explain(&browser, e, "browser-failure.png"))
    })
    .await;

    cam1.stop().await;
    cam2.stop().await;
    server.shutdown().await;
    match result {
        Ok(r) => r,
        Err(e) => bail!("browser thread panicked: {e}"),
    }
}

/// While the source is gone, the decoded-frame counter must stand still (proof that what
/// plays afterwards is new video); returns where it stands.
fn stalled_frames(browser: &Browser) -> anyhow::Result<u64> {
    let frames = || -> anyhow::Result<u64> {
        std::thread::sleep(Duration::from_secs(1));
        current_frames(browser)
    };
    let (a, b) = (frames()?, frames()?);
    ensure!(
        a == b,
        "video kept decoding ({a} → {b} frames) with its source gone"
    );
    Ok(b)
}

/// Wait up to `within` for new decoded frames (the counter moves away from `frames`: new
/// frames after an outage, or frames counted afresh by a new peer connection), then require
/// steady decoding again. The page keeps its peer connection through a server outage (to
/// resume it) and replaces it only once the new server refuses that: the last frames the
/// old one decodes may move the counter first, so a counter that starts over during the
/// check (the new connection) is waited for and checked in turn.
fn assert_resumes(
    browser: &Browser,
    mut frames: u64,
    width: u64,
    height: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        browser
            .wait_for(
                &format!(
                    "const n = document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames;
                     return n !== {frames} && n > 0;"
                ),
                deadline.saturating_duration_since(Instant::now()),
            )
            .with_context(|| format!("no new video within {within:?}"))?;
        let seen = current_frames(browser)?;
        match assert_decoding(browser, width, height) {
            Err(_) if Instant::now() < deadline && current_frames(browser)? < seen => {
                frames = current_frames(browser)?;
            }
            checked => return checked,
        }
    }
}

fn current_frames(browser: &Browser) -> anyhow::Result<u64> {
    Ok(video_state(browser)?["frames"].as_u64().unwrap_or(0))
}

/// On a public host: HTTPS with built-in TLS, tokens on, the page opened with `?token=`.
/// Chromium trusts the test certificate through its command line (its public key's hash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_plays_over_https_with_a_token() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("page_plays_over_https_with_a_token") else {
        return Ok(());
    };
    let ip_name = ip.to_string();
    let pki = TestPki::new(
        "Sightline browser test CA",
        &[ip_name.as_str(), "localhost"],
    )?;
    let mut config = harness::with_tokens(harness::loopback_server_config());
    config.http_addr = SocketAddr::new(ip, 0);
    config.sfu.bind_ips = vec![ip];
    config.tls = Some(TlsFiles {
        cert: pki.cert_path(),
        key: pki.key_path(),
    });
    config.plain_loopback = true;
    let server = TestServer::start_with(config).await?;
    ensure!(
        server.http_url().starts_with("https://"),
        "{}",
        server.http_url()
    );
    let mut camera = server.publisher_config("cam-https");
    (camera.width, camera.height, camera.ca_file) = (320, 240, Some(pki.ca_path()));
    let cam = TestPublisher::start(camera);
    let token = server.token(Role::View, "cam-https").unwrap();
    let url = format!("{}/?token={token}", server.http_url());

    let browser = chromium_with(BrowserOptions {
        extra_args: vec![format!(
            "--ignore-certificate-errors-spki-list={}",
            pki.spki_sha256_base64
        )],
        ..BrowserOptions::default()
    })
    .await?;
    let result = on_page(&browser, "https-failure.png", move |b| {
        b.goto(&url)?;
        assert_decoding(b, 320, 240)
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_recovers_from_camera_and_server_outages() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("page_recovers_from_camera_and_server_outages") else {
        return Ok(());
    };
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;
    on_page(&browser, "browser-outage-start.png", move |b| {
        b.goto(&url)?;
        assert_decoding(b, 640, 360)
    })
    .await?;

    // The camera goes away: the page says so and keeps its peer connection; when the camera
    // comes back, video resumes without a new subscription.
    cam.stop().await;
    let before = on_page(&browser, "browser-camera-gone.png", |b| {
        b.wait_for(
            "return document.getElementById('overlay').textContent === 'Camera offline';",
            PLAY_TIMEOUT,
        )?;
        stalled_frames(b)
    })
    .await?;
    let cam = page_camera(&server, "cam", 640, 360);
    on_page(&browser, "browser-camera-back.png", move |b| {
        assert_resumes(b, before, 640, 360, PLAY_TIMEOUT)
    })
    .await?;

    // The server goes down and comes back on the same address: the page and the publisher
    // both reconnect by themselves, and video plays again within 3 s of the server's return
    // (a deploy must not leave pages black; `bench restart` has the figures).
    let http_addr = server.http_addr();
    server.shutdown().await;
    let before = on_page(&browser, "browser-server-gone.png", stalled_frames).await?;
    let mut config = harness::loopback_server_config();
    config.http_addr = http_addr;
    config.sfu.bind_ips = vec![ip];
    let server = TestServer::start_with(config).await?;
    let result = on_page(&browser, "browser-server-back.png", move |b| {
        assert_resumes(b, before, 640, 360, BACK_AFTER_RESTART)?;
        b.save_screenshot("browser-recovered.png")?;
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}
