//! Passed-through RTSP H.264 in a real headless Chromium. The SDP says Constrained Baseline
//! (`profile-level-id=42e01f`, `level-asymmetry-allowed=1`) whatever the camera sends; this
//! checks that Chromium really decodes a camera's Constrained Baseline and Main (CABAC, no
//! B-frames) streams passed through untouched, at the camera's own level.
//!
//! Needs Chromium and the test network namespace, like `browser.rs`; outside it the test
//! prints SKIPPED and passes (`SIGHTLINE_NETNS=1` makes that a failure).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context};
use sightline_publisher::source::SourceUrl;
use sightline_tests::browser::{netns_ip, Browser, BrowserOptions};
use sightline_tests::harness::{self, TestPublisher, TestServer};
use sightline_tests::rtsp_server::{RtspServer, RtspServerConfig};

const PLAY_TIMEOUT: Duration = Duration::from_secs(25);

/// Frames the page's <video> has decoded, once it plays at 640x480.
const DECODED_AT_SIZE: &str = "const v = document.querySelector('video');
    if (!v || v.videoWidth !== 640 || v.videoHeight !== 480) return null;
    return v.getVideoPlaybackQuality().totalVideoFrames;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_decodes_passed_through_constrained_baseline_and_main() -> anyhow::Result<()> {
    let Some(ip) = netns_ip()? else {
        eprintln!("*** SKIPPED browser_rtsp: not inside the test network namespace");
        return Ok(());
    };
    let mut config = harness::loopback_server_config();
    config.http_addr = SocketAddr::new(ip, 0);
    config.sfu.bind_ips = vec![ip];
    let server = TestServer::start_with(config).await?;

    for profile in ["constrained-baseline", "main"] {
        // 640x480 at 30 fps: level 3.0 from x264, other than the 3.1 the SDP names.
        let rtsp = RtspServer::start(RtspServerConfig {
            profile: profile.into(),
            width: 640,
            height: 480,
            ..RtspServerConfig::default()
        })
        .await?;
        let camera = format!("rtsp-{profile}");
        let mut pc = harness::publisher_config(&server.ws_url(), &camera);
        pc.source = SourceUrl::Rtsp {
            url: rtsp.url("/cam"),
        };
        let publisher = TestPublisher::start(pc);
        server
            .wait_camera_online(&camera, harness::CAMERA_ONLINE_TIMEOUT)
            .await?;
        let url = format!("{}/?camera={camera}", server.http_url());
        let shot = format!("browser-rtsp-{profile}.png");
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let browser = Browser::launch(BrowserOptions::default())?;
            browser.goto(&url)?;
            let first = browser
                .wait_for(DECODED_AT_SIZE, PLAY_TIMEOUT)
                .with_context(|| format!("{profile}: Chromium never played 640x480"))?;
            std::thread::sleep(Duration::from_secs(2));
            let later = browser.execute(DECODED_AT_SIZE, &[])?;
            browser.save_screenshot(&shot)?;
            ensure!(
                later.as_u64() > first.as_u64().map(|n| n + 20),
                "{profile}: Chromium decoded {first} then {later} frames in 2 s"
            );
            Ok(())
        })
        .await??;
        publisher.stop().await;
    }
    server.shutdown().await;
    Ok(())
}
