//! HTTP sources: an MJPEG stream (`multipart/x-mixed-replace`, as an ESP32-CAM or an IP
//! camera serves it) and a JPEG snapshot URL, from a test camera over real HTTP, through
//! the publisher, the SFU and a headless viewer that reads each picture's frame barcode.
//! Bad input (corrupt, truncated and oversold parts, garbage, a wrong boundary, a stall in
//! the middle of a frame, wrong credentials) never takes the stream down.
//!
//! The tests that reach a viewer need the private network namespace:
//! `scripts/netns cargo test --release -p sightline-tests --test source_http --offline`.

use std::time::{Duration, Instant};

use sightline_protocol::{ServerMessage, SourceState};
use sightline_publisher::barcode::{self, tag_for, Stamp};
use sightline_publisher::source::{self, Source, SourceSpec, SourceUrl};
use sightline_publisher::PublisherConfig;
use sightline_tests::harness::{publisher_config, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::mjpeg_http_server::{Fault, MjpegHttpServer, MjpegServerConfig};
use sightline_tests::sequence::{in_order_from_keyframe, next_consecutive};
use sightline_tests::{DecodedFrame, HeadlessViewer, SignalClient, TestServer, ViewerConfig};

/// A camera at a modest rate: two cores run the camera, JPEG decode, H.264 encode and decode.
const FPS: u32 = 20;

fn camera(id: &str) -> MjpegHttpServer {
    MjpegHttpServer::start(MjpegServerConfig::new(
        TEST_WIDTH,
        TEST_HEIGHT,
        FPS,
        tag_for(id),
    ))
    .unwrap()
}

fn config_for(server: &TestServer, id: &str, url: String) -> PublisherConfig {
    let mut c = publisher_config(&server.ws_url(), id);
    c.source = SourceUrl::Http { url };
    c
}

fn stamps(frames: &[DecodedFrame]) -> Vec<u32> {
    frames.iter().map(|f| f.stamp.unwrap().frame).collect()
}

// ---------------------------------------------------------------------------------------
// Through the SFU to a viewer (run inside the namespace).
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mjpeg_stream_reaches_a_viewer_frame_by_frame_in_order() {
    const ID: &str = "http-stream";
    let cam = camera(ID);
    let server = TestServer::start().await.unwrap();
    let _publisher = server
        .start_publisher(config_for(&server, ID, cam.stream_url(None)))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), ID))
        .await
        .unwrap();

    // Every JPEG the camera sent, decoded at the far end with its own number, no gaps.
    let frames = in_order_from_keyframe(&mut viewer, ID, 40).await.unwrap();
    for f in &frames {
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
    }
    let last = frames.last().unwrap().stamp.unwrap().frame;
    assert!(
        last < cam.next_frame_number(),
        "frames come from the camera"
    );
    assert_eq!(
        cam.stream_connections(),
        1,
        "one connection, never reopened"
    );
    assert_eq!(viewer.stats().decode_errors, 0, "{:?}", viewer.stats());
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_url_is_polled_and_every_snapshot_reaches_the_viewer() {
    const ID: &str = "http-snapshot";
    let cam = camera(ID);
    let server = TestServer::start().await.unwrap();
    let mut config = config_for(&server, ID, cam.snapshot_url(None));
    config.poll_fps = 10;
    let _publisher = server.start_publisher(config).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), ID))
        .await
        .unwrap();

    // One request per poll, each JPEG a new frame number: consecutive numbers at the far
    // end mean no snapshot was lost or shown twice.
    let frames = in_order_from_keyframe(&mut viewer, ID, 20).await.unwrap();
    assert_eq!(
        (frames[0].width, frames[0].height),
        (TEST_WIDTH, TEST_HEIGHT)
    );
    // Polled at its rate, not flat out (a generous bound: this is not a timing test).
    let before = cam.snapshot_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polled = cam.snapshot_requests() - before;
    assert!(
        (5..=40).contains(&polled),
        "{polled} snapshots in 2 s at poll_fps 10"
    );
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parts_and_a_wrong_boundary_are_skipped_without_losing_a_good_frame() {
    const ID: &str = "http-bad-parts";
    let cam = camera(ID);
    let server = TestServer::start().await.unwrap();
    let _publisher = server
        .start_publisher(config_for(&server, ID, cam.stream_url(None)))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), ID))
        .await
        .unwrap();
    let mut frames = in_order_from_keyframe(&mut viewer, ID, 10).await.unwrap();

    cam.inject([
        Fault::CorruptJpeg,
        Fault::TruncatedJpeg,
        Fault::Garbage(3000),
        Fault::LyingLength,
        Fault::WrongBoundary(10),
        Fault::CorruptJpeg,
    ]);
    let injected_at = cam.next_frame_number();
    // Read on until well past the faults: the numbers must still follow one another with no
    // gap (bad output never carried a number; every good frame around it came through).
    while frames.last().unwrap().stamp.unwrap().frame < injected_at + 30 {
        let f = viewer.next_frame(Duration::from_secs(10)).await.unwrap();
        let stamp = f.stamp.expect("every picture carries its barcode");
        assert_eq!(stamp.tag, tag_for(ID));
        let prev = frames.last().unwrap().stamp.unwrap().frame;
        assert_eq!(
            stamp.frame,
            prev + 1,
            "a gap after the faults: {:?}",
            &stamps(&frames)[frames.len().saturating_sub(10)..]
        );
        frames.push(f);
    }
    assert!(cam.faults_done());
    assert_eq!(
        cam.stream_connections(),
        1,
        "bad parts are skipped, not reconnected"
    );
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_frame_reconnects_and_the_viewer_sees_the_stream_again() {
    const ID: &str = "http-stall";
    let cam = camera(ID);
    let server = TestServer::start().await.unwrap();
    let mut config = config_for(&server, ID, cam.stream_url(None));
    config.source_timeout = Duration::from_secs(1);
    let _publisher = server.start_publisher(config).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), ID))
        .await
        .unwrap();
    in_order_from_keyframe(&mut viewer, ID, 10).await.unwrap();
    // Another client watches the source state the publisher reports to every session.
    let (mut watcher, _) = SignalClient::connect_hello(&server.ws_url(), Duration::from_secs(5))
        .await
        .unwrap();

    cam.inject([Fault::StallMidFrame(Duration::from_secs(30))]);
    let stalled_at = cam.next_frame_number();
    let lost = watcher
        .recv_until(Duration::from_secs(20), |m| match m {
            ServerMessage::SourceState {
                camera_id,
                state: SourceState::Lost,
                error,
                source,
                ..
            } if camera_id == ID => Some((error.clone().unwrap_or_default(), source.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert!(lost.0.contains("stalled"), "{lost:?}");
    assert_eq!(lost.1, cam.stream_url(None));
    watcher
        .recv_until(Duration::from_secs(20), |m| {
            matches!(m, ServerMessage::SourceState { camera_id, state: SourceState::Live, .. } if camera_id == ID)
                .then_some(())
        })
        .await
        .unwrap();
    // The source gives up on the stalled connection after its 1 s read timeout and connects
    // again; the viewer, still subscribed, sees new frames in order.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = next_consecutive(&mut viewer, ID, 20).await.unwrap();
        if run[0].stamp.unwrap().frame >= stalled_at {
            break;
        }
        assert!(Instant::now() < deadline, "the stream never resumed");
    }
    assert!(
        cam.stream_connections() >= 2,
        "the source reconnected ({} connections)",
        cam.stream_connections()
    );
    // The WebRTC session outlived the source's failure: the viewer never resubscribed.
    assert_eq!(viewer.stats().sessions, 1, "{:?}", viewer.stats());
    watcher.close().await;
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_to_viewers_as_a_clear_401() {
    const ID: &str = "http-401";
    let mut config = MjpegServerConfig::new(TEST_WIDTH, TEST_HEIGHT, FPS, tag_for(ID));
    config.credentials = Some(("admin".into(), "s3cret".into()));
    let cam = MjpegHttpServer::start(config).unwrap();
    let server = TestServer::start().await.unwrap();
    let url = cam.stream_url(Some(("admin", "hunter2")));
    let _publisher = server
        .start_publisher(config_for(&server, ID, url))
        .await
        .unwrap();

    // The camera is online (its publisher is connected) and its source state says why there
    // is no picture, password masked.
    let status = sightline_tests::harness::wait_until(
        Duration::from_secs(20),
        "source state lost",
        async || {
            let cams = server.cameras().await.ok()?;
            let status = cams.into_iter().find(|c| c.id == ID)?.source_state?;
            (status.state == SourceState::Lost).then_some(status)
        },
    )
    .await
    .unwrap();
    let shown = cam.stream_url(None).replace("http://", "http://admin:***@");
    assert_eq!(status.source, shown);
    let error = status.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "HTTP 401 Unauthorized from {shown}: check the user and password in the URL"
        )),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    assert_eq!(cam.stream_connections(), 0);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The source on its own (no WebRTC: these run anywhere).
// ---------------------------------------------------------------------------------------

fn spec(url: String, read_timeout: Duration) -> SourceSpec {
    let mut spec = SourceSpec::new(url.parse().unwrap(), "http-direct");
    spec.width = TEST_WIDTH;
    spec.height = TEST_HEIGHT;
    spec.poll_fps = 20;
    spec.read_timeout = read_timeout;
    spec
}

fn stamp_of(frame: &sightline_publisher::source::CapturedFrame) -> Stamp {
    let source::Payload::Raw(f) = &frame.payload else {
        panic!("an HTTP source gives raw frames");
    };
    barcode::read(&f.y, f.width as usize, f.width as usize, f.height as usize)
        .expect("a readable barcode")
}

/// `n` frames from a blocking source, on a blocking thread.
async fn read_frames(
    mut source: Box<dyn Source>,
    n: usize,
) -> (Box<dyn Source>, anyhow::Result<Vec<Stamp>>) {
    tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        for _ in 0..n {
            match source.next_frame() {
                Ok(f) => got.push(stamp_of(&f)),
                Err(e) => return (source, Err(e)),
            }
        }
        (source, Ok(got))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_the_url_is_sent_and_a_wrong_password_is_a_clear_401() {
    let mut config = MjpegServerConfig::new(TEST_WIDTH, TEST_HEIGHT, FPS, 7);
    config.credentials = Some(("admin".into(), "s3cret".into()));
    let cam = MjpegHttpServer::start(config).unwrap();

    let right = source::open(&spec(
        cam.stream_url(Some(("admin", "s3cret"))),
        Duration::from_secs(5),
    ))
    .unwrap();
    let (_, frames) = read_frames(right, 3).await;
    let frames = frames.unwrap();
    assert_eq!(frames[0].tag, 7);
    assert_eq!(frames[1].frame, frames[0].frame + 1);

    let wrong = source::open(&spec(
        cam.stream_url(Some(("admin", "hunter2"))),
        Duration::from_secs(5),
    ))
    .unwrap();
    let (_, result) = read_frames(wrong, 1).await;
    let err = format!("{:#}", result.unwrap_err());
    let plain = cam.stream_url(None);
    let shown = plain.replace("http://", "http://admin:***@");
    assert!(
        err.contains(&format!(
            "HTTP 401 Unauthorized from {shown}: check the user and password in the URL"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let missing = source::open(&spec(
        cam.url("/nope", Some(("admin", "s3cret"))),
        Duration::from_secs(5),
    ))
    .unwrap();
    let (_, result) = read_frames(missing, 1).await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("HTTP 404 Not Found from"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_reported_and_the_next_open_works() {
    let cam = camera("http-500");
    cam.inject([Fault::Status(500)]);
    let s = spec(cam.stream_url(None), Duration::from_secs(5));
    let (_, result) = read_frames(source::open(&s).unwrap(), 1).await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains("HTTP 500 Internal Server Error from http://127.0.0.1"),
        "{err}"
    );
    let (_, frames) = read_frames(source::open(&s).unwrap(), 2).await;
    assert_eq!(frames.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_frame_is_an_error_within_the_read_timeout_then_it_reconnects() {
    let cam = camera("http-stall-direct");
    let source = source::open(&spec(cam.stream_url(None), Duration::from_secs(1))).unwrap();
    let (source, first) = read_frames(source, 3).await;
    let first = first.unwrap();

    cam.inject([Fault::StallMidFrame(Duration::from_secs(20))]);
    let started = Instant::now();
    let (source, result) = read_frames(source, 100).await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("stalled"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 1 s read timeout took {:?}",
        started.elapsed()
    );

    // Called again, the same source connects anew and goes on from the camera's next frame.
    let (_, again) = read_frames(source, 3).await;
    let again = again.unwrap();
    assert!(again[0].frame > first[2].frame, "{first:?} then {again:?}");
    assert_eq!(again[1].frame, again[0].frame + 1);
    assert_eq!(cam.stream_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_lengths_skips_bad_parts_and_follows_a_wrong_boundary() {
    let mut config = MjpegServerConfig::new(TEST_WIDTH, TEST_HEIGHT, 30, 9);
    config.content_length = false;
    config.boundary = "--frame".into();
    let cam = MjpegHttpServer::start(config).unwrap();
    let source = source::open(&spec(cam.stream_url(None), Duration::from_secs(5))).unwrap();
    let (source, first) = read_frames(source, 3).await;
    let first = first.unwrap();
    cam.inject([
        Fault::CorruptJpeg,
        Fault::WrongBoundary(5),
        Fault::TruncatedJpeg,
        Fault::CorruptJpeg,
    ]);
    let (_, rest) = read_frames(source, 20).await;
    let all: Vec<u32> = first
        .iter()
        .chain(&rest.unwrap())
        .map(|s| s.frame)
        .collect();
    let want: Vec<u32> = (all[0]..all[0] + 23).collect();
    assert_eq!(all, want, "every good frame, in order");
    assert!(cam.faults_done());
    assert_eq!(cam.stream_connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshots_are_skipped_and_polling_goes_on() {
    let cam = camera("http-snapshot-direct");
    let s = spec(cam.snapshot_url(None), Duration::from_secs(5));
    let source = source::open(&s).unwrap();
    // Before it has connected the source cannot know it is a snapshot URL.
    assert_eq!(source.fps(), s.fps);
    let (source, first) = read_frames(source, 2).await;
    let first = first.unwrap();
    assert_eq!(source.fps(), 20, "a snapshot URL runs at poll_fps");
    cam.inject([Fault::CorruptJpeg, Fault::TruncatedJpeg]);
    let (_, rest) = read_frames(source, 3).await;
    let all: Vec<u32> = first
        .iter()
        .chain(&rest.unwrap())
        .map(|s| s.frame)
        .collect();
    assert_eq!(all, (all[0]..all[0] + 5).collect::<Vec<u32>>());
    assert!(cam.faults_done());
}
