//! Settings a viewer changed survive a publisher restart: the publisher keeps them (and the
//! presets saved, renamed or deleted) in its state folder and starts with them, so frames
//! come back at the saved size and rate and every viewer's status shows them. A camera's
//! schedule of presets is kept the same way, and fires on time.

mod control_support;

use std::time::Duration;

use control_support::{
    control_viewer, frames_of_size, median_capture_interval_ms, ok, set, status_when_available,
    WAIT,
};
use serde_json::json;
use sightline_protocol::control::{ControlErrorCode, ControlMessage, Response, ScheduleEntry};
use sightline_tests::harness::{publisher_config, TestPublisher, CAMERA_ONLINE_TIMEOUT};
use sightline_tests::temp::TempPath;
use sightline_tests::{HeadlessViewer, TestServer};

/// A server and a 640×480 publisher of `camera` at `fps` that keeps its settings in a
/// folder of its own.
async fn with_state_dir(camera: &str, fps: u32) -> (TestServer, TempPath, TestPublisher) {
    let state_dir = TempPath::dir(&format!("control-state-{camera}")).unwrap();
    let server = TestServer::start().await.unwrap();
    let mut cfg = publisher_config(&server.ws_url(), camera);
    (cfg.width, cfg.height, cfg.fps) = (640, 480, fps);
    cfg.state_dir = Some(state_dir.path().to_owned());
    let publisher = server.start_publisher(cfg).await.unwrap();
    (server, state_dir, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_settings_and_presets_survive_a_publisher_restart() {
    const CAMERA: &str = "cam-persist";
    let (server, state_dir, publisher) = with_state_dir(CAMERA, 30).await;
    let mut viewer = control_viewer(&server, CAMERA, None).await;

    let saved = json!({"width": 320, "height": 240, "fps": 15, "brightness": 20});
    let r = set(&viewer, saved).await;
    let want = r.settings.unwrap();
    assert_eq!(
        (want.width, want.height, want.fps, want.brightness),
        (Some(320), Some(240), Some(15), Some(20))
    );
    // A second preset, renamed and then kept; a third, deleted.
    ok(&viewer, json!({"type": "save_preset", "name": "spare"})).await;
    ok(&viewer, json!({"type": "save_preset", "name": "scratch"})).await;
    let r = ok(
        &viewer,
        json!({"type": "rename_preset", "name": "spare", "new_name": "dusk"}),
    )
    .await;
    assert_eq!(r.message, "renamed preset `spare` to `dusk`");
    ok(&viewer, json!({"type": "delete_preset", "name": "scratch"})).await;
    // Built-in presets stay as they are.
    let refused = viewer
        .control_request(json!({"type": "delete_preset", "name": "hd"}), WAIT)
        .await
        .unwrap();
    assert_eq!(
        refused.error.map(|e| (e.code, e.field)),
        Some((ControlErrorCode::InvalidValue, Some("name".into())))
    );
    ok(&viewer, json!({"type": "save_preset", "name": "night"})).await;
    let version_before = viewer.control().last_state().unwrap().version;
    frames_of_size(&mut viewer, (320, 240), 5, WAIT).await;
    assert!(
        std::fs::read_dir(state_dir.path())
            .unwrap()
            .next()
            .is_some(),
        "the settings were written to the state folder"
    );

    let states_before = viewer.control().states().len();
    // The same viewer (it survives the camera going away) asks the new publisher.
    let (_publisher, status) = restart_and_ask(publisher, &server, CAMERA, &viewer).await;
    let now = status.settings.unwrap();
    assert_eq!(
        (now.width, now.height, now.fps, now.brightness),
        (want.width, want.height, want.fps, want.brightness),
        "settings after the restart"
    );
    let presets = status.status.unwrap().presets;
    assert!(presets.contains(&"night".to_owned()), "{presets:?}");
    assert_eq!(
        &presets[3..],
        ["dusk", "night"],
        "renamed and deleted presets stay so"
    );
    // The new publisher announces its state when its control channel opens.
    let state = viewer
        .control()
        .wait_for(WAIT, "the new publisher's state", |msgs| {
            let states: Vec<_> = msgs
                .iter()
                .filter_map(|r| match &r.message {
                    ControlMessage::State(s) => Some(s),
                    _ => None,
                })
                .collect();
            states[states_before.min(states.len())..]
                .iter()
                .rev()
                .find(|s| s.settings == now)
                .map(|s| (*s).clone())
        })
        .await
        .unwrap();
    assert!(
        state.version >= version_before,
        "versions keep growing across restarts ({} after {version_before})",
        state.version
    );

    // Every frame of the new publisher (the old one is gone: the new one answered) at the
    // saved size, and at the saved rate.
    viewer.clear_events();
    let mut frames = Vec::new();
    while frames.len() < 16 {
        let f = viewer.next_frame(Duration::from_secs(20)).await.unwrap();
        assert_eq!((f.width, f.height), (320, 240), "a frame after the restart");
        if f.stamp.is_some() {
            frames.push(f);
        }
    }
    let stats = viewer.stats();
    assert!(
        stats.camera_offline_events >= 1,
        "the publisher did restart: {stats:?}"
    );
    assert_eq!(stats.sessions, 1, "{stats:?}");
    let interval = median_capture_interval_ms(&frames);
    assert!(
        (55.0..=80.0).contains(&interval),
        "frames {interval:.1} ms apart, not 15 fps"
    );
    viewer.close().await;
    server.shutdown().await;
}

/// Restart the publisher and ask it, through `viewer`, for its settings and status once it
/// answers.
async fn restart_and_ask(
    publisher: TestPublisher,
    server: &TestServer,
    camera: &str,
    viewer: &HeadlessViewer,
) -> (TestPublisher, Response) {
    let publisher = publisher.restart().await;
    server
        .wait_camera_online(camera, CAMERA_ONLINE_TIMEOUT)
        .await
        .unwrap();
    let status = status_when_available(viewer, Duration::from_secs(20)).await;
    (publisher, status)
}

/// A schedule as `(at, preset)` pairs, for comparing.
fn pairs(schedule: &[ScheduleEntry]) -> Vec<(String, String)> {
    schedule
        .iter()
        .map(|e| (e.at.clone(), e.preset.clone()))
        .collect()
}

/// `HH:MM` of local minute `minute` (`local_minute_now`'s count).
fn hh_mm(minute: i64) -> String {
    let m = minute.rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// A schedule set by a viewer: listed to every viewer, its entry for this minute applied by
/// the publisher (the state says `by: "schedule"`), malformed or unknown entries refused,
/// and the whole of it still there after a publisher restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_at_its_minute_and_survives_a_publisher_restart() {
    use sightline_publisher::control::schedule::local_minute_now;
    const CAMERA: &str = "cam-schedule";
    let (server, _state_dir, publisher) = with_state_dir(CAMERA, 15).await;
    let viewer = control_viewer(&server, CAMERA, None).await;

    // Bad schedules: a malformed time, a preset the camera does not have.
    for (schedule, code) in [
        (
            json!([{"at": "25:00", "preset": "hd"}]),
            ControlErrorCode::InvalidValue,
        ),
        (
            json!([{"at": "08:00", "preset": "nope"}]),
            ControlErrorCode::UnknownPreset,
        ),
    ] {
        let r = viewer
            .control_request(json!({"type": "set_schedule", "schedule": schedule}), WAIT)
            .await
            .unwrap();
        let e = r.error.expect("refused");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (code, Some("schedule")),
            "{}",
            e.message
        );
    }

    // Not in the last seconds of a minute, so "now" is still now when it arrives.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(62 - second)).await;
    }
    let now = local_minute_now();
    let (this_minute, tonight) = (hh_mm(now), hh_mm(now + 12 * 60));
    let r = ok(
        &viewer,
        json!({"type": "set_schedule", "schedule": [
            {"at": tonight, "preset": "hd"},
            {"at": this_minute, "preset": "low_bandwidth"},
        ]}),
    )
    .await;
    assert!(r.message.starts_with("schedule: "), "{}", r.message);
    let fired = viewer
        .control()
        .wait_for(WAIT, "the schedule's state change", |msgs| {
            msgs.iter().find_map(|m| match &m.message {
                ControlMessage::State(s) if s.by.as_deref() == Some("schedule") => Some(s.clone()),
                _ => None,
            })
        })
        .await
        .unwrap();
    assert_eq!(fired.status.preset.as_deref(), Some("low_bandwidth"));
    let listed = pairs(&fired.status.schedule);
    let mut want = vec![
        (this_minute.clone(), "low_bandwidth".to_owned()),
        (tonight.clone(), "hd".to_owned()),
    ];
    want.sort();
    assert_eq!(listed, want, "sorted by time");

    let (_publisher, status) = restart_and_ask(publisher, &server, CAMERA, &viewer).await;
    let kept = pairs(&status.status.unwrap().schedule);
    assert_eq!(kept, want, "the schedule after the restart");
    viewer.close().await;
    server.shutdown().await;
}
