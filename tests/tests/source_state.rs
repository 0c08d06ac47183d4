//! A camera's source fails and recovers on its own, apart from the WebRTC session: the
//! publisher stays registered and connected, viewers hear "lost" (with the reason) and then
//! "live" through signaling, and video resumes, from a keyframe, on the same subscription.
//! Meanwhile viewers, old and new, see a slate once a second: the last picture dimmed, or
//! grey when there was none, never a black box.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sightline_protocol::{CameraState, ServerMessage, SourceState, SourceStatus};
use sightline_publisher::barcode::tag_for;
use sightline_publisher::source::SourceUrl;
use sightline_tests::harness::{publisher_config, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::jpeg_fixture::barcode_jpeg;
use sightline_tests::{DecodedFrame, HeadlessViewer, SignalClient, TestServer, ViewerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Longest wait for a source state to reach a watcher: supervisor backoff is capped at 5 s.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);

/// A plain signaling session that watches the camera list, as a web page does.
struct Watcher {
    client: SignalClient,
    camera: String,
    offline_events: usize,
}

impl Watcher {
    async fn connect(server: &TestServer, camera: &str) -> Self {
        let (client, _) = SignalClient::connect_hello(&server.ws_url(), Duration::from_secs(5))
            .await
            .unwrap();
        Watcher {
            client,
            camera: camera.into(),
            offline_events: 0,
        }
    }

    /// Wait for a `source_state` of our camera in state `want`; returns what it said.
    async fn wait_state(&mut self, want: SourceState) -> SourceStatus {
        let camera = self.camera.clone();
        let offline = &mut self.offline_events;
        self.client
            .recv_until(STATE_TIMEOUT, |m| match m {
                ServerMessage::CameraOffline { camera_id } if *camera_id == camera => {
                    *offline += 1;
                    None
                }
                ServerMessage::SourceState {
                    camera_id,
                    state,
                    error,
                    source,
                    detail,
                } if *camera_id == camera && *state == want => Some(SourceStatus {
                    state: *state,
                    error: error.clone(),
                    source: source.clone(),
                    detail: detail.clone(),
                }),
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("waiting for source state {want:?}: {e:#}"))
    }
}

/// Wait until `/api/cameras` shows our camera online with a source in state `want`.
async fn api_source_state(server: &TestServer, camera: &str, want: SourceState) -> SourceStatus {
    sightline_tests::harness::wait_until(
        STATE_TIMEOUT,
        "source state in /api/cameras",
        async || {
            let cams = server.cameras().await.ok()?;
            let cam = cams.into_iter().find(|c| c.id == camera)?;
            assert_eq!(cam.state, CameraState::Online, "{cam:?}");
            cam.source_state.filter(|s| s.state == want)
        },
    )
    .await
    .unwrap()
}

/// The next slate `viewer` decodes: no barcode, `size`, not black, within a few seconds.
async fn slate(viewer: &mut HeadlessViewer, size: (u32, u32)) -> DecodedFrame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = viewer.next_frame(left).await.expect("a slate within 5 s");
        if f.stamp.is_some() {
            continue; // the camera's last frames, still on their way
        }
        assert_eq!((f.width, f.height), size, "{f:?}");
        assert!(f.mean_luma > 30, "a picture, not a black box: {f:?}");
        return f;
    }
}

