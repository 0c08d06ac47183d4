//! Things restart; video comes back without anyone doing anything.

use std::time::{Duration, Instant};

use anyhow::Context;
use sightline_publisher::barcode::now_us;
use sightline_publisher::PublisherConfig;
use sightline_sfu::SfuEvent;
use sightline_tests::child::{workspace_binary, ChildGuard};
use sightline_tests::harness::{self, publisher_config, wait_until};
use sightline_tests::sequence::next_consecutive;
use sightline_tests::{HeadlessViewer, TestPublisher, TestServer, ViewerConfig, ViewerEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_restart_resumes_video_on_the_same_subscription() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-restart";
    let publisher = server.start_camera(camera).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let before = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    let last_before = before.last().unwrap().stamp.unwrap().frame;

    let _publisher = publisher.restart().await;

    // The viewer hears the camera went away...
    told_camera_offline(&mut viewer, camera).await;
    // ...then, without resubscribing, gets the new publisher's frames, numbered from 0 again.
    let mut first_new = None;
    while first_new.is_none() {
        match viewer.next_event(Duration::from_secs(20)).await.unwrap() {
            ViewerEvent::Frame(f) => {
                if let Some(s) = f.stamp.filter(|s| s.frame < last_before) {
                    first_new = Some((f, s));
                }
            }
            ViewerEvent::CameraOnline { .. } | ViewerEvent::CameraOffline { .. } => {}
            other => panic!("unexpected event while waiting for video: {other:?}"),
        }
    }
    let (f, stamp) = first_new.unwrap();
    assert_eq!(f.session, 1, "same subscription");
    assert!(
        stamp.frame < 200,
        "numbering restarted, got {}",
        stamp.frame
    );
    let after = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert!(after.iter().all(|f| f.session == 1));
    let stats = viewer.stats();
    assert_eq!(
        stats.sessions, 1,
        "the viewer never resubscribed: {stats:?}"
    );
    assert_eq!(stats.camera_offline_events, 1, "{stats:?}");

    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_on_the_same_ports_heals_by_itself() {
    let mut server = TestServer::start().await.unwrap();
    let camera = "cam-server-restart";
    let _publisher = server.start_camera(camera).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    next_consecutive(&mut viewer, camera, 30).await.unwrap();
    let (http, udp) = (server.http_addr(), server.udp_port());

    server.restart().await.unwrap();
    assert_eq!((server.http_addr(), server.udp_port()), (http, udp));

    // The publisher re-registers by itself...
    server
        .wait_camera_online(camera, Duration::from_secs(30))
        .await
        .unwrap();
    // ...and the viewer notices the loss, resubscribes and decodes again.
    loop {
        match viewer.next_event(Duration::from_secs(30)).await.unwrap() {
            ViewerEvent::Frame(f) if f.session >= 2 => break,
            _ => {}
        }
    }
    let run = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert!(run.iter().all(|f| f.session >= 2));
    assert!(viewer.stats().sessions >= 2);

    viewer.close().await;
    server.shutdown().await;
}

// ---- A viewer whose media has just connected gets a keyframe at once, whatever the order in
// which it and the publisher (re)connect. The viewers here never ask for keyframes themselves
// and the publisher's periodic IDR is a minute away, so only the SFU's own requests can bring
// the first picture. The bounds are generous for a loaded 2-core machine; `bench restart`
// prints the real figures.

/// From a viewer's media connecting (or its publisher's, whichever is later) to its first
/// decoded frame.
const FIRST_FRAME_BOUND: Duration = Duration::from_secs(1);
/// From the server's return to video at the viewer (the promise to users).
const BACK_AFTER_RESTART: Duration = Duration::from_secs(3);

/// A publisher whose periodic IDR never comes during a test.
fn rare_keyframes(server: &TestServer, camera: &str) -> PublisherConfig {
    let mut config = publisher_config(&server.ws_url(), camera);
    config.keyframe_interval = Duration::from_secs(60);
    config
}

/// A viewer that never sends PLI/FIR.
fn silent_viewer(server: &TestServer, camera: &str) -> ViewerConfig {
    let mut config = ViewerConfig::new(server.ws_url(), camera);
    config.keyframe_request_on_error = false;
    config
}

/// Wall clock (µs) of the session's media connecting after `after`, and of its first frame.
async fn connected_then_first_frame(
    viewer: &mut HeadlessViewer,
    after: u32,
    timeout: Duration,
) -> anyhow::Result<(u64, u64)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut connected = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match viewer.next_event(left).await? {
            ViewerEvent::Connected { session, at_us } if session > after => connected = Some(at_us),
            ViewerEvent::Frame(f) if f.session > after => {
                let connected = connected.context("a frame before the media connected")?;
                return Ok((connected, f.received_at_us));
            }
            _ => {}
        }
    }
}

