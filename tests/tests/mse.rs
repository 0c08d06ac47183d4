//! The MSE door end to end: a real publisher, the server, and headless MSE readers on
//! `GET /api/cameras/{id}/mse`. The stream is checked by decoding it (openh264, barcodes)
//! and by an independent demuxer (GStreamer's qtdemux).

use std::time::{Duration, Instant};

use serde_json::json;
use sightline_publisher::barcode::tag_for;
use sightline_publisher::source::SourceUrl;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{
    loopback_server_config, publisher_config, with_tokens, TEST_HEIGHT, TEST_WIDTH,
};
use sightline_tests::mse_viewer::probe_fmp4;
use sightline_tests::noisy_movie::noisy_movie;
use sightline_tests::temp::TempPath;
use sightline_tests::{HeadlessViewer, MseEvent, MseViewer, TestServer, ViewerConfig};

const WAIT: Duration = Duration::from_secs(15);

/// Events until the first init segment; the control messages before it.
async fn until_init(
    v: &mut MseViewer,
) -> (sightline_protocol::wire::MseInit, Vec<serde_json::Value>) {
    let mut texts = Vec::new();
    loop {
        match v.next(WAIT).await.unwrap() {
            MseEvent::Init(init) => return (init, texts),
            MseEvent::Text(t) => texts.push(t),
            MseEvent::Frame { .. } => panic!("a frame before the init segment"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_plays_as_valid_fragmented_mp4_from_a_keyframe() {
    const CAMERA: &str = "cam-mse";
    let server = TestServer::start().await.unwrap();
    let _camera = server.start_camera(CAMERA).await.unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let asked = Instant::now();
    let mut v = MseViewer::connect(&server.http_url(), CAMERA, None)
        .await
        .unwrap();
    let (init, texts) = until_init(&mut v).await;
    assert_eq!(
        texts[0]["type"], "welcome",
        "control speaks first: {texts:?}"
    );
    assert_eq!((init.width, init.height), (TEST_WIDTH, TEST_HEIGHT));
    assert!(init.codec.starts_with("avc1.42"), "{}", init.codec);

    // The first frame is a keyframe; frames decode, in order, with the camera's barcode.
    let mut last: Option<u64> = None;
    let mut first = true;
    for _ in 0..45 {
        let event = v.next(WAIT).await.unwrap();
        let MseEvent::Frame {
            decode_time,
            keyframe,
            ..
        } = event
        else {
            continue;
        };
        if first {
            assert!(keyframe, "the first fragment is a keyframe");
            eprintln!("MSE time to first frame: {:?}", asked.elapsed());
            first = false;
        }
        if let Some(t) = last {
            assert!(decode_time > t, "decode time {decode_time} after {t}");
        }
        last = Some(decode_time);
    }
    let mut prev = None;
    for _ in 0..15 {
        let f = v.next_frame(WAIT).await.unwrap();
        let stamp = f.stamp.expect("a readable barcode");
        assert_eq!(stamp.tag, tag_for(CAMERA));
        assert_eq!((f.width, f.height), (TEST_WIDTH, TEST_HEIGHT));
        if let Some(p) = prev {
            assert!(stamp.frame > p, "frame numbers go up");
        }
        prev = Some(stamp.frame);
    }

    // The viewer counts, in the camera list and in the SFU.
    let cams = server.cameras().await.unwrap();
    assert_eq!(cams.iter().find(|c| c.id == CAMERA).unwrap().viewers, 1);
    assert_eq!(server.stats().await.unwrap()["sfu"]["viewers"], 1);

    // An independent demuxer reads the same bytes.
    assert_eq!(v.recordings.len(), 1);
    let file = TempPath::file("mse.mp4", &v.recordings[0]).unwrap();
    let probe = probe_fmp4(file.path()).unwrap();
    assert_eq!(probe.error, None);
    assert_eq!(probe.caps.len(), 1, "{:?}", probe.caps);
    assert_eq!(probe.caps[0].media, "video/x-h264");
    assert_eq!(
        (probe.caps[0].width, probe.caps[0].height),
        (TEST_WIDTH, TEST_HEIGHT)
    );
    assert!(probe.samples.len() >= 50, "{} samples", probe.samples.len());
    assert!(probe.samples[0].sync, "starts at a sync sample");
    let dts: Vec<u64> = probe
        .samples
        .iter()
        .map(|s| s.dts.or(s.pts).unwrap())
        .collect();
    assert!(dts.windows(2).all(|w| w[1] > w[0]), "monotonic: {dts:?}");
    // 30 fps: about 33 ms apart on average.
    let mean_ns = (dts[dts.len() - 1] - dts[0]) / (dts.len() as u64 - 1);
    assert!(
        (20_000_000..60_000_000).contains(&mean_ns),
        "mean step {mean_ns} ns"
    );

    v.close().await;
    // The viewer count goes back down when the socket closes.
    sightline_tests::harness::wait_until(WAIT, "the viewer count back to 0", async || {
        let cams = server.cameras().await.ok()?;
        (cams.iter().find(|c| c.id == CAMERA)?.viewers == 0).then_some(())
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_change_sends_a_new_init_and_playback_goes_on() {
    const CAMERA: &str = "cam-mse-resize";
    let server = TestServer::start().await.unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    (cfg.width, cfg.height) = (640, 480);
    let _camera = server.start_publisher(cfg).await.unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let mut v = MseViewer::connect(&server.http_url(), CAMERA, None)
        .await
        .unwrap();
    let (init, _) = until_init(&mut v).await;
    assert_eq!((init.width, init.height), (640, 480));
    for _ in 0..10 {
        assert_eq!(v.next_frame(WAIT).await.unwrap().width, 640);
    }
    // Camera control on the same socket.
    let command = json!({"v": 1, "type": "update_settings", "request_id": "r1",
                         "settings": {"width": 320, "height": 240}});
    v.send_text(&command.to_string()).await.unwrap();
    let mut answered = false;
    let mut new_init = None;
    let deadline = Instant::now() + WAIT;
    while (!answered || new_init.is_none()) && Instant::now() < deadline {
        match v.next(WAIT).await.unwrap() {
            MseEvent::Text(t) if t["type"] == "response" && t["request_id"] == "r1" => {
                assert_eq!(t["success"], true, "{t}");
                answered = true;
            }
            MseEvent::Init(i) => new_init = Some(i),
            _ => {}
        }
    }
    assert!(answered, "the command was answered on the socket");
    let init = new_init.expect("a new init segment");
    assert_eq!((init.width, init.height), (320, 240));
    for _ in 0..15 {
        let f = v.next_frame(WAIT).await.unwrap();
        assert_eq!((f.width, f.height), (320, 240));
        assert!(f.stamp.is_some());
    }

    // An init segment starts a new file for a demuxer (a file has one `moov`); each plays.
    assert_eq!(v.recordings.len(), 2);
    for (recording, size) in v.recordings.iter().zip([(640, 480), (320, 240)]) {
        let file = TempPath::file("mse-resize.mp4", recording).unwrap();
        let probe = probe_fmp4(file.path()).unwrap();
        assert_eq!(probe.error, None);
        let sizes: Vec<(u32, u32)> = probe.caps.iter().map(|c| (c.width, c.height)).collect();
        assert_eq!(sizes, vec![size]);
        assert!(probe.samples[0].sync, "each part starts at a keyframe");
        let dts: Vec<u64> = probe
            .samples
            .iter()
            .map(|s| s.dts.or(s.pts).unwrap())
            .collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "monotonic");
    }
    v.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_loses_frames_to_a_keyframe_and_nobody_else_waits() {
    const CAMERA: &str = "cam-mse-slow";
    let server = TestServer::start().await.unwrap();
    // Camera-like noise at 3 Mbit/s: 8 s of it (3 MB) is far more than the socket buffers
    // between the server and a stalled reader hold (the test pattern compresses too well).
    let movie = TempPath::file("mse-slow.mjpeg", &noisy_movie(640, 480, 20)).unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    cfg.source = SourceUrl::File {
        path: movie.path().to_owned(),
    };
    (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (640, 480, 15, 3_000_000);
    let _camera = server.start_publisher(cfg).await.unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let mut slow = MseViewer::connect_with(&server.http_url(), CAMERA, None, Some(4096))
        .await
        .unwrap();
    until_init(&mut slow).await;
    let mut fast = MseViewer::connect(&server.http_url(), CAMERA, None)
        .await
        .unwrap();
    let mut webrtc = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA))
        .await
        .unwrap();
    // The slow one reads nothing for 8 s; the others read everything.
    let start = Instant::now();
    let (mut fast_frames, mut webrtc_frames) = (0, 0);
    while start.elapsed() < Duration::from_secs(8) {
        tokio::select! {
            f = fast.next_frame(WAIT) => { f.unwrap(); fast_frames += 1; }
            f = webrtc.next_frame(WAIT) => { f.unwrap(); webrtc_frames += 1; }
        }
    }
    eprintln!("while one reader stalled 8 s: MSE {fast_frames} frames, WebRTC {webrtc_frames}");
    assert!(
        fast_frames >= 90,
        "the fast MSE reader got {fast_frames} frames in 8 s"
    );
    assert!(
        webrtc_frames >= 90,
        "the WebRTC viewer got {webrtc_frames} frames in 8 s"
    );
    let dropped = server.stats().await.unwrap()["sfu"]["watcher_frames_dropped"]
        .as_u64()
        .unwrap();
    assert!(dropped > 0, "the stalled reader's frames were dropped");

    // What was held for it is bounded: draining gives far fewer than the ~120 frames the
    // camera made meanwhile, and then it is live again, from a keyframe.
    // What was held arrives back to back; live frames then come one every ~66 ms.
    let mut held = 0;
    loop {
        let asked = Instant::now();
        if let MseEvent::Frame { .. } = slow.next(WAIT).await.unwrap() {
            if asked.elapsed() > Duration::from_millis(30) {
                break;
            }
            held += 1;
        }
        assert!(held < 200, "the stalled reader is never caught up");
    }
    eprintln!("frames held for the stalled reader: {held}; dropped: {dropped}");
    assert!(held < 80, "{held} frames were held for a stalled reader");
    for _ in 0..10 {
        slow.next_frame(WAIT).await.unwrap();
    }
    slow.close().await;
    fast.close().await;
    webrtc.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_unknown_cameras_and_bad_input_get_clear_errors() {
    const CAMERA: &str = "cam-mse-auth";
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let _camera = server
        .start_publisher(server.publisher_config(CAMERA))
        .await
        .unwrap();
    server.wait_camera_online(CAMERA, WAIT).await.unwrap();

    let refused = |token: Option<String>, camera: &'static str| {
        let url = server.http_url();
        async move {
            let mut v = MseViewer::connect(&url, camera, token.as_deref())
                .await
                .unwrap();
            let MseEvent::Text(t) = v.next(WAIT).await.unwrap() else {
                panic!("an error first")
            };
            assert_eq!(t["type"], "error", "{t}");
            assert!(v.next(WAIT).await.is_err(), "then the socket closes");
            t["code"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(refused(None, CAMERA).await, "unauthorized");
    let other = server.token(Role::View, "another-camera");
    assert_eq!(refused(other, CAMERA).await, "forbidden");
    let everywhere = server.token(Role::View, "*");
    assert_eq!(
        refused(everywhere.clone(), "no-such-camera").await,
        "unknown_camera"
    );

    // A view token plays, and may not control.
    let mut v = MseViewer::connect(
        &server.http_url(),
        CAMERA,
        server.token(Role::View, CAMERA).as_deref(),
    )
    .await
    .unwrap();
    let (_, texts) = until_init(&mut v).await;
    assert_eq!(texts[0]["may_control"], false);
    v.next_frame(WAIT).await.unwrap();
    // Garbage and forbidden commands get answers; the stream goes on.
    v.send_text("{not json").await.unwrap();
    v.send_text(
        &json!({"v": 1, "type": "update_settings", "request_id": "no",
                        "settings": {"fps": 10}})
        .to_string(),
    )
    .await
    .unwrap();
    let mut codes = Vec::new();
    let deadline = Instant::now() + WAIT;
    while codes.len() < 2 && Instant::now() < deadline {
        if let MseEvent::Text(t) = v.next(WAIT).await.unwrap() {
            if t["type"] == "response" {
                codes.push(t["error"]["code"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    assert_eq!(codes, vec!["bad_message", "forbidden"]);
    for _ in 0..5 {
        v.next_frame(WAIT).await.unwrap();
    }
    v.close().await;
    server.shutdown().await;
}
