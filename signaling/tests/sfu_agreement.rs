//! The SFU mirrors the control protocol names it needs (it does not use `sightline-protocol`
//! yet): keep them equal.

use sightline_protocol::control::*;
use sightline_sfu::control_wire as sfu;

#[test]
fn version_label_and_limits_match() {
    assert_eq!(sfu::CONTROL_VERSION, VERSION);
    assert_eq!(sfu::CONTROL_CHANNEL_LABEL, CHANNEL_LABEL);
    assert_eq!(sfu::MAX_CONTROL_MESSAGE_BYTES, MAX_CONTROL_MESSAGE_BYTES);
}

#[test]
fn the_sfu_knows_every_command_and_its_permission() {
    for name in Action::NAMES {
        let class = sfu::command_class(name)
            .unwrap_or_else(|| panic!("the SFU does not know command `{name}`"));
        let action = Action::example(name).unwrap();
        assert_eq!(
            class == sfu::CommandClass::ReadOnly,
            action.is_read_only(),
            "{name}"
        );
        assert_eq!(
            matches!(class, sfu::CommandClass::ViewerLocal(_)),
            action.is_viewer_local(),
            "{name}"
        );
    }
    assert_eq!(sfu::command_class("dance"), None);
    assert_eq!(sfu::COMMAND_NAMES.len(), Action::NAMES.len());
}

#[test]
fn the_sfus_own_messages_parse_here() {
    let e = sfu::error_response(Some("r1"), "forbidden", "no", Some(250), 1234);
    match parse_message(&e).unwrap() {
        ControlMessage::Response(r) => {
            assert_eq!(r.request_id.as_deref(), Some("r1"));
            assert!(!r.success);
            let err = r.error.unwrap();
            assert_eq!(err.code, ControlErrorCode::Forbidden);
            assert_eq!(err.retry_after_ms, Some(250));
            assert_eq!(r.timestamp, 1234);
        }
        other => panic!("{other:?}"),
    }
    for code in [
        "bad_message",
        "too_large",
        "unsupported_version",
        "unknown_command",
        "rate_limited",
        "unavailable",
    ] {
        let e = sfu::error_response(None, code, "m", None, 1);
        assert!(parse_message(&e).is_ok(), "{code}: {e}");
    }
    let ok = sfu::ok_response("r2", "paused", 5);
    match parse_message(&ok).unwrap() {
        ControlMessage::Response(r) => assert!(r.success && r.error.is_none()),
        other => panic!("{other:?}"),
    }
    let w = sfu::welcome("peer-7", "cam", true, 10.0, 20);
    match parse_message(&w).unwrap() {
        ControlMessage::Welcome(w) => {
            assert_eq!(
                (w.viewer.as_str(), w.camera.as_str(), w.may_control),
                ("peer-7", "cam", true)
            );
            assert_eq!(w.rate_limit.burst, 20);
        }
        other => panic!("{other:?}"),
    }
    // A command the SFU tagged is a command here, with its sender.
    let tagged = sfu::tag_command(
        r#"{"v":1,"type":"get_status","request_id":"x","from":"forged"}"#,
        "peer-3",
    )
    .unwrap();
    let c = parse_command(&tagged).unwrap();
    assert_eq!(c.from.as_deref(), Some("peer-3"));
}
