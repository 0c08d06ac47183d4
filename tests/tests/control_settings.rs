//! Settings changed live by a viewer, through the real server, SFU and publisher: the
//! received bitrate follows the bitrate set, and a new resolution reaches the same viewer
//! session (no reconnect, no camera_offline) with no long gap in frame numbers. Motion
//! detection, turned on by a viewer, sends `motion` events to viewers. A publisher given
//! several sources switches among them when a viewer says `select_source`.

mod control_support;

use std::time::{Duration, Instant};

use control_support::{control_viewer, frames_of_size, ok, set, WAIT};
use serde_json::json;
use sightline_protocol::control::{
    ApplyMode, Capability, ControlMessage, MotionEvent, MotionPhase,
};
use sightline_publisher::image::I420Frame;
use sightline_publisher::source::SourceUrl;
use sightline_publisher::NamedSource;
use sightline_tests::control_client::Received;
use sightline_tests::harness::publisher_config;
use sightline_tests::jpeg_fixture::encode_i420;
use sightline_tests::noisy_movie::noisy_movie;
use sightline_tests::temp::TempPath;
use sightline_tests::{HeadlessViewer, TestServer};

/// The longest a viewer may go without a new frame while the encoder restarts at a new size:
/// it sends the keyframe at once, so half a second is generous. In frames at 30 fps:
const KEYFRAME_WAIT_FRAMES: u32 = 15;

/// How far the received bitrate may be from the one set.
const BITRATE_TOLERANCE: f64 = 0.20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_received_bitrate_settles_at_the_bitrate_a_viewer_sets() {
    const CAMERA: &str = "cam-bitrate";
    let server = TestServer::start().await.unwrap();
    // Camera-like noise, so the encoder can fill the bitrates asked for (the test pattern
    // compresses below them whatever the target). 15 fps keeps two cores ahead of it.
    let movie = TempPath::file("bitrate.mjpeg", &noisy_movie(640, 480, 20)).unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    cfg.source = SourceUrl::File {
        path: movie.path().to_owned(),
    };
    (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (640, 480, 15, 500_000);
    let _publisher = server.start_publisher(cfg).await.unwrap();
    let mut viewer = control_viewer(&server, CAMERA, None).await;
    viewer.next_frame(WAIT).await.unwrap();

    for target in [300_000u64, 800_000] {
        let r = set(&viewer, json!({ "bitrate": target })).await;
        assert_eq!(r.settings.and_then(|s| s.bitrate), Some(target));
        // The encoder's rate control needs a moment; then measure over four seconds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (s0, t0) = (viewer.stats(), Instant::now());
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (s1, secs) = (viewer.stats(), t0.elapsed().as_secs_f64());
        let bits = (s1.frame_bytes_received - s0.frame_bytes_received) as f64 * 8.0;
        let rate = bits / secs;
        let fps = (s1.frames_received - s0.frames_received) as f64 / secs;
        eprintln!("bitrate set {target}: received {rate:.0} bit/s at {fps:.1} fps");
        let (lo, hi) = (
            target as f64 * (1.0 - BITRATE_TOLERANCE),
            target as f64 * (1.0 + BITRATE_TOLERANCE),
        );
        assert!(
            (lo..=hi).contains(&rate),
            "bitrate set to {target}, received {rate:.0} bit/s at {fps:.1} fps \
             (allowed {lo:.0}..={hi:.0})"
        );
        viewer.clear_events();
    }
    let stats = viewer.stats();
    assert_eq!(stats.sessions, 1, "{stats:?}");
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_resolution_reaches_the_same_viewer_session_without_a_gap() {
    const CAMERA: &str = "cam-resize";
    let server = TestServer::start().await.unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    (cfg.width, cfg.height) = (640, 480);
    let _publisher = server.start_publisher(cfg).await.unwrap();
    let mut viewer = control_viewer(&server, CAMERA, None).await;
    let viewer_id = viewer.control().welcome().unwrap().viewer;

    // The capabilities offer both sizes, applied with a keyframe.
    let caps = viewer.control().wait_capabilities(WAIT).await.unwrap();
    match caps.get("width") {
        Some(Capability::Enum { choices, .. }) => {
            assert!(choices.contains(&"320".to_owned()), "{choices:?}");
            assert!(choices.contains(&"640".to_owned()), "{choices:?}");
        }
        other => panic!("width capability: {other:?}"),
    }

    frames_of_size(&mut viewer, (640, 480), 10, WAIT).await;
    let mut last_frame: Option<u32> = None;
    let mut max_gap = 0;
    for (w, h) in [(320u32, 240u32), (640, 480)] {
        let old = if w == 320 { (640, 480) } else { (320, 240) };
        let r = set(&viewer, json!({"width": w, "height": h})).await;
        let now = r.settings.unwrap();
        assert_eq!((now.width, now.height), (Some(w), Some(h)));

        // Every frame from before the command on: old size until the first new one, then
        // only new ones; frame numbers keep counting up with no long gap.
        let mut new_frames = 0;
        while new_frames < 30 {
            let f = viewer.next_frame(WAIT).await.unwrap();
            assert_eq!(f.session, 1, "the same viewer session");
            let size = (f.width, f.height);
            if size == (w, h) {
                new_frames += 1;
            } else {
                assert_eq!(size, old, "a frame of an unexpected size");
                assert_eq!(new_frames, 0, "an old-size frame after a new-size one");
            }
            let stamp = f
                .stamp
                .unwrap_or_else(|| panic!("a {size:?} frame without a readable barcode"));
            if let Some(prev) = last_frame {
                assert!(
                    stamp.frame > prev,
                    "frame numbers went back ({prev} → {}): the publisher restarted",
                    stamp.frame
                );
                max_gap = max_gap.max(stamp.frame - prev - 1);
            }
            last_frame = Some(stamp.frame);
        }
        let state = viewer.control().last_state().expect("a state broadcast");
        assert_eq!(
            (state.settings.width, state.settings.height),
            (Some(w), Some(h))
        );
        assert_eq!(state.by.as_deref(), Some(viewer_id.as_str()));
    }
    eprintln!("largest frame-number gap across two resolution changes: {max_gap}");
    assert!(
        max_gap <= KEYFRAME_WAIT_FRAMES,
        "{max_gap} frames missing at a resolution change"
    );
    let stats = viewer.stats();
    assert_eq!(stats.sessions, 1, "no reconnect: {stats:?}");
    assert_eq!(stats.camera_offline_events, 0, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    viewer.close().await;
    server.shutdown().await;
}

/// A still, noisy 320×240 picture in which a 40-pixel box crosses from x=20 to x=244 at
/// y=120 (frames 15..39), then stays away; 90 frames, three seconds at 30 fps.
fn box_movie() -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut movie = Vec::new();
    for i in 0..90usize {
        let mut f = I420Frame::black(320, 240);
        for (p, y) in f.y.iter_mut().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 7) as i32 - 3;
            *y = (70 + ((p % 320) / 4) as i32 + noise) as u8;
        }
        if (15..39).contains(&i) {
            let x = 20 + (i - 15) * 8;
            for row in 120..160 {
                f.y[row * 320 + x..row * 320 + x + 40].fill(220);
            }
        }
        movie.extend(encode_i420(&f));
    }
    movie
}