/// A camera with rare keyframes and a silent viewer that has seen its first frame.
async fn watched_camera(server: &TestServer, camera: &str) -> (TestPublisher, HeadlessViewer) {
    let publisher = server
        .start_publisher(rare_keyframes(server, camera))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(silent_viewer(server, camera))
        .await
        .unwrap();
    connected_then_first_frame(&mut viewer, 0, Duration::from_secs(10))
        .await
        .unwrap();
    (publisher, viewer)
}

/// Wait until `viewer` is told `camera` went offline, with nothing unexpected before.
async fn told_camera_offline(viewer: &mut HeadlessViewer, camera: &str) {
    loop {
        match viewer.next_event(Duration::from_secs(10)).await.unwrap() {
            ViewerEvent::CameraOffline { camera_id } => {
                assert_eq!(camera_id, camera);
                return;
            }
            ViewerEvent::Frame(_) | ViewerEvent::Connected { .. } => {}
            other => panic!("unexpected event before camera_offline: {other:?}"),
        }
    }
}

fn ms(us: u64) -> Duration {
    Duration::from_micros(us)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_video_is_back_within_three_seconds() {
    let mut server = TestServer::start().await.unwrap();
    let camera = "cam-kf-server";
    let (_publisher, mut viewer) = watched_camera(&server, camera).await;

    server.restart().await.unwrap();
    let back = now_us();
    let (connected, frame) = connected_then_first_frame(&mut viewer, 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        ms(frame.saturating_sub(back)) <= BACK_AFTER_RESTART,
        "video back {:?} after the server's return",
        ms(frame.saturating_sub(back))
    );
    assert!(
        ms(frame.saturating_sub(connected)) <= FIRST_FRAME_BOUND,
        "first frame {:?} after the viewer's media connected",
        ms(frame.saturating_sub(connected))
    );
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_viewer_gets_a_keyframe_as_soon_as_the_publisher_connects() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-kf-publisher";
    let (publisher, mut viewer) = watched_camera(&server, camera).await;
    publisher.stop().await;
    server
        .wait_camera_offline(camera, Duration::from_secs(10))
        .await
        .unwrap();
    // The viewer's media stays connected, waiting. Note when the new publisher's media is up.
    let mut events = server.sfu().events();
    viewer.clear_events();
    let _publisher = TestPublisher::start(rare_keyframes(&server, camera));
    let publisher_up = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(SfuEvent::PeerConnected { .. }) = events.recv().await {
                return now_us();
            }
        }
    })
    .await
    .expect("the new publisher's media never connected");
    let frame = viewer.next_frame(Duration::from_secs(10)).await.unwrap();
    assert!(
        ms(frame.received_at_us.saturating_sub(publisher_up)) <= FIRST_FRAME_BOUND,
        "first frame {:?} after the publisher's media connected",
        ms(frame.received_at_us.saturating_sub(publisher_up))
    );
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_while_the_publisher_connects_or_later_gets_a_keyframe_at_once() {
    let server = TestServer::start().await.unwrap();
    let mut publishers = Vec::new();
    for round in 0..3 {
        let camera = format!("cam-kf-join-{round}");
        // Subscribe the moment the camera is registered: its media is still being set up.
        publishers.push(TestPublisher::start(rare_keyframes(&server, &camera)));
        wait_until(Duration::from_secs(10), "camera registered", async || {
            let cams = server.cameras().await.ok()?;
            cams.iter().any(|c| c.id == camera).then_some(())
        })
        .await
        .unwrap();
        assert_first_frame_soon(&server, &camera, &format!("round {round}")).await;
    }
    // A camera live for a while: its first IDR is long gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_first_frame_soon(&server, "cam-kf-join-0", "late joiner").await;
    server.shutdown().await;
}