/// The next `n` decoded frames all come from `camera`'s JPEGs (barcode tag) at their size,
/// after any slates still on their way.
async fn frames_from(viewer: &mut HeadlessViewer, camera: &str, n: usize) -> Vec<DecodedFrame> {
    let mut frames = Vec::new();
    while frames.len() < n {
        let f = viewer.next_frame(Duration::from_secs(15)).await.unwrap();
        if frames.is_empty() && f.stamp.is_none() {
            continue; // a slate
        }
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
        let stamp = f.stamp.expect("the JPEG's barcode survives");
        assert_eq!(stamp.tag, tag_for(camera), "a frame not from {camera}");
        frames.push(f);
    }
    frames
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sightline-source-state-{}-{}",
        std::process::id(),
        sightline_publisher::barcode::now_us()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_lost_then_live_when_it_appears_on_the_same_session() {
    let camera = "cam-file-later";
    let server = TestServer::start().await.unwrap();
    let mut watcher = Watcher::connect(&server, camera).await;
    let path = temp_path("later.mjpeg");
    let mut config = publisher_config(&server.ws_url(), camera);
    config.source = SourceUrl::File { path: path.clone() };

    // No file: the camera still comes online (registration does not wait for the source)...
    let _publisher = server.start_publisher(config).await.unwrap();
    // ...and says why there is no video.
    let lost = watcher.wait_state(SourceState::Lost).await;
    assert_eq!(lost.source, format!("file:{}", path.display()));
    let error = lost.error.expect("a lost source says why");
    assert!(error.contains("cannot open"), "{error}");
    let listed = api_source_state(&server, camera, SourceState::Lost).await;
    assert_eq!(listed.error.as_deref(), Some(error.as_str()));

    // A viewer subscribes meanwhile: it learns the state at once and sees a grey slate (no
    // picture was ever seen to dim), which starts with a keyframe.
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    assert!(slate(&mut viewer, (640, 360)).await.keyframe);
    let publishers = server.stats().await.unwrap()["sfu"]["publishers"].clone();
    assert_eq!(publishers, 1, "the publisher's WebRTC session is up");

    // The file appears (written whole, then renamed into place, as a recorder would).
    let mut data = Vec::new();
    for i in 0..30 {
        data.extend(barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, i, tag_for(camera)));
    }
    let part = path.with_extension("part");
    std::fs::write(&part, &data).unwrap();
    std::fs::rename(&part, &path).unwrap();

    let live = watcher.wait_state(SourceState::Live).await;
    assert_eq!(live.error, None);
    let frames = frames_from(&mut viewer, camera, 30).await;
    assert!(frames[0].keyframe, "video starts with a keyframe");
    api_source_state(&server, camera, SourceState::Live).await;

    // All of it on the first publisher session and the first subscription.
    assert_eq!(watcher.offline_events, 0, "the publisher never reconnected");
    let stats = viewer.stats();
    assert_eq!(stats.camera_offline_events, 0, "{stats:?}");
    assert_eq!(stats.sessions, 1, "{stats:?}");
    assert_eq!(server.stats().await.unwrap()["sfu"]["publishers"], 1);

    viewer.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A stand-in ESP32-CAM: one barcode JPEG per TCP connection, then close.
fn serve_esp32(listener: TcpListener, camera: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let jpeg = barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, n, tag_for(camera));
            n += 1;
            let _ = tcp.write_all(&jpeg).await;
            let _ = tcp.shutdown().await;
        }
    })
}

/// Bind `addr` again, retrying while the old listener's port is still held.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!("rebinding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("rebinding {addr}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_goes_away_and_returns_resumes_from_a_keyframe() {
    const CAMERA: &str = "cam-esp32-flaky";
    let server = TestServer::start().await.unwrap();
    let mut watcher = Watcher::connect(&server, CAMERA).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let device = serve_esp32(listener, CAMERA);

    let mut config = publisher_config(&server.ws_url(), CAMERA);
    config.source = SourceUrl::Esp32Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    config.poll_fps = 15;
    config.source_timeout = Duration::from_secs(2);
    let _publisher = server.start_publisher(config).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();
    frames_from(&mut viewer, CAMERA, 10).await;
    api_source_state(&server, CAMERA, SourceState::Live).await;

    // The device goes away: the source is lost, with the reason, and the slate comes: the
    // last picture, dimmed, once a second.
    device.abort();
    let _ = device.await;
    let lost = watcher.wait_state(SourceState::Lost).await;
    assert_eq!(lost.source, format!("esp32-tcp://{addr}"));
    assert!(lost.error.is_some_and(|e| !e.is_empty()));
    let size = (TEST_WIDTH, TEST_HEIGHT);
    assert!(
        slate(&mut viewer, size).await.keyframe,
        "the slate replaces the picture"
    );
    let t0 = tokio::time::Instant::now();
    slate(&mut viewer, size).await;
    slate(&mut viewer, size).await;
    let period = t0.elapsed() / 2;
    assert!(
        period > Duration::from_millis(700) && period < Duration::from_millis(1600),
        "slates come once a second: {period:?}"
    );
    // A viewer who joins now sees the slate too, from a keyframe.
    let mut late = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();
    assert!(slate(&mut late, size).await.keyframe);
    late.close().await;

    // It comes back on the same address: live again, and the first frame is a keyframe.
    let device = serve_esp32(rebind(addr).await, CAMERA);
    watcher.wait_state(SourceState::Live).await;
    let frames = frames_from(&mut viewer, CAMERA, 10).await;
    assert!(
        frames[0].keyframe,
        "the first frame after the loss is a keyframe: {:?}",
        frames[0]
    );

    assert_eq!(watcher.offline_events, 0, "the publisher never reconnected");
    let stats = viewer.stats();
    assert_eq!(stats.camera_offline_events, 0, "{stats:?}");
    assert_eq!(stats.sessions, 1, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");

    device.abort();
    viewer.close().await;
    server.shutdown().await;
}

