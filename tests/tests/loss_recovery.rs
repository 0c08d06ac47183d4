//! Lost packets between the SFU and a viewer are repaired by retransmission: the viewer NACKs,
//! the SFU answers with RTX from its send buffer, and no frame is missing. Keyframe requests
//! are off, so nothing but NACK + RTX can explain a clean picture.

use sightline_tests::sequence::in_order_from_keyframe;
use sightline_tests::{DropPattern, HeadlessViewer, TestServer, ViewerConfig};

const CAMERA: &str = "cam-lossy";
/// 5% loss. At 320×240 most frames are a single packet, so this loses whole frames.
const DROP_EVERY: u32 = 20;
const FRAMES: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_packets_come_back_as_rtx_and_no_frame_is_missing() {
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();

    let mut config = ViewerConfig::new(server.ws_url(), CAMERA);
    config.keyframe_request_on_error = false;
    config.reconnect = false;
    config.drop_incoming_media = Some(DropPattern::every_nth(DROP_EVERY));
    let mut viewer = HeadlessViewer::connect(config).await.unwrap();

    in_order_from_keyframe(&mut viewer, CAMERA, FRAMES)
        .await
        .unwrap();

    let stats = viewer.stats();
    // The pattern really bit: ~5% of the media packets never reached str0m.
    let expected_drops = stats.media_packets_received / u64::from(DROP_EVERY);
    assert!(
        stats.media_packets_dropped >= 5 && stats.media_packets_dropped == expected_drops,
        "{stats:?}"
    );
    // ...and each loss was repaired by a retransmission the viewer asked for.
    assert!(stats.nacks_sent > 0, "{stats:?}");
    assert!(
        stats.rtx_packets_received >= stats.media_packets_dropped / 2,
        "losses are answered with RTX: {stats:?}"
    );
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.frames_not_contiguous, 0, "{stats:?}");
    assert_eq!(stats.keyframe_requests_sent, 0, "{stats:?}");
    assert_eq!(stats.sessions, 1, "{stats:?}");
    // The SFU counts every RTP packet it sent to viewers, retransmissions included.
    let sfu = server.sfu().stats().await;
    assert!(
        sfu.packets_forwarded >= stats.media_packets_received + stats.rtx_packets_received,
        "{sfu:?} vs {stats:?}"
    );
    eprintln!(
        "loss recovery: {} media packets, {} dropped, {} NACKs, {} RTX received",
        stats.media_packets_received,
        stats.media_packets_dropped,
        stats.nacks_sent,
        stats.rtx_packets_received
    );

    viewer.close().await;
    server.shutdown().await;
}
