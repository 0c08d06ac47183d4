//! One camera, many viewers: the SFU fans one publisher out to all of them, gets late
//! joiners a keyframe at once, and forgets viewers that leave.

use std::time::Duration;

use futures_util::future::join_all;
use sightline_publisher::barcode::tag_for;
use sightline_tests::harness::{publisher_config, wait_until};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig, ViewerEvent};

const VIEWERS: usize = 10;

fn stat(stats: &serde_json::Value, key: &str) -> u64 {
    stats["sfu"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("/api/stats has no sfu.{key}: {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_all_decode_and_leave_no_trace() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-fan";
    let mut cfg = publisher_config(&server.ws_url(), camera);
    cfg.keyframe_interval = Duration::from_secs(60);
    let _publisher = server.start_publisher(cfg).await.unwrap();

    let viewers = join_all(
        (0..VIEWERS).map(|_| HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))),
    )
    .await;
    let mut viewers: Vec<HeadlessViewer> = viewers.into_iter().map(|v| v.unwrap()).collect();

    for (i, v) in viewers.iter_mut().enumerate() {
        for _ in 0..30 {
            let f = v.next_frame(Duration::from_secs(20)).await.unwrap();
            let stamp = f
                .stamp
                .unwrap_or_else(|| panic!("viewer {i}: frame without barcode"));
            assert_eq!(stamp.tag, tag_for(camera), "viewer {i}");
        }
    }

    // One more that only counts frames (as load tests use): it receives without decoding.
    let mut config = ViewerConfig::new(server.ws_url(), camera);
    config.decode = false;
    let mut counting = HeadlessViewer::connect(config).await.unwrap();
    for _ in 0..30 {
        let f = counting.next_frame(Duration::from_secs(20)).await.unwrap();
        assert_eq!(f.stamp, None);
    }
    let counted = counting.stats();
    assert!(counted.frames_received >= 30, "{counted:?}");
    assert_eq!(counted.frames_decoded, 0, "{counted:?}");
    viewers.push(counting);

    let stats = server.stats().await.unwrap();
    assert_eq!(stat(&stats, "viewers"), VIEWERS as u64 + 1, "{stats}");
    assert_eq!(stat(&stats, "publishers"), 1, "{stats}");

    join_all(viewers.into_iter().map(|v| v.close())).await;

    // The publisher's peer and its two tracks (H.264, and VP8 for viewers without H.264)
    // are all that remain.
    let stats = wait_until(Duration::from_secs(15), "viewers freed", async || {
        let s = server.stats().await.ok()?;
        (stat(&s, "viewers") == 0).then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(stat(&stats, "publishers"), 1, "{stats}");
    assert_eq!(stat(&stats, "peers"), 1, "{stats}");
    assert_eq!(stat(&stats, "tracks"), 2, "{stats}");
    let cams = server.cameras().await.unwrap();
    assert_eq!(cams[0].viewers, 0, "{cams:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_mid_stream_sees_a_picture_within_a_second() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-join";
    let mut cfg = publisher_config(&server.ws_url(), camera);
    // With a one-minute GOP, only a keyframe request can get a late joiner started fast.
    cfg.keyframe_interval = Duration::from_secs(60);
    let _publisher = server.start_publisher(cfg).await.unwrap();

    let mut early = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    // Well past the stream's first IDR: 90 frames (3 s) of its deltas seen by another viewer.
    for _ in 0..90 {
        early.next_frame(Duration::from_secs(10)).await.unwrap();
    }

    let mut config = ViewerConfig::new(server.ws_url(), camera);
    // The late viewer never asks for a keyframe itself: the SFU must.
    config.keyframe_request_on_error = false;
    let mut late = HeadlessViewer::connect(config).await.unwrap();
    let subscribed_at = match late.next_event(Duration::from_secs(5)).await.unwrap() {
        ViewerEvent::Subscribed { at_us, .. } => at_us,
        other => panic!("expected Subscribed first, got {other:?}"),
    };
    let first = late.next_frame(Duration::from_secs(5)).await.unwrap();
    let waited_ms = (first.received_at_us - subscribed_at) / 1000;
    assert!(
        waited_ms <= 1000,
        "first picture {waited_ms} ms after subscribing"
    );
    assert!(
        first.keyframe,
        "the first frame forwarded to a viewer is a keyframe"
    );
    assert!(first.stamp.is_some());
    let stats = late.stats();
    assert_eq!(stats.keyframe_requests_sent, 0, "{stats:?}");
    assert_eq!(
        stats.decode_errors, 0,
        "no delta frame before the keyframe: {stats:?}"
    );

    // The early viewer kept decoding through the extra keyframe.
    let f = early.next_frame(Duration::from_secs(5)).await.unwrap();
    assert!(f.stamp.is_some());
    assert_eq!(early.stats().decode_errors, 0);

    late.close().await;
    early.close().await;
    server.shutdown().await;
}
