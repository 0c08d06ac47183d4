//! The control state and command handler as a viewer sees them: commands in, replies,
//! broadcasts, intents and encode-thread snapshots out; the settings file across restarts.

use std::path::PathBuf;

use serde_json::json;
use sightline_protocol::control::{
    parse_message, Action, ApplyMode, CameraSettings, Command, ControlErrorCode, ControlMessage,
    Response,
};

use nokhwa::utils::KnownCameraControl;

use super::handler::SCHEDULE_BY;
use super::*;
use crate::source::camera_controls::{fake, CameraControlLink, DeviceValue, HardwareControls};
use crate::source::{SourceUrl, V4l2Device};

fn config(store: Option<SettingsStore>) -> ControlConfig {
    ControlConfig {
        camera_name: "Porch".into(),
        fps: 30,
        bitrate: 2_000_000,
        source_label: Some("test-pattern".into()),
        source_names: Vec::new(),
        store,
        streaming: true,
        camera_controls: Default::default(),
    }
}

fn test_pattern() -> SourceProfile {
    SourceProfile::for_source(&SourceUrl::TestPattern, (1280, 720), 30)
}

fn state() -> ControlState {
    let (s, warnings) = ControlState::new(test_pattern(), config(None));
    assert!(warnings.is_empty(), "{warnings:?}");
    s
}