async fn assert_first_frame_soon(server: &TestServer, camera: &str, what: &str) {
    let mut viewer = HeadlessViewer::connect(silent_viewer(server, camera))
        .await
        .unwrap();
    let (connected, frame) = connected_then_first_frame(&mut viewer, 0, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        ms(frame.saturating_sub(connected)) <= FIRST_FRAME_BOUND,
        "{what}: first frame {:?} after the viewer's media connected",
        ms(frame.saturating_sub(connected))
    );
    viewer.close().await;
}

/// The publisher binary for `camera` (320×240 test pattern, rare keyframes), in its own
/// process: killed with SIGKILL when the guard drops, as a crash or power cut would.
fn publisher_process(server: &TestServer, camera: &str) -> ChildGuard {
    let exe = workspace_binary("sightline-publisher").unwrap();
    let child = std::process::Command::new(&exe)
        .args([
            "--server",
            &server.ws_url(),
            "--camera-id",
            camera,
            "--no-state",
        ])
        .args([
            "--width",
            "320",
            "--height",
            "240",
            "--keyframe-interval",
            "60",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    ChildGuard(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publisher_process_goes_offline_then_resumes_when_started_again() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-killed";
    let process = publisher_process(&server, camera);
    server
        .wait_camera_online(camera, harness::CAMERA_ONLINE_TIMEOUT)
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(silent_viewer(&server, camera))
        .await
        .unwrap();
    connected_then_first_frame(&mut viewer, 0, Duration::from_secs(10))
        .await
        .unwrap();

    // kill -9: no goodbye on the signaling socket, no DTLS close. The kernel closes the TCP
    // connection, so the server knows at once, and the viewer is told.
    let killed = Instant::now();
    drop(process);
    told_camera_offline(&mut viewer, camera).await;
    let offline_after = killed.elapsed();
    server
        .wait_camera_offline(camera, Duration::from_secs(5))
        .await
        .unwrap();

    // Started again (by systemd, say): the same subscription gets video again, from a
    // keyframe, without the viewer asking for one.
    let started = Instant::now();
    let _process = publisher_process(&server, camera);
    let frame = loop {
        match viewer
            .next_event(harness::CAMERA_ONLINE_TIMEOUT)
            .await
            .unwrap()
        {
            ViewerEvent::Frame(f) => break f,
            ViewerEvent::CameraOnline { .. } => {}
            other => panic!("unexpected event while waiting for video: {other:?}"),
        }
    };
    let video_after = started.elapsed();
    assert!(frame.keyframe, "video resumes at a keyframe");
    assert_eq!(frame.session, 1, "same subscription");
    let stats = viewer.stats();
    assert_eq!(stats.sessions, 1, "{stats:?}");
    assert_eq!(stats.camera_offline_events, 1, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    eprintln!(
        "killed publisher: viewer told offline {offline_after:?} after the kill; \
         video {video_after:?} after the new process started"
    );
    assert!(offline_after < Duration::from_secs(5), "{offline_after:?}");

    viewer.close().await;
    server.shutdown().await;
}
