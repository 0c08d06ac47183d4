//! The camera-control protocol: JSON text messages on a WebRTC data channel labelled
//! [`CHANNEL_LABEL`], between viewers and a camera's publisher, relayed by the SFU.
//!
//! Every message is one JSON object with `"v":1` (the protocol version) and a `type`.
//!
//! ```text
//! viewer    ──command──▶ SFU ──command + "from":"peer-7"──▶ publisher
//! viewer ◀──response──── SFU ◀──response + "to":"peer-7"─── publisher   (only that viewer)
//! viewers ◀─state / capabilities── SFU ◀─state / capabilities─ publisher (every viewer;
//!                                    the SFU keeps the last of each for viewers who join later)
//! viewer ◀──welcome── SFU (once the viewer's channel opens: its id, whether it may control)
//! ```
//!
//! Commands ([`Command`]), each with a `request_id` echoed in its [`Response`]:
//!
//! ```json
//! {"v":1,"type":"update_settings","request_id":"r1","settings":{"bitrate":1500000,"fps":15}}
//! {"v":1,"type":"apply_preset","request_id":"r2","name":"low_bandwidth"}
//! {"v":1,"type":"get_status","request_id":"r3"}
//! ```
//!
//! `pause` / `resume` are handled by the SFU for the sending viewer alone (stop and restart
//! forwarding media to it); the publisher never sees them. View-only viewers may send
//! `get_status`, `get_capabilities`, `pause` and `resume`; the SFU refuses the rest with
//! `forbidden`. The SFU also rate-limits every viewer (`rate_limited`).
//!
//! The SFU cannot depend on this crate (this crate's server depends on it), so it checks only
//! the envelope (`v`, `type`, `request_id`); `sightline_sfu::control_wire` mirrors the names
//! it needs and a test here keeps both in step. Full checks ([`parse_command`],
//! [`validate_update`]) run on the publisher and in clients.

mod capabilities;
mod command;
mod error;
mod message;
mod settings;

pub use capabilities::{validate_update, ApplyMode, Capabilities, Capability};
pub use command::{parse_command, Action, Command, Refusal};
pub use error::{ControlError, ControlErrorCode};
pub use message::{
    parse_message, unix_millis, ControlMessage, RateLimitInfo, Response, StateUpdate, StreamStatus,
    Welcome,
};
pub use settings::{parse_bitrate, CameraSettings, SettingValue};

/// The protocol version this side speaks; every message carries it as `"v"`.
pub const VERSION: u64 = 1;

/// The label of the data channel viewers and publishers open for control.
pub const CHANNEL_LABEL: &str = "control";

/// Largest control message accepted. Settings and capabilities are a few KiB at most.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 16 * 1024;

/// Longest `request_id` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Longest preset name accepted.
pub const MAX_PRESET_NAME_LEN: usize = 32;

/// Check the envelope every message shares: size, a JSON object, `"v":1`, a string `type`.
/// Returns the object and its type.
fn envelope(
    text: &str,
) -> Result<(serde_json::Map<String, serde_json::Value>, String), ControlError> {
    use serde_json::Value;
    if text.len() > MAX_CONTROL_MESSAGE_BYTES {
        return Err(ControlError::new(
            ControlErrorCode::TooLarge,
            format!(
                "control message is {} bytes; the limit is {MAX_CONTROL_MESSAGE_BYTES}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ControlError::new(
            ControlErrorCode::BadMessage,
            format!("control message is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ControlError::new(
            ControlErrorCode::BadMessage,
            "control message must be a JSON object",
        ));
    };
    match map.get("v") {
        None => {
            return Err(ControlError::new(
                ControlErrorCode::BadMessage,
                format!("control message has no `v` field (the protocol version; this side speaks v{VERSION})"),
            ))
        }
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(ControlError::new(
                ControlErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported; this side speaks v{VERSION}"),
            ))
        }
    }
    let ty = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(ControlError::new(
                ControlErrorCode::BadMessage,
                "field `type` must be a string",
            ))
        }
        None => {
            return Err(ControlError::new(
                ControlErrorCode::BadMessage,
                "control message has no `type` field",
            ))
        }
    };
    Ok((map, ty))
}

#[cfg(all(test, feature = "server"))]
mod sfu_agreement {
    //! The SFU mirrors the names it needs (it cannot depend on this crate): keep them equal.

    use super::*;
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
}
