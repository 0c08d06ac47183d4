//! One camera, one viewer: every frame the camera captures reaches the viewer, decodes,
//! and is the right frame of the right camera.

use std::time::Duration;

use sightline_publisher::barcode::tag_for;
use sightline_tests::harness::{publisher_config, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::{HeadlessViewer, TestPublisher, TestServer, ViewerConfig};

const CAMERA: &str = "cam-live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_every_frame_of_a_live_camera_in_order() {
    let server = TestServer::start().await.unwrap();
    let _publisher = TestPublisher::start(publisher_config(&server.ws_url(), CAMERA));
    server
        .wait_camera_online(CAMERA, Duration::from_secs(20))
        .await
        .unwrap();

    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();

    let first = viewer.next_frame(Duration::from_secs(10)).await.unwrap();
    assert!(first.keyframe, "a viewer's first frame is a keyframe");
    let mut prev = first.stamp.expect("the first frame carries a barcode");

    for i in 0..90 {
        let f = viewer.next_frame(Duration::from_secs(5)).await.unwrap();
        let stamp = f
            .stamp
            .unwrap_or_else(|| panic!("frame {i} after the first has no readable barcode"));
        assert_eq!(
            stamp.frame,
            prev.frame + 1,
            "frame numbers follow each other with no gap"
        );
        assert_eq!(stamp.tag, tag_for(CAMERA), "the frame comes from {CAMERA}");
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
        assert!(
            stamp.capture_us >= prev.capture_us,
            "capture times never go back"
        );
        // Both stamps come from this machine's wall clock: a frame cannot arrive before it
        // was captured, and on loopback it does not take seconds.
        let latency = f.received_at_us as i64 - stamp.capture_us as i64;
        assert!(
            (0..5_000_000).contains(&latency),
            "latency {latency} µs is not plausible"
        );
        prev = stamp;
    }

    let stats = viewer.stats();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.sessions, 1, "{stats:?}");
    viewer.close().await;
    server.shutdown().await;
}