/// The `motion` events among `received`, in order.
fn motions(received: &[Received]) -> Vec<MotionEvent> {
    received
        .iter()
        .filter_map(|r| match &r.message {
            ControlMessage::Motion(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn motion_events(viewer: &HeadlessViewer) -> Vec<MotionEvent> {
    motions(&viewer.control().messages())
}

/// `ai_enabled` with the built-in `motion` model: a box crossing a still, noisy picture
/// starts motion where it moves and ends it after it stops; every viewer hears both on the
/// control channel. Turned off, no more events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_in_the_picture_reaches_viewers_as_start_and_end_events() {
    const CAMERA: &str = "cam-motion";
    let server = TestServer::start().await.unwrap();
    let movie = TempPath::file("motion.mjpeg", &box_movie()).unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA);
    cfg.source = SourceUrl::File {
        path: movie.path().to_owned(),
    };
    (cfg.width, cfg.height, cfg.fps) = (320, 240, 30);
    let _publisher = server.start_publisher(cfg).await.unwrap();
    let viewer = control_viewer(&server, CAMERA, None).await;
    let caps = viewer.control().last_capabilities().unwrap();
    assert_eq!(
        caps.get("ai_model"),
        Some(&Capability::Enum {
            choices: vec!["motion".into()],
            apply: ApplyMode::Live
        })
    );
    assert!(motion_events(&viewer).is_empty(), "nothing before it is on");

    set(
        &viewer,
        json!({"ai_enabled": true, "ai_model": "motion", "ai_confidence": 0.3}),
    )
    .await;
    let pair = viewer
        .control()
        .wait_for(
            Duration::from_secs(15),
            "motion start and end",
            |received| {
                let events = motions(received);
                let start = events.iter().position(|e| e.phase == MotionPhase::Start)?;
                let end = events[start..]
                    .iter()
                    .find(|e| e.phase == MotionPhase::End)?;
                Some((events[start].clone(), end.clone()))
            },
        )
        .await
        .unwrap();
    let (start, end) = pair;
    eprintln!("motion: {start:?} then {end:?}");
    // Where the box was: rows 120..160, somewhere on its path (x 20..284).
    let [x, y, w, h] = start.region;
    assert!(y <= 120 && y + h >= 160 && y + h <= 176, "{start:?}");
    assert!(x >= 8 && x + w <= 296, "{start:?}");
    assert!(start.score >= 0.3 && start.score <= 1.0, "{start:?}");
    // It ends a second or so after the box stops, covering the box's path.
    let [ex, _, ew, _] = end.region;
    assert!(ex <= x && ex + ew >= x + w && ew > w, "{end:?}");
    let lasted = end.ts - start.ts;
    assert!(
        (1000..=3000).contains(&lasted),
        "{lasted} ms: {start:?} {end:?}"
    );

    // Off: at most the end of motion in progress, then nothing for a whole loop.
    set(&viewer, json!({"ai_enabled": false})).await;
    let off = motion_events(&viewer).len();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = &motion_events(&viewer)[off..];
    assert!(
        after.iter().all(|e| e.phase == MotionPhase::End) && after.len() <= 1,
        "{after:?}"
    );
    viewer.close().await;
    server.shutdown().await;
}

/// A publisher with two sources (the test pattern at 640×480, a 320×240 movie): a viewer
/// switches to the movie by name and back, in the same session; frames follow each source;
/// a name the publisher was not given is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_source_switches_among_the_configured_sources() {
    const CAMERA: &str = "cam-sources";
    let server = TestServer::start().await.unwrap();
    let movie = TempPath::file("sources.mjpeg", &box_movie()).unwrap();
    let mut cfg = publisher_config(&server.ws_url(), CAMERA).with_sources(vec![
        NamedSource::parse("pattern=test-pattern").unwrap(),
        NamedSource {
            name: "movie".into(),
            url: SourceUrl::File {
                path: movie.path().to_owned(),
            },
        },
    ]);
    (cfg.width, cfg.height, cfg.fps) = (640, 480, 30);
    let _publisher = server.start_publisher(cfg).await.unwrap();
    let mut viewer = control_viewer(&server, CAMERA, None).await;
    frames_of_size(&mut viewer, (640, 480), 3, WAIT).await;
    let status = viewer.control().last_state().unwrap().status;
    assert_eq!(status.sources, ["pattern", "movie"]);
    assert_eq!(status.source_name.as_deref(), Some("pattern"));

    for bad in ["garden", "rtsp://10.0.0.9/stream"] {
        let r = viewer
            .control_request(json!({"type": "select_source", "name": bad}), WAIT)
            .await
            .unwrap();
        assert!(!r.success, "{bad}: {r:?}");
    }
    let r = ok(&viewer, json!({"type": "select_source", "name": "movie"})).await;
    assert_eq!(r.message, "switching to source `movie`");
    let state = viewer
        .control()
        .wait_for(WAIT, "the state naming the movie", |msgs| {
            msgs.iter().rev().find_map(|m| match &m.message {
                ControlMessage::State(s) if s.status.source_name.as_deref() == Some("movie") => {
                    Some(s.clone())
                }
                _ => None,
            })
        })
        .await
        .unwrap();
    assert!(state.by.is_some(), "the viewer who switched: {state:?}");
    // The movie's frames: its own size, no barcode.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut movie_frames = 0;
    while movie_frames < 5 {
        assert!(
            Instant::now() < deadline,
            "no movie frames after the switch"
        );
        let f = viewer.next_frame(WAIT).await.unwrap();
        if (f.width, f.height) == (320, 240) && f.stamp.is_none() {
            movie_frames += 1;
        }
    }
    ok(&viewer, json!({"type": "select_source", "name": "pattern"})).await;
    frames_of_size(&mut viewer, (640, 480), 5, Duration::from_secs(20)).await;
    let stats = viewer.stats();
    assert_eq!(stats.sessions, 1, "no reconnect: {stats:?}");
    viewer.close().await;
    server.shutdown().await;
}
