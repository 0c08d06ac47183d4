//! One camera, one viewer: every frame the camera captures reaches the viewer, decodes,
//! and is the right frame of the right camera.

use sightline_tests::harness::{TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::sequence::in_order_from_keyframe;
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

const CAMERA: &str = "cam-live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_decodes_every_frame_of_a_live_camera_in_order() {
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();

    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();

    let frames = in_order_from_keyframe(&mut viewer, CAMERA, 90)
        .await
        .unwrap();
    for pair in frames.windows(2) {
        let (prev, f) = (pair[0].stamp.unwrap(), &pair[1]);
        let stamp = f.stamp.unwrap();
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
    }

    let stats = viewer.stats();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.sessions, 1, "{stats:?}");
    viewer.close().await;
    server.shutdown().await;
}