fn temp_store(name: &str) -> (PathBuf, SettingsStore) {
    let dir = std::env::temp_dir().join(format!("sightline-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SettingsStore::for_camera(&dir, "porch");
    (dir, store)
}

fn cmd(from: &str, id: &str, action: Action) -> Command {
    Command {
        request_id: id.into(),
        from: Some(from.into()),
        action,
    }
}

fn update(from: &str, v: serde_json::Value) -> Command {
    cmd(
        from,
        "r",
        Action::UpdateSettings(CameraSettings::from_json(&v).unwrap()),
    )
}

fn preset(name: &str) -> Action {
    Action::ApplyPreset { name: name.into() }
}

fn refusal(r: &Response) -> (ControlErrorCode, Option<&str>, &str) {
    assert!(!r.success, "expected a refusal: {r:?}");
    let e = r.error.as_ref().unwrap();
    (e.code, e.field.as_deref(), e.message.as_str())
}

#[test]
fn defaults_describe_the_source() {
    let s = state();
    assert_eq!(
        serde_json::to_value(s.settings()).unwrap(),
        json!({"width":1280,"height":720,"fps":30,"bitrate":2000000,"contrast":0,"brightness":0,
               "saturation":0,"sharpness":0,"camera_name":"Porch","encoding":"h264","quality":80,
               "ai_enabled":false,"ai_model":"motion","ai_confidence":0.5})
    );
    let p = s.pipeline().current();
    assert_eq!((p.target_size, p.fps, p.bitrate), (None, 30, 2_000_000));
    assert!(p.is_passthrough_of_pixels());
    let status = s.status();
    assert!(status.streaming);
    assert_eq!(status.presets, vec!["low_bandwidth", "balanced", "hd"]);
    assert_eq!(status.source.as_deref(), Some("test-pattern"));
    // Announced when the channel opens: capabilities, then the state.
    match &s.announce()[..] {
        [ControlMessage::Capabilities(c), ControlMessage::State(st)] => {
            assert_eq!(c, s.capabilities());
            assert_eq!(
                (st.version, &st.settings, st.by.as_ref()),
                (s.version(), s.settings(), None)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_live_change_replies_broadcasts_and_reaches_the_encode_thread() {
    let mut s = state();
    let mut reader = s.pipeline().reader();
    let v0 = s.version();
    let out = s.handle(update(
        "peer-1",
        json!({"bitrate": "800k", "fps": 15, "brightness": 20}),
    ));
    assert!(out.response.success, "{:?}", out.response);
    assert_eq!(out.response.to.as_deref(), Some("peer-1"));
    assert_eq!(out.response.request_id.as_deref(), Some("r"));
    assert_eq!(
        out.response.message,
        "fps, bitrate, brightness applied live"
    );
    assert_eq!(
        out.response.settings.as_ref().unwrap().bitrate,
        Some(800_000)
    );
    let b = out.broadcast.clone().unwrap();
    assert_eq!((b.version, b.by.as_deref()), (v0 + 1, Some("peer-1")));
    assert_eq!(b.changed, vec!["fps", "bitrate", "brightness"]);
    assert_eq!(&b.settings, s.settings());
    assert_eq!(out.intent, None);
    assert_eq!(out.plan.unwrap().mode(), Some(ApplyMode::Live));
    let (p, changed) = reader.get();
    assert!(changed);
    assert_eq!(
        (p.fps, p.bitrate, p.adjust.brightness, p.target_size),
        (15, 800_000, 20, None)
    );
    assert_eq!(p.version, v0 + 1);
    // The wire form: the reply, then the state.
    let texts = out_messages(&mut s, update("peer-1", json!({"fps": 10})));
    assert!(matches!(
        parse_message(&texts[0]).unwrap(),
        ControlMessage::Response(_)
    ));
    assert!(matches!(
        parse_message(&texts[1]).unwrap(),
        ControlMessage::State(_)
    ));
}

fn out_messages(s: &mut ControlState, c: Command) -> Vec<String> {
    s.handle(c).messages()
}

#[test]
fn the_same_values_again_change_nothing() {
    let mut s = state();
    let v0 = s.version();
    let out = s.handle(update("peer-1", json!({"fps": 30, "camera_name": "Porch"})));
    assert!(out.response.success);
    assert!(out.response.message.starts_with("nothing changed"));
    assert_eq!((out.broadcast, s.version()), (None, v0));
}

#[test]
fn out_of_range_values_are_refused_naming_field_and_range() {
    let mut s = state();
    for (upd, field, msg) in [
        (
            json!({"bitrate": 50_000_000}),
            "bitrate",
            "bitrate: 50000000 is outside 100000..=8000000",
        ),
        (json!({"fps": 60}), "fps", "fps: 60 is outside 1..=30"),
        (
            json!({"brightness": 101}),
            "brightness",
            "brightness: 101 is outside -100..=100",
        ),
        (
            json!({"sharpness": -1}),
            "sharpness",
            "sharpness: -1 is outside 0..=100",
        ),
        (
            json!({"width": 1920, "height": 1080}),
            "width",
            "width: 1920 is not one of 320, 640, 960, 1280",
        ),
    ] {
        let out = s.handle(update("peer-2", upd.clone()));
        assert_eq!(
            refusal(&out.response),
            (ControlErrorCode::InvalidValue, Some(field), msg),
            "{upd}"
        );
        assert_eq!(out.response.to.as_deref(), Some("peer-2"));
        // The refusal carries the settings as they stand, so a client can reset its controls.
        assert_eq!(out.response.settings.as_ref(), Some(s.settings()));
        assert_eq!(out.broadcast, None);
    }
    let out = s.handle(update("peer-2", json!({"exposure_time": 100})));
    let (code, field, msg) = refusal(&out.response);
    assert_eq!(
        (code, field),
        (ControlErrorCode::Unsupported, Some("exposure_time"))
    );
    assert!(msg.contains("synthetic"), "{msg}");
}

#[test]
fn one_bad_field_changes_nothing_at_all() {
    let mut s = state();
    let before = (s.settings().clone(), s.version(), s.pipeline().current());
    let mut reader = s.pipeline().reader();
    for bad in [
        json!({"bitrate": 1_000_000, "fps": 99}),
        json!({"brightness": 10, "width": 640}), // 640x720 is no offered size
        json!({"contrast": 5, "auto_exposure": true}),
    ] {
        let out = s.handle(update("peer-1", bad.clone()));
        assert!(!out.response.success, "{bad}");
        assert_eq!(
            (s.settings().clone(), s.version(), s.pipeline().current()),
            before,
            "{bad}"
        );
        assert!(!reader.get().1, "{bad}: the encode thread saw a change");
    }
    let out = s.handle(update("peer-1", json!({"brightness": 10, "width": 640})));
    let (_, field, msg) = refusal(&out.response);
    assert_eq!(field, Some("width"));
    assert!(msg.starts_with("width: 640x720 is not an offered picture size; offered: 320x180, 640x360, 960x540, 1280x720"), "{msg}");
}

#[test]
fn a_new_size_needs_a_keyframe_and_reaches_the_scaler() {
    let mut s = state();
    let out = s.handle(update("peer-1", json!({"width": 640, "height": 360})));
    assert!(out.response.success, "{:?}", out.response);
    let plan = out.plan.unwrap();
    assert_eq!(
        (plan.keyframe.clone(), plan.mode()),
        (vec!["width", "height"], Some(ApplyMode::Keyframe))
    );
    assert!(
        out.response.message.contains("from the next keyframe"),
        "{}",
        out.response.message
    );
    assert_eq!(s.pipeline().current().target_size, Some((640, 360)));
    // Any other offered size.
    let out = s.handle(update("peer-1", json!({"width": 320, "height": 180})));
    assert!(out.response.success);
    // Back to the source's own size: no scaling at all.
    s.handle(update("peer-1", json!({"width": 1280, "height": 720})));
    assert_eq!(s.pipeline().current().target_size, None);
}

#[test]
fn presets_apply_name_themselves_and_stop_matching_after_a_change() {
    let mut s = state();
    let out = s.handle(cmd("peer-1", "p1", preset("low_bandwidth")));
    assert!(out.response.success, "{:?}", out.response);
    assert!(
        out.response
            .message
            .starts_with("preset `low_bandwidth` (640x360, 15 fps, 300 kbit/s)"),
        "{}",
        out.response.message
    );
    let st = s.settings();
    assert_eq!(
        (st.width, st.height, st.fps, st.bitrate),
        (Some(640), Some(360), Some(15), Some(300_000))
    );
    assert_eq!(
        out.broadcast.unwrap().status.preset.as_deref(),
        Some("low_bandwidth")
    );
    // Again: nothing changes, nothing to broadcast.
    assert_eq!(
        s.handle(cmd("peer-1", "p2", preset("low_bandwidth")))
            .broadcast,
        None
    );
    // A change the preset does not cover keeps it; one it covers ends it.
    let b = s
        .handle(update("peer-2", json!({"brightness": 5})))
        .broadcast
        .unwrap();
    assert_eq!(b.status.preset.as_deref(), Some("low_bandwidth"));
    let b = s
        .handle(update("peer-2", json!({"fps": 20})))
        .broadcast
        .unwrap();
    assert_eq!(b.status.preset, None);
    // HD on a 720p source is the source's best.
    s.handle(cmd("peer-1", "p3", preset("hd")));
    assert_eq!(
        (s.settings().width, s.settings().bitrate),
        (Some(1280), Some(4_000_000))
    );
    let out = s.handle(cmd("peer-1", "p4", preset("nope")));
    let (code, field, msg) = refusal(&out.response);
    assert_eq!(
        (code, field),
        (ControlErrorCode::UnknownPreset, Some("name"))
    );
    assert!(msg.contains("low_bandwidth, balanced, hd"), "{msg}");
}

#[test]
fn saved_presets_round_trip_through_the_file() {
    let (dir, store) = temp_store("presets");
    let (mut s, _) = ControlState::new(test_pattern(), config(Some(store.clone())));
    s.handle(update(
        "peer-1",
        json!({"width": 640, "height": 360, "brightness": 30, "fps": 10}),
    ));
    let out = s.handle(cmd(
        "peer-1",
        "s1",
        Action::SavePreset {
            name: "night".into(),
        },
    ));
    assert!(out.response.success, "{:?}", out.response);
    let b = out.broadcast.unwrap();
    assert_eq!(
        b.status.presets,
        vec!["low_bandwidth", "balanced", "hd", "night"]
    );
    assert_eq!(b.status.preset.as_deref(), Some("night"));
    let refused = s.handle(cmd(
        "peer-1",
        "s2",
        Action::SavePreset { name: "hd".into() },
    ));
    assert_eq!(refusal(&refused.response).1, Some("name"));
    s.handle(cmd("peer-1", "s3", preset("balanced")));
    let version = s.version();

    // "Restart": a new state from the same file.
    let (mut s2, warnings) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s2.settings(), s.settings());
    assert_eq!(s2.status().preset.as_deref(), Some("balanced"));
    assert!(
        s2.version() > version,
        "versions keep growing across restarts"
    );
    let out = s2.handle(cmd("peer-9", "a", preset("night")));
    assert!(out.response.success, "{:?}", out.response);
    let st = s2.settings();
    assert_eq!(
        (st.width, st.height, st.brightness, st.fps),
        (Some(640), Some(360), Some(30), Some(10))
    );
    // Renaming and deleting persist too, and every viewer hears of them.
    let out = s2.handle(cmd(
        "peer-9",
        "r",
        Action::RenamePreset {
            name: "night".into(),
            new_name: "dusk".into(),
        },
    ));
    assert!(out.response.success, "{:?}", out.response);
    let b = out.broadcast.unwrap();
    assert_eq!(
        b.status.presets,
        vec!["low_bandwidth", "balanced", "hd", "dusk"]
    );
    assert_eq!(
        b.status.preset.as_deref(),
        Some("dusk"),
        "the active preset follows"
    );
    let (mut s3, _) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert_eq!(s3.status().preset.as_deref(), Some("dusk"));
    let out = s3.handle(cmd(
        "peer-9",
        "d",
        Action::DeletePreset {
            name: "dusk".into(),
        },
    ));
    assert!(out.response.success, "{:?}", out.response);
    let b = out.broadcast.unwrap();
    assert_eq!(b.status.preset, None);
    let (s4, _) = ControlState::new(test_pattern(), config(Some(store)));
    assert_eq!(s4.status().presets, vec!["low_bandwidth", "balanced", "hd"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn persisted_settings_survive_a_restart_and_bad_ones_are_dropped() {
    let (dir, store) = temp_store("persist");
    let (mut s, _) = ControlState::new(test_pattern(), config(Some(store.clone())));
    s.handle(update(
        "peer-1",
        json!({"bitrate": 700000, "contrast": -20, "camera_name": "Gate"}),
    ));
    let (s2, warnings) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert!(warnings.is_empty());
    assert_eq!(s2.settings(), s.settings());
    assert_eq!(s2.pipeline().current().bitrate, 700_000);

    // Hand-edited: values this source cannot take are reported and left at the defaults.
    std::fs::write(
        store.path(),
        r#"{"format":1,"version":5,"settings":{"fps":60,"bitrate":900000,"width":1920,"height":1080,
            "auto_exposure":true,"saturation":"lots"}}"#,
    )
    .unwrap();
    let (s3, warnings) = ControlState::new(test_pattern(), config(Some(store.clone())));
    let st = s3.settings();
    assert_eq!(
        (
            st.fps,
            st.bitrate,
            st.width,
            st.auto_exposure,
            st.saturation
        ),
        (Some(30), Some(900_000), Some(1280), None, Some(0))
    );
    let all = warnings.join("\n");
    for needle in [
        "fps: 60 is outside 1..=30",
        "picture size 1920x1080 is not offered",
        "auto_exposure: not supported",
        "saturation: expected a whole number",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }

    // Garbage: a warning and the defaults, never a crash.
    std::fs::write(store.path(), "{\"format\":1,\"settings\":{\"fps\":").unwrap();
    let (s4, warnings) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert_eq!(s4.settings(), state().settings());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("not valid JSON"), "{warnings:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unwritable_state_dir_still_applies_the_change_and_says_so() {
    let dir = std::env::temp_dir().join(format!("sightline-control-ro-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    std::fs::write(&dir, "a file, not a directory").unwrap();
    let (mut s, _) = ControlState::new(
        test_pattern(),
        config(Some(SettingsStore::for_camera(&dir, "cam"))),
    );
    let out = s.handle(update("peer-1", json!({"fps": 12})));
    assert!(out.response.success);
    assert!(
        out.response.message.contains("not saved"),
        "{}",
        out.response.message
    );
    assert_eq!(s.settings().fps, Some(12));
    std::fs::remove_file(dir).unwrap();
}

#[test]
fn two_controllers_racing_converge_on_one_state() {
    let mut s = state();
    let mut broadcasts = Vec::new();
    for i in 0..20u32 {
        let (who, upd) = if i % 2 == 0 {
            (
                "peer-1",
                json!({"bitrate": 200_000 + i * 10_000, "fps": 10 + i % 7}),
            )
        } else {
            (
                "peer-2",
                json!({"bitrate": 300_000 + i * 10_000, "brightness": i as i32 - 10}),
            )
        };
        let out = s.handle(update(who, upd));
        assert!(out.response.success);
        broadcasts.push(out.broadcast.unwrap());
    }
    // Versions grow by one per change; every broadcast holds the full settings.
    for w in broadcasts.windows(2) {
        assert_eq!(w[1].version, w[0].version + 1);
        assert_eq!(w[1].settings.entries().len(), s.settings().entries().len());
    }
    // Viewers that got the broadcasts in any order and keep the highest version agree with
    // the publisher.
    for rotation in [0, 7, 13] {
        let mut seen = broadcasts.clone();
        seen.rotate_left(rotation);
        seen.reverse();
        let kept = seen.iter().max_by_key(|b| b.version).unwrap();
        assert_eq!(&kept.settings, s.settings());
        assert_eq!(kept.by.as_deref(), Some("peer-2"));
    }
}

#[test]
fn stream_and_camera_commands_become_intents() {
    let mut s = state();
    let out = s.handle(cmd("peer-1", "a", Action::StartStream));
    assert_eq!(
        (out.response.message.as_str(), out.intent),
        ("already streaming", None)
    );
    let out = s.handle(cmd("peer-1", "b", Action::StopStream));
    assert_eq!(out.intent, Some(Intent::StopStream));
    assert!(out.response.success && out.broadcast.is_none());
    // The session stops the stream, then records it: that is the broadcast.
    let b = s.set_streaming(false, Some("peer-1".into())).unwrap();
    assert!(!b.status.streaming);
    assert_eq!(s.set_streaming(false, None), None);
    assert_eq!(
        s.handle(cmd("peer-1", "c", Action::StartStream)).intent,
        Some(Intent::StartStream)
    );
    assert_eq!(
        s.handle(cmd("peer-1", "d", Action::RestartCamera)).intent,
        Some(Intent::RestartCamera)
    );
    assert_eq!(
        s.handle(cmd("peer-1", "e", Action::RequestKeyframe)).intent,
        Some(Intent::RequestKeyframe)
    );
    let out = s.handle(cmd("peer-1", "f", Action::Pause));
    assert_eq!(refusal(&out.response).0, ControlErrorCode::UnknownCommand);
}

#[test]
fn status_and_capabilities_are_read_only() {
    let mut s = state();
    let v = s.version();
    let out = s.handle(cmd("peer-3", "g", Action::GetStatus));
    assert!(out.response.success);
    assert_eq!(out.response.settings.as_ref(), Some(s.settings()));
    assert_eq!(out.response.status, Some(s.status()));
    let out = s.handle(cmd("peer-3", "h", Action::GetCapabilities));
    assert_eq!(out.response.capabilities.as_ref(), Some(s.capabilities()));
    assert_eq!((out.broadcast, out.intent, s.version()), (None, None, v));
}

#[test]
fn malformed_command_text_is_refused_to_its_sender() {
    let mut s = state();
    let out = s.handle_text(r#"{"v":1,"type":"update_settings","request_id":"q","from":"peer-5","settings":{"fps":"fast"}}"#);
    assert_eq!(refusal(&out.response).1, Some("fps"));
    assert_eq!(
        (
            out.response.request_id.as_deref(),
            out.response.to.as_deref()
        ),
        (Some("q"), Some("peer-5"))
    );
    // Refused before the settings: an unknown command still reaches its sender.
    let out = s.handle_text(r#"{"v":1,"type":"zoom","request_id":"z","from":"peer-7"}"#);
    assert_eq!(
        (refusal(&out.response).0, out.response.to.as_deref()),
        (ControlErrorCode::UnknownCommand, Some("peer-7"))
    );
    let out = s.handle_text("{nope");
    assert_eq!(
        (refusal(&out.response).0, out.response.to.as_ref()),
        (ControlErrorCode::BadMessage, None)
    );
    let out = s.handle_text(r#"{"v":1,"type":"get_status","request_id":"ok","from":"peer-6"}"#);
    assert!(out.response.success);
    assert_eq!(out.response.to.as_deref(), Some("peer-6"));
}

#[test]
fn rtsp_passthrough_allows_only_what_it_can() {
    let url = SourceUrl::Rtsp {
        url: "rtsp://cam/s".into(),
    };
    let (mut s, _) = ControlState::new(
        SourceProfile::for_source(&url, (1920, 1080), 25),
        config(None),
    );
    assert_eq!(
        s.settings().bitrate,
        None,
        "no bitrate of ours in passthrough"
    );
    assert_eq!(s.settings().fps, Some(25));
    let out = s.handle(update("peer-1", json!({"bitrate": 1_000_000})));
    let (code, field, msg) = refusal(&out.response);
    assert_eq!(
        (code, field),
        (ControlErrorCode::Unsupported, Some("bitrate"))
    );
    assert!(msg.contains("passthrough"), "{msg}");
    assert!(!s.handle(cmd("peer-1", "p", preset("hd"))).response.success);
    assert!(
        s.handle(update("peer-1", json!({"camera_name": "Gate"})))
            .response
            .success
    );
    // The source reports that it re-encodes: now everything is adjustable.
    let profile = s
        .profile()
        .clone()
        .with_detail(Some("re-encoding (High 4.0, 1920x1080)"));
    let change = s.source_changed(profile).unwrap();
    assert_eq!(change.state.settings.bitrate, Some(2_000_000));
    assert!(matches!(
        change.capabilities.get("bitrate"),
        Some(sightline_protocol::control::Capability::Int { .. })
    ));
    assert_eq!(
        s.settings().camera_name.as_deref(),
        Some("Gate"),
        "a chosen name stays"
    );
    assert!(
        s.handle(update("peer-1", json!({"bitrate": 1_000_000})))
            .response
            .success
    );
}

#[test]
fn a_source_that_learns_its_size_updates_the_choices() {
    let url = SourceUrl::Http {
        url: "http://cam/stream".into(),
    };
    let (mut s, _) = ControlState::new(
        SourceProfile::for_source(&url, (1280, 720), 30),
        config(None),
    );
    let v = s.version();
    // The first JPEG says 640x480: the size nobody chose follows it.
    let mut p = s.profile().clone();
    p.native = (640, 480);
    let change = s.source_changed(p.clone()).unwrap();
    assert_eq!(
        (s.settings().width, s.settings().height),
        (Some(640), Some(480))
    );
    assert_eq!(change.state.changed, vec!["width", "height"]);
    assert_eq!(change.state.version, v + 1);
    assert!(
        s.source_changed(p.clone()).is_none(),
        "the same profile again is no news"
    );
    // A viewer picks 320x240; the source reopens at 800x600, which also offers it: kept.
    assert!(
        s.handle(update("peer-1", json!({"width": 320, "height": 240})))
            .response
            .success
    );
    p.native = (800, 600);
    let change = s.source_changed(p.clone()).unwrap();
    assert!(change.warnings.is_empty(), "{:?}", change.warnings);
    assert_eq!(
        (s.settings().width, s.pipeline().current().target_size),
        (Some(320), Some((320, 240)))
    );
    // Then at 1280x720, which does not: back to the source's size, with a warning.
    p.native = (1280, 720);
    let change = s.source_changed(p).unwrap();
    assert_eq!(
        (s.settings().width, s.settings().height),
        (Some(1280), Some(720))
    );
    assert!(
        change.warnings[0].contains("320x240 is not offered"),
        "{:?}",
        change.warnings
    );
}

#[test]
fn switching_cameras_by_index_restarts_the_source() {
    let url = SourceUrl::V4l2(V4l2Device::Index(0));
    let (mut s, _) = ControlState::new(
        SourceProfile::for_source(&url, (640, 480), 30),
        config(None),
    );
    assert_eq!(s.settings().camera_index, Some(0));
    let out = s.handle(update("peer-1", json!({"camera_index": 1})));
    assert_eq!(out.intent, Some(Intent::RestartCamera));
    assert_eq!(out.plan.unwrap().restart, vec!["camera_index"]);
    assert_eq!(s.settings().camera_index, Some(1));
}

fn schedule(list: &[(&str, &str)]) -> Action {
    Action::SetSchedule {
        schedule: list
            .iter()
            .map(|(at, preset)| sightline_protocol::control::ScheduleEntry {
                at: (*at).into(),
                preset: (*preset).into(),
            })
            .collect(),
    }
}

/// Local minutes at `hh:mm` of some day.
fn at(hh: i64, mm: i64) -> i64 {
    20_000 * 1440 + hh * 60 + mm
}

#[test]
fn a_schedule_applies_its_presets_on_time_and_survives_a_restart() {
    let (dir, store) = temp_store("schedule");
    let (mut s, _) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert!(
        s.handle(cmd(
            "p",
            "s",
            Action::SavePreset {
                name: "night".into()
            }
        ))
        .response
        .success
    );
    let out = s.handle(cmd(
        "p",
        "r",
        schedule(&[("20:00", "night"), ("07:00", "hd")]),
    ));
    assert!(out.response.success, "{:?}", out.response);
    assert_eq!(out.response.message, "schedule: 07:00 hd, 20:00 night");
    let listed = &out.broadcast.expect("viewers hear of it").status.schedule;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].at.as_str(), listed[1].preset.as_str()),
        ("07:00", "night")
    );

    // Nothing due before 07:00; at 07:00 `hd` applies, by the schedule.
    assert!(s.scheduled(at(6, 59)).is_none());
    let fired = s.scheduled(at(7, 0)).expect("07:00 is due");
    assert!(fired.response.success, "{:?}", fired.response);
    let b = fired.broadcast.expect("a state change");
    assert_eq!(b.by.as_deref(), Some(SCHEDULE_BY));
    assert_eq!(b.status.preset.as_deref(), Some("hd"));
    assert!(s.scheduled(at(7, 0)).is_none(), "once");

    // The schedule is in the file, and comes back.
    drop(s);
    let (mut s, warnings) = ControlState::new(test_pattern(), config(Some(store)));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.status().schedule.len(), 2);
    assert!(s.scheduled(at(20, 0)).is_some());

    // A preset in the schedule cannot be deleted; renaming it renames the entry.
    let out = s.handle(cmd(
        "p",
        "d",
        Action::DeletePreset {
            name: "night".into(),
        },
    ));
    assert!(refusal(&out.response)
        .2
        .contains("in the schedule at 20:00"));
    let out = s.handle(cmd(
        "p",
        "n",
        Action::RenamePreset {
            name: "night".into(),
            new_name: "dark".into(),
        },
    ));
    assert!(out.response.success);
    assert_eq!(s.schedule()[1].preset, "dark");
    // Unknown presets are refused; an empty list clears the schedule.
    let out = s.handle(cmd("p", "u", schedule(&[("08:00", "nope")])));
    let (code, field, message) = refusal(&out.response);
    assert_eq!(
        (code, field),
        (ControlErrorCode::UnknownPreset, Some("schedule"))
    );
    assert!(message.contains("no preset `nope`"), "{message}");
    assert_eq!(s.schedule().len(), 2, "a refusal changes nothing");
    let out = s.handle(cmd("p", "c", schedule(&[])));
    assert_eq!(out.response.message, "cleared the schedule");
    assert!(s.status().schedule.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_saved_schedule_naming_a_lost_preset_drops_that_entry() {
    let (dir, store) = temp_store("schedule-lost");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        store.path(),
        r#"{"format":1,"version":3,"settings":{},"schedule":[{"at":"07:00","preset":"hd"},{"at":"20:00","preset":"gone"}]}"#,
    )
    .unwrap();
    let (s, warnings) = ControlState::new(test_pattern(), config(Some(store.clone())));
    assert_eq!(s.schedule().len(), 1);
    assert!(
        warnings.iter().any(|w| w.contains("no preset `gone`")),
        "{warnings:?}"
    );
    std::fs::write(
        store.path(),
        r#"{"format":1,"schedule":[{"at":"7am","preset":"hd"}]}"#,
    )
    .unwrap();
    let (s, warnings) = ControlState::new(test_pattern(), config(Some(store)));
    assert!(s.schedule().is_empty());
    assert!(
        warnings.iter().any(|w| w.contains("schedule ignored")),
        "{warnings:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn select_source_picks_among_the_configured_names_only() {
    let mut c = config(None);
    c.source_names = vec!["porch".into(), "garden".into()];
    let (mut s, _) = ControlState::new(test_pattern(), c);
    assert_eq!(s.status().sources, ["porch", "garden"]);
    assert_eq!(s.status().source_name.as_deref(), Some("porch"));
    let out = s.handle(cmd(
        "p",
        "a",
        Action::SelectSource {
            name: "porch".into(),
        },
    ));
    assert_eq!((out.response.success, out.intent), (true, None));
    let out = s.handle(cmd(
        "p",
        "b",
        Action::SelectSource {
            name: "attic".into(),
        },
    ));
    let (code, field, message) = refusal(&out.response);
    assert_eq!(
        (code, field),
        (ControlErrorCode::InvalidValue, Some("name"))
    );
    assert_eq!(message, "name: no source `attic`; sources: porch, garden");
    let out = s.handle(cmd(
        "p",
        "c",
        Action::SelectSource {
            name: "garden".into(),
        },
    ));
    assert_eq!(out.intent, Some(Intent::SelectSource("garden".into())));
    // The station switches, then tells the state: the same kind of source is still news.
    let v = s.version();
    let change = s.source_selected("garden", "file:/g.mjpeg".into(), test_pattern());
    assert!(change.state.version > v);
    assert_eq!(change.state.status.source_name.as_deref(), Some("garden"));
    assert_eq!(change.state.status.source.as_deref(), Some("file:/g.mjpeg"));
    // A publisher with one source has nothing to switch to.
    let out = state().handle(cmd(
        "p",
        "d",
        Action::SelectSource {
            name: "garden".into(),
        },
    ));
    assert!(refusal(&out.response)
        .2
        .contains("this camera has one source"));
}

/// A V4L2 camera whose (made-up) controls are its own: picture controls and exposure go to
/// the device through the link, not to the software adjustment.
fn webcam_state(store: Option<SettingsStore>) -> (ControlState, CameraControlLink) {
    let link = CameraControlLink::default();
    let mut c = config(store);
    c.camera_controls = link.clone();
    let profile = SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(0)), (640, 480), 30);
    let (mut s, _) = ControlState::new(profile, c);
    let mut with_controls = s.profile().clone();
    with_controls.hardware = HardwareControls::from_device(&fake::webcam());
    s.source_changed(with_controls)
        .expect("capabilities change");
    (s, link)
}

#[test]
fn hardware_controls_reach_the_camera_and_skip_the_software_path() {
    let (mut s, link) = webcam_state(None);
    // The device's defaults to start: 0 on our scale, auto exposure on.
    let (_, start) = link.wanted_since(0).expect("values for the camera");
    assert!(
        start.contains(&(KnownCameraControl::Brightness, DeviceValue::Int(128))),
        "{start:?}"
    );
    assert_eq!(s.settings().auto_exposure, Some(true));
    assert_eq!(s.settings().exposure_time, Some(250));
    let out = s.handle(update(
        "p",
        json!({"brightness": 50, "contrast": 20, "auto_exposure": false, "exposure_time": 100}),
    ));
    assert!(out.response.success, "{:?}", out.response);
    let (_, values) = link.wanted_since(0).unwrap();
    for want in [
        (KnownCameraControl::Brightness, DeviceValue::Int(191)),
        (KnownCameraControl::Other(0x009a_0901), DeviceValue::Int(1)),
        (
            KnownCameraControl::Other(0x009a_0902),
            DeviceValue::Int(100),
        ),
    ] {
        assert!(values.contains(&want), "{want:?} in {values:?}");
    }
    let adjust = s.pipeline().current().adjust;
    assert!(adjust.is_identity(), "the camera does them: {adjust:?}");

    // The test pattern has none of its own: software.
    let mut t = state();
    t.handle(update("p", json!({"brightness": 50})));
    assert_eq!(t.pipeline().current().adjust.brightness, 50);
}

#[test]
fn exposure_saved_comes_back_once_the_camera_says_it_has_it() {
    let (dir, store) = temp_store("hw-exposure");
    let (mut s, _) = webcam_state(Some(store.clone()));
    s.handle(update(
        "p",
        json!({"auto_exposure": false, "exposure_time": 400}),
    ));
    drop(s);
    // Restart: until the camera opens, exposure is unknown; then the saved values return.
    let link = CameraControlLink::default();
    let mut c = config(Some(store));
    c.camera_controls = link.clone();
    let profile = SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(0)), (640, 480), 30);
    let (mut s, _) = ControlState::new(profile, c);
    assert_eq!(s.settings().exposure_time, None);
    let mut with_controls = s.profile().clone();
    with_controls.hardware = HardwareControls::from_device(&fake::webcam());
    let change = s.source_changed(with_controls).unwrap();
    assert_eq!(
        (
            change.state.settings.auto_exposure,
            change.state.settings.exposure_time
        ),
        (Some(false), Some(400))
    );
    let (_, values) = link.wanted_since(0).unwrap();
    assert!(values.contains(&(
        KnownCameraControl::Other(0x009a_0902),
        DeviceValue::Int(400)
    )));
    let _ = std::fs::remove_dir_all(dir);
}
