//! On-demand publishing: a publisher started with on-demand stays connected but idle (no
//! capture, no encoding, no media) until the first viewer subscribes, and stops again a
//! configured time after the last viewer leaves.

mod control_support;

use std::time::Duration;

use control_support::{control_viewer, WAIT};
use serde_json::json;
use sightline_protocol::SourceState;
use sightline_publisher::barcode;
use sightline_tests::harness::{publisher_config, wait_until, TEST_FPS};
use sightline_tests::TestServer;

const CAMERA: &str = "cam-on-demand";
const IDLE_STOP: Duration = Duration::from_secs(2);

/// Video frames the SFU received from publishers so far.
async fn frames_in(server: &TestServer) -> u64 {
    server.sfu().stats().await.frames_received
}

/// The camera's source state as `/api/cameras` shows it.
async fn source_state(server: &TestServer) -> Option<SourceState> {
    let cams = server.cameras().await.unwrap();
    let cam = cams.into_iter().find(|c| c.id == CAMERA)?;
    cam.source_state.map(|s| s.state)
}

async fn wait_source_state(server: &TestServer, want: SourceState) {
    wait_until(WAIT, &format!("source state {want:?}"), async || {
        (source_state(server).await == Some(want)).then_some(())
    })
    .await
    .unwrap();
}

/// No frame reaches the SFU for `window`.
async fn assert_no_media_for(server: &TestServer, window: Duration, when: &str) {
    let before = frames_in(server).await;
    tokio::time::sleep(window).await;
    let after = frames_in(server).await;
    assert_eq!(
        after,
        before,
        "{when}: the publisher sent {} frames",
        after - before
    );
}

/// A viewer joins: frames start and the publisher says it is streaming. When the publisher
/// was `idle`, they were all captured after the viewer subscribed (nothing was captured, or
/// is replayed, from before); a viewer joining a stream may start from the frames since its
/// last keyframe. Returns the viewer and the first frame's stamp.
async fn join_and_watch(
    server: &TestServer,
    idle: bool,
) -> (sightline_tests::HeadlessViewer, barcode::Stamp) {
    let subscribed_at = barcode::now_us();
    let mut viewer = control_viewer(server, CAMERA, None).await;
    let first = viewer.next_frame(Duration::from_secs(15)).await.unwrap();
    let stamp = first.stamp.expect("a readable barcode");
    assert!(
        !idle || stamp.capture_us >= subscribed_at,
        "the first frame was captured {} ms before anyone subscribed",
        (subscribed_at - stamp.capture_us) / 1000
    );
    for _ in 0..30 {
        viewer.next_frame(WAIT).await.unwrap();
    }
    let r = viewer
        .control_request(json!({"type": "get_status"}), WAIT)
        .await
        .unwrap();
    assert!(r.success, "{r:?}");
    assert!(r.status.unwrap().streaming, "streaming while watched");
    (viewer, stamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_publisher_streams_only_while_watched() {
    let server = TestServer::start().await.unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    cfg.on_demand = true;
    cfg.idle_stop = IDLE_STOP;
    let _publisher = server.start_publisher(cfg).await.unwrap();

    // Idle: online, but nothing comes in, and the camera list says why.
    wait_source_state(&server, SourceState::Idle).await;
    assert_no_media_for(&server, Duration::from_secs(2), "idle before any viewer").await;

    let (first, stamp) = join_and_watch(&server, true).await;
    // The test pattern numbers the frames it renders: the first one sent is among the first
    // it ever made, so it rendered nothing while idle.
    assert!(
        stamp.frame < TEST_FPS,
        "frame {} first: the source ran while idle",
        stamp.frame
    );
    assert_eq!(source_state(&server).await, Some(SourceState::Live));
    let (second, _) = join_and_watch(&server, false).await;
    first.close().await;
    // One viewer left, one still watching: it keeps going.
    let before = frames_in(&server).await;
    tokio::time::sleep(IDLE_STOP + Duration::from_secs(1)).await;
    let sent = frames_in(&server).await - before;
    let expected = (IDLE_STOP.as_secs_f64() + 1.0) * TEST_FPS as f64;
    assert!(
        sent as f64 > expected * 0.5,
        "only {sent} frames while a viewer still watched"
    );
    second.close().await;
    // Not at once: the idle-stop time runs first (a viewer reloading the page comes back).
    let before = frames_in(&server).await;
    tokio::time::sleep(IDLE_STOP / 3).await;
    assert!(
        frames_in(&server).await > before,
        "stopped before the idle-stop time"
    );

    // After the last viewer leaves and the idle-stop time passes, media stops.
    wait_until(
        IDLE_STOP + Duration::from_secs(5),
        "the stream to stop",
        async || {
            let before = frames_in(&server).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            (frames_in(&server).await == before).then_some(())
        },
    )
    .await
    .unwrap();
    assert_no_media_for(
        &server,
        Duration::from_secs(2),
        "idle after the last viewer left",
    )
    .await;
    wait_source_state(&server, SourceState::Idle).await;

    // And it starts again for the next viewer.
    let (again, _) = join_and_watch(&server, true).await;
    again.close().await;
    server.shutdown().await;
}
