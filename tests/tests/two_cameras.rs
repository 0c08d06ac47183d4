//! Two cameras at once: both are listed, and each viewer gets the camera it asked for.

use std::time::Duration;

use sightline_protocol::CameraState;
use sightline_publisher::barcode::tag_for;
use sightline_tests::harness::{publisher_config, TEST_FPS, TEST_HEIGHT, TEST_WIDTH};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_viewer_gets_the_camera_it_subscribed_to() {
    let server = TestServer::start().await.unwrap();
    let mut small = publisher_config(&server.ws_url(), "cam-b");
    small.width = 256;
    small.height = 192;
    let _a = server.start_camera("cam-a").await.unwrap();
    let _b = server.start_publisher(small).await.unwrap();

    let mut cameras = server.cameras().await.unwrap();
    cameras.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(cameras.len(), 2, "{cameras:?}");
    assert_eq!(cameras[0].id, "cam-a");
    assert_eq!(cameras[1].id, "cam-b");
    assert!(cameras.iter().all(|c| c.state == CameraState::Online));
    assert_eq!(
        (cameras[0].width, cameras[0].height, cameras[0].fps),
        (TEST_WIDTH, TEST_HEIGHT, TEST_FPS)
    );
    assert_eq!((cameras[1].width, cameras[1].height), (256, 192));

    let mut va = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "cam-a"))
        .await
        .unwrap();
    let mut vb = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "cam-b"))
        .await
        .unwrap();
    for _ in 0..30 {
        let fa = va.next_frame(Duration::from_secs(10)).await.unwrap();
        let fb = vb.next_frame(Duration::from_secs(10)).await.unwrap();
        assert_eq!(fa.stamp.expect("barcode on cam-a").tag, tag_for("cam-a"));
        assert_eq!(fb.stamp.expect("barcode on cam-b").tag, tag_for("cam-b"));
        assert_eq!((fa.width, fa.height), (TEST_WIDTH, TEST_HEIGHT));
        assert_eq!((fb.width, fb.height), (256, 192));
    }

    let cams = server.cameras().await.unwrap();
    let viewers_of = |id: &str| cams.iter().find(|c| c.id == id).map(|c| c.viewers);
    assert_eq!(viewers_of("cam-a"), Some(1));
    assert_eq!(viewers_of("cam-b"), Some(1));

    va.close().await;
    vb.close().await;
    server.shutdown().await;
}
