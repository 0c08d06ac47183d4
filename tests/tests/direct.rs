//! P2P direct mode with real peers: a publisher (test pattern) answers a headless viewer's
//! offer itself, relayed by the real server, and sends it the same H.264 frames it sends the
//! SFU; the viewer's control channel is served by the publisher with the SFU's rules. Over
//! the publisher's `--p2p-max`, a viewer watches through the SFU instead. (Browsers behind
//! real NATs: `networks.rs`.)

mod control_support;

use control_support::{ok, set, WAIT};
use serde_json::json;
use sightline_protocol::control::ControlErrorCode;
use sightline_protocol::wire::MediaPath;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, with_tokens};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig, ViewerEvent};

const CAMERA: &str = "cam-direct";

/// A viewer with a control channel asking for `path`, and the path it got.
async fn viewer(
    server: &TestServer,
    path: MediaPath,
    token: Option<String>,
) -> (HeadlessViewer, MediaPath) {
    let mut config = ViewerConfig::new(server.ws_url(), CAMERA);
    (config.control, config.path, config.token) = (true, path, token);
    let mut viewer = HeadlessViewer::connect(config).await.unwrap();
    let got = loop {
        if let ViewerEvent::Subscribed { path, .. } = viewer.next_event(WAIT).await.unwrap() {
            break path;
        }
    };
    (viewer, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_viewer_gets_video_and_control_from_the_publisher_itself() {
    let server = TestServer::start().await.unwrap();
    let mut config = server.publisher_config(CAMERA);
    config.p2p_max = 1;
    let _publisher = server.start_publisher(config).await.unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let asked = std::time::Instant::now();
    let (mut direct, path) = viewer(&server, MediaPath::Direct, None).await;
    assert_eq!(path, MediaPath::Direct);
    let frame = direct.next_frame(WAIT).await.unwrap();
    assert!(frame.width > 0, "{frame:?}");
    println!(
        "first direct frame {} ms after subscribing",
        asked.elapsed().as_millis()
    );
    // The welcome comes from the publisher, which names direct viewers so.
    let welcome = direct.wait_welcome(WAIT).await.unwrap();
    assert!(welcome.viewer.starts_with("direct-"), "{welcome:?}");
    assert!(welcome.may_control);

    // Over --p2p-max 1: through the SFU, and still video.
    let (mut relayed, path) = viewer(&server, MediaPath::Direct, None).await;
    assert_eq!(path, MediaPath::Server);
    relayed.next_frame(WAIT).await.unwrap();
    let welcome = relayed.wait_welcome(WAIT).await.unwrap();
    assert!(welcome.viewer.starts_with("peer-"), "{welcome:?}");
    let stats = server.stats().await.unwrap();
    assert_eq!(
        stats["sfu"]["viewers"], 1,
        "only the relayed viewer is the SFU's: {stats}"
    );

    // A command from the direct viewer: answered on its channel, and the new state reaches
    // the SFU's viewers too.
    let r = set(&direct, json!({"fps": 10})).await;
    assert_eq!(r.settings.unwrap().fps, Some(10));
    relayed
        .control()
        .wait_state(WAIT, "fps 10 from the direct viewer", |s| {
            s.settings.fps == Some(10)
        })
        .await
        .unwrap();
    // And the other way round.
    set(&relayed, json!({"fps": 15})).await;
    direct
        .control()
        .wait_state(WAIT, "fps 15 from the relayed viewer", |s| {
            s.settings.fps == Some(15)
        })
        .await
        .unwrap();

    // Pause stops the direct viewer's video; resume brings it back from a keyframe.
    ok(&direct, json!({"type": "pause"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    direct.clear_events();
    let quiet = direct.next_frame(std::time::Duration::from_secs(1)).await;
    assert!(quiet.is_err(), "a frame while paused: {quiet:?}");
    ok(&direct, json!({"type": "resume"})).await;
    let frame = direct.next_frame(WAIT).await.unwrap();
    assert!(frame.keyframe, "video restarts on a keyframe: {frame:?}");

    direct.close().await;
    relayed.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_only_direct_viewer_is_refused_as_the_sfu_would() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let mut config = server.publisher_config(CAMERA);
    config.token = server.token(Role::Publish, CAMERA);
    let _publisher = server.start_publisher(config).await.unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let (watcher, path) =
        viewer(&server, MediaPath::Direct, server.token(Role::View, CAMERA)).await;
    assert_eq!(path, MediaPath::Direct);
    let welcome = watcher.wait_welcome(WAIT).await.unwrap();
    assert!(!welcome.may_control);
    let r = watcher
        .update_settings(json!({"fps": 10}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        r.error.map(|e| e.code),
        Some(ControlErrorCode::Forbidden),
        "{}",
        r.message
    );
    ok(&watcher, json!({"type": "get_status"})).await;
    watcher.close().await;
    server.shutdown().await;
}
