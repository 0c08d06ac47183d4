//! ESP32-CAM sources end to end: a fake device (pull: one JPEG per TCP connection; push: the
//! device connects out) sends JPEGs carrying a frame-number barcode; the publisher decodes,
//! encodes and publishes them; a headless viewer behind the SFU decodes the H.264 and reads
//! the numbers back. Bad input (truncated, corrupt, garbage, a device stalling mid-frame)
//! never ends the stream: good frames decode in the viewer afterwards.

use std::net::SocketAddr;
use std::time::Duration;

use sightline_publisher::barcode::tag_for;
use sightline_publisher::source::SourceUrl;
use sightline_publisher::PublisherConfig;
use sightline_tests::esp32_device::{
    bad, free_port, Device, Esp32Server, Picture, PushDevice, PushMode, Reply,
};
use sightline_tests::harness::{publisher_config, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::jpeg_fixture::barcode_jpeg;
use sightline_tests::sequence::next_consecutive;
use sightline_tests::{DecodedFrame, HeadlessViewer, TestServer, ViewerConfig};

/// Device frame rate, publisher poll rate and encoder rate.
const FPS: u32 = 15;
/// The source's read timeout: short, so stalls are noticed quickly.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(1);
/// A stalled device stays silent this long: well past the source timeout.
const STALL: Duration = Duration::from_millis(2500);

fn picture(camera: &str) -> Picture {
    Picture {
        width: TEST_WIDTH,
        height: TEST_HEIGHT,
        tag: tag_for(camera),
    }
}

fn config(server: &TestServer, camera: &str, source: SourceUrl) -> PublisherConfig {
    let mut c = publisher_config(&server.ws_url(), camera);
    c.source = source;
    c.fps = FPS;
    c.poll_fps = FPS;
    c.source_timeout = SOURCE_TIMEOUT;
    c
}

fn pull_url(addr: SocketAddr) -> SourceUrl {
    SourceUrl::Esp32Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

/// Every kind of bad frame, from a good JPEG of the device's size.
fn bad_frames(camera: &str) -> Vec<Reply> {
    let jpeg = barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, 999_999, tag_for(camera));
    vec![
        Reply::Bytes(bad::truncated(&jpeg)),
        Reply::Bytes(bad::corrupt(&jpeg)),
        Reply::Bytes(bad::garbage(700)),
    ]
}

/// A device stalling in the middle of a JPEG.
fn stall(camera: &str) -> Reply {
    let jpeg = barcode_jpeg(TEST_WIDTH, TEST_HEIGHT, 999_998, tag_for(camera));
    Reply::Stall {
        bytes: bad::truncated(&jpeg),
        hold: STALL,
    }
}

/// Inject `replies`, then follow the viewer's frames until `n` good frames sent after them
/// have decoded. Bad input costs no good frame: every frame number is its predecessor's + 1
/// across the bad input (a reconnect numbers on, as the fake device only counts good
/// frames it sent).
async fn live_across_bad_input(
    viewer: &mut HeadlessViewer,
    camera: &str,
    device: &Device,
    replies: Vec<Reply>,
    n: u32,
) -> Vec<DecodedFrame> {
    let mut prev = next_consecutive(viewer, camera, 10)
        .await
        .unwrap()
        .last()
        .and_then(|f| f.stamp)
        .unwrap()
        .frame;
    device.inject(replies);
    let mut mark = None;
    let mut after = Vec::new();
    while mark.is_none_or(|m| prev < m + n) {
        let f = viewer.next_frame(Duration::from_secs(20)).await.unwrap();
        let Some(stamp) = f.stamp else {
            // A slate while the device is lost (a stall): the last picture dimmed, its
            // barcode unreadable on purpose.
            assert!(f.mean_luma > 30, "a slate, not a black box: {f:?}");
            continue;
        };
        assert_eq!(stamp.tag, tag_for(camera));
        assert_eq!(
            stamp.frame,
            prev + 1,
            "a good frame was lost; {:?}",
            viewer.stats()
        );
        prev = stamp.frame;
        if mark.is_none() && device.injected_done() {
            // Frames numbered from here on were sent after the bad input.
            mark = Some(device.frames_sent());
        }
        if mark.is_some_and(|m| prev >= m) {
            after.push(f);
        }
    }
    after
}

fn assert_picture(frames: &[DecodedFrame]) {
    for f in frames {
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
    }
}

/// The WebRTC side never noticed anything: one subscription, the camera never offline.
fn assert_session_stayed_up(viewer: &HeadlessViewer) {
    let stats = viewer.stats();
    assert_eq!(stats.sessions, 1, "{stats:?}");
    assert_eq!(stats.camera_offline_events, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_esp32_serving_one_jpeg_per_connection_streams_in_order() {
    let camera = "esp32-pull";
    let server = TestServer::start().await.unwrap();
    let device = Esp32Server::start(picture(camera)).unwrap();
    let _publisher = server
        .start_publisher(config(&server, camera, pull_url(device.addr())))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();

    let frames = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert_picture(&frames);
    // One connection per frame, as the seed's firmware does.
    assert!(
        device.device.connections() >= 31,
        "{}",
        device.device.connections()
    );
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jpegs_from_a_polled_esp32_are_skipped() {
    let camera = "esp32-pull-bad";
    let server = TestServer::start().await.unwrap();
    let device = Esp32Server::start(picture(camera)).unwrap();
    let _publisher = server
        .start_publisher(config(&server, camera, pull_url(device.addr())))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let mut replies = bad_frames(camera);
    replies.push(Reply::Bytes(Vec::new())); // connection closed without a byte
    let after = live_across_bad_input(&mut viewer, camera, &device.device, replies, 20).await;
    assert_picture(&after);
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

/// Needs the source supervision that keeps the WebRTC session up while a source reconnects
/// for its last assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_esp32_stalling_mid_frame_is_reconnected() {
    let camera = "esp32-pull-stall";
    let server = TestServer::start().await.unwrap();
    let device = Esp32Server::start(picture(camera)).unwrap();
    let _publisher = server
        .start_publisher(config(&server, camera, pull_url(device.addr())))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let replies = vec![stall(camera)];
    let after = live_across_bad_input(&mut viewer, camera, &device.device, replies, 20).await;
    assert_picture(&after);
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

/// Start a push device aimed at a free port and a publisher listening there.
async fn push_setup(
    camera: &str,
    mode: PushMode,
) -> (TestServer, PushDevice, sightline_tests::TestPublisher) {
    let server = TestServer::start().await.unwrap();
    let bind: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The device first: it keeps trying until the publisher listens, as a real one would.
    let device = PushDevice::start(bind, mode, FPS, picture(camera));
    let publisher = server
        .start_publisher(config(
            &server,
            camera,
            format!("esp32-push://{bind}").parse().unwrap(),
        ))
        .await
        .unwrap();
    (server, device, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pushing_one_jpeg_per_connection_streams_in_order() {
    let camera = "esp32-push-one";
    let (server, device, _publisher) = push_setup(camera, PushMode::OnePerConnection).await;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();

    let frames = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert_picture(&frames);
    assert!(
        device.device.connections() >= 31,
        "{}",
        device.device.connections()
    );
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pushing_many_jpegs_on_one_connection_streams_in_order() {
    let camera = "esp32-push-many";
    let (server, device, _publisher) = push_setup(camera, PushMode::Persistent).await;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();

    let frames = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert_picture(&frames);
    assert_eq!(
        device.device.connections(),
        1,
        "all frames on one connection"
    );
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jpegs_pushed_on_a_connection_are_skipped() {
    let camera = "esp32-push-bad";
    let (server, device, _publisher) = push_setup(camera, PushMode::Persistent).await;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let replies = bad_frames(camera);
    let after = live_across_bad_input(&mut viewer, camera, &device.device, replies, 20).await;
    assert_picture(&after);
    assert_eq!(
        device.device.connections(),
        1,
        "the bad data did not cost the connection"
    );
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}

/// Needs the source supervision that keeps the WebRTC session up while a source reconnects
/// for its last assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushing_device_stalling_mid_frame_is_dropped_and_comes_back() {
    let camera = "esp32-push-stall";
    let (server, device, _publisher) = push_setup(camera, PushMode::Persistent).await;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let replies = vec![stall(camera)];
    let after = live_across_bad_input(&mut viewer, camera, &device.device, replies, 20).await;
    assert_picture(&after);
    assert!(
        device.device.connections() >= 2,
        "the device reconnected after its stall"
    );
    assert_session_stayed_up(&viewer);
    viewer.close().await;
    server.shutdown().await;
}