/// The web page shows the source's state: a "Signal lost: why" badge, a line in the activity
/// log, and the grey slate playing (no picture was ever seen); then "Live" and the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_signal_lost_then_live() {
    use sightline_tests::browser::{netns_ip, Browser, BrowserOptions};
    let Some(ip) = netns_ip().expect("network namespace check") else {
        // Straight to stderr: the harness captures `eprintln!`, and a skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED the_page_shows_signal_lost_then_live: not inside the test network \
             namespace (Chromium ignores loopback for ICE); run it via scripts/netns\n"
        );
        return;
    };
    let camera = "cam-page-source";
    let mut server_config = sightline_tests::harness::loopback_server_config();
    server_config.http_addr = SocketAddr::new(ip, 0);
    server_config.sfu.bind_ips = vec![ip];
    let server = TestServer::start_with(server_config).await.unwrap();
    let path = temp_path("page.mjpeg");
    let mut config = publisher_config(&server.ws_url(), camera);
    config.source = SourceUrl::File { path: path.clone() };
    let _publisher = server.start_publisher(config).await.unwrap();
    api_source_state(&server, camera, SourceState::Lost).await;

    let url = format!("{}/?camera={camera}", server.http_url());
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
    let page = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let browser = Browser::launch(BrowserOptions::default())?;
        let timeout = Duration::from_secs(20);
        browser.goto(&url)?;
        let badge = browser.wait_for(
            "const b = document.getElementById('source-state');
             return !b.hidden && b.textContent.startsWith('Signal lost: ') && b.textContent;",
            timeout,
        )?;
        anyhow::ensure!(badge.as_str().unwrap().contains("cannot open"), "{badge}");
        // The slate plays: grey, not black, in the corner (the band is in the middle).
        let corner = browser.wait_for(
            "const v = document.querySelector('video');
             if (v.videoWidth !== 640 || v.readyState < 2) return false;
             const c = document.createElement('canvas');
             c.width = 640; c.height = 360;
             const g = c.getContext('2d');
             g.drawImage(v, 0, 0);
             return Array.from(g.getImageData(20, 20, 1, 1).data.slice(0, 3));",
            timeout,
        )?;
        let grey: Vec<u64> = serde_json::from_value(corner.clone())?;
        anyhow::ensure!(
            grey.iter().all(|c| (50..=110).contains(c)),
            "the slate is grey: {corner}"
        );
        let tag = browser.execute(
            "return document.querySelector('button.camera.active .tag').textContent;",
            &[],
        )?;
        anyhow::ensure!(tag == "signal lost", "camera list tag: {tag}");
        browser.save_screenshot("source-state-lost.png")?;
        let _ = lost_tx.send(());

        browser.wait_for(
            "const b = document.getElementById('source-state');
             const v = document.querySelector('video');
             return b.textContent === 'Live' && v.videoWidth === 320
                 && v.getVideoPlaybackQuality().totalVideoFrames > 5;",
            timeout,
        )?;
        let log = browser.execute("return window.sightline.log.join('\\n');", &[])?;
        let log = log.as_str().unwrap_or_default();
        anyhow::ensure!(log.contains("signal lost"), "activity log: {log}");
        anyhow::ensure!(log.contains("source live"), "activity log: {log}");
        anyhow::ensure!(!log.contains("offline"), "activity log: {log}");
        browser.save_screenshot("source-state-live.png")?;
        Ok(())
    });

    // Once the page has shown the loss, the file appears.
    if lost_rx.await.is_ok() {
        let mut data = Vec::new();
        for i in 0..30 {
            data.extend(barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, i, tag_for(camera)));
        }
        let part = path.with_extension("part");
        std::fs::write(&part, &data).unwrap();
        std::fs::rename(&part, &path).unwrap();
    }
    page.await.unwrap().unwrap();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
