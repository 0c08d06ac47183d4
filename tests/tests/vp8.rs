//! VP8 for viewers without H.264, with real peers: a headless viewer whose offer has only VP8
//! (as Debian's Firefox ESR writes it) beside an H.264 viewer. The publisher (test pattern)
//! encodes VP8 only while such a viewer watches, the SFU forwards it, and the viewer decodes
//! it with libvpx and reads the barcodes. (A real Firefox: `browser_firefox.rs`.)

use std::time::{Duration, Instant};

use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

const CAMERA: &str = "cam-vp8";
const WAIT: Duration = Duration::from_secs(20);

/// Frames the SFU took from the publisher over `window`: VP8 and H.264 alike.
async fn frames_received(server: &TestServer, window: Duration) -> u64 {
    let count = |s: serde_json::Value| s["sfu"]["frames_received"].as_u64().unwrap();
    let before = count(server.stats().await.unwrap());
    tokio::time::sleep(window).await;
    count(server.stats().await.unwrap()) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_without_h264_gets_vp8_only_while_it_watches() {
    let server = TestServer::start().await.unwrap();
    let _publisher = server
        .start_publisher(server.publisher_config(CAMERA))
        .await
        .unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let mut h264 = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();
    h264.next_frame(WAIT).await.unwrap();
    // H.264 only: one stream's worth of frames.
    let alone = frames_received(&server, Duration::from_secs(2)).await;

    let mut config = ViewerConfig::new(server.ws_url(), CAMERA);
    config.vp8_only = true;
    let asked = Instant::now();
    let mut vp8 = HeadlessViewer::connect(config).await.unwrap();
    let first = vp8.next_frame(WAIT).await.unwrap();
    println!(
        "first VP8 frame {} ms after subscribing",
        asked.elapsed().as_millis()
    );
    assert!(first.keyframe, "decoding starts at a VP8 keyframe");
    // Real pictures: libvpx decodes them and the test pattern's barcodes read back, in order.
    let mut last = first.stamp.expect("a barcode in the VP8 picture").frame;
    for _ in 0..20 {
        let f = vp8.next_frame(WAIT).await.unwrap();
        assert_eq!((f.width, f.height), (first.width, first.height));
        let n = f.stamp.expect("a barcode in every VP8 picture").frame;
        assert!(n > last, "frame {n} after {last}");
        last = n;
    }
    // The H.264 viewer is unaffected.
    for _ in 0..10 {
        assert!(h264.next_frame(WAIT).await.unwrap().stamp.is_some());
    }
    let both = frames_received(&server, Duration::from_secs(2)).await;
    assert!(
        both as f64 > alone as f64 * 1.6,
        "VP8 comes beside H.264: {alone} frames alone, {both} with a VP8 viewer"
    );

    // The VP8 viewer leaves: the publisher stops encoding VP8.
    drop(vp8);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = frames_received(&server, Duration::from_secs(2)).await;
    assert!(
        (after as f64) < alone as f64 * 1.3,
        "no VP8 once nobody needs it: {alone} frames alone, {after} after the VP8 viewer left"
    );
    h264.next_frame(WAIT).await.unwrap();
}
