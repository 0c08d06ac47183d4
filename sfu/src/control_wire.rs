//! The part of the camera-control protocol the SFU reads and writes. Plain code, no I/O.
//!
//! The protocol itself lives in `sightline_signaling::control` (which depends on this crate,
//! so this crate cannot use it); this module mirrors only what the SFU needs (the version,
//! the command names and who may send each, the envelope) and a test over there keeps both
//! in step. The SFU checks envelopes and permissions; it leaves the settings to the
//! publisher, the one that knows its capabilities.

use serde_json::{Map, Value};

use crate::PeerId;

/// `"v"` of every control message.
pub const CONTROL_VERSION: u64 = 1;
/// The data channel label the SFU relays; other channels are ignored.
pub const CONTROL_CHANNEL_LABEL: &str = "control";
/// Larger messages are refused (viewers) or dropped (publishers).
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 16 * 1024;

/// Who may send a command, and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandClass {
    /// Relayed for any viewer: changes nothing at the camera.
    ReadOnly,
    /// Relayed only for viewers that may control.
    Control,
    /// Answered by the SFU for the sending viewer alone.
    ViewerLocal(LocalCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCommand {
    /// Stop forwarding media to this viewer.
    Pause,
    /// Forward media again, from the next keyframe.
    Resume,
}

/// Every command type.
pub const COMMAND_NAMES: &[&str] = &[
    "update_settings",
    "start_stream",
    "stop_stream",
    "get_status",
    "restart_camera",
    "get_capabilities",
    "request_keyframe",
    "apply_preset",
    "save_preset",
    "pause",
    "resume",
];

pub fn command_class(ty: &str) -> Option<CommandClass> {
    Some(match ty {
        "get_status" | "get_capabilities" => CommandClass::ReadOnly,
        "update_settings" | "start_stream" | "stop_stream" | "restart_camera"
        | "request_keyframe" | "apply_preset" | "save_preset" => CommandClass::Control,
        "pause" => CommandClass::ViewerLocal(LocalCommand::Pause),
        "resume" => CommandClass::ViewerLocal(LocalCommand::Resume),
        _ => return None,
    })
}

/// A viewer's command whose envelope is sound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewerCommand {
    pub(crate) request_id: String,
    pub(crate) class: CommandClass,
    pub(crate) ty: String,
    body: Map<String, Value>,
}

/// Why a viewer's message was refused: `(request id if readable, code, message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) request_id: Option<String>,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn refused(request_id: Option<String>, code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        request_id,
        code,
        message: message.into(),
    }
}

/// The envelope every message shares: size, JSON object, `"v":1`, a string `type`.
fn envelope(data: &[u8], binary: bool) -> Result<(Map<String, Value>, String), Refused> {
    if binary {
        return Err(refused(
            None,
            "bad_message",
            "control messages are JSON text, not binary",
        ));
    }
    if data.len() > MAX_CONTROL_MESSAGE_BYTES {
        return Err(refused(
            None,
            "too_large",
            format!(
                "control message is {} bytes; the limit is {MAX_CONTROL_MESSAGE_BYTES}",
                data.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(data).map_err(|e| {
        refused(
            None,
            "bad_message",
            format!("control message is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(refused(
            None,
            "bad_message",
            "control message must be a JSON object",
        ));
    };
    let request_id = map
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match map.get("v") {
        Some(v) if v.as_u64() == Some(CONTROL_VERSION) => {}
        Some(v) => {
            return Err(refused(
                request_id,
                "unsupported_version",
                format!("protocol version {v} is not supported; this side speaks v{CONTROL_VERSION}"),
            ))
        }
        None => {
            return Err(refused(
                request_id,
                "bad_message",
                format!("control message has no `v` field (the protocol version; this side speaks v{CONTROL_VERSION})"),
            ))
        }
    }
    match map.get("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            Ok((map, t))
        }
        _ => Err(refused(
            request_id,
            "bad_message",
            "control message needs a string `type`",
        )),
    }
}

/// Check a viewer's message: envelope, a known command, a request id.
pub(crate) fn parse_viewer_command(data: &[u8], binary: bool) -> Result<ViewerCommand, Refused> {
    let (body, ty) = envelope(data, binary)?;
    let request_id = body
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(class) = command_class(&ty) else {
        return Err(refused(
            request_id,
            "unknown_command",
            format!(
                "unknown command `{ty}`; expected one of {}",
                COMMAND_NAMES.join(", ")
            ),
        ));
    };
    match request_id {
        Some(request_id) if !request_id.is_empty() => Ok(ViewerCommand {
            request_id,
            class,
            ty,
            body,
        }),
        _ => Err(refused(
            None,
            "bad_message",
            format!("{ty}: needs a non-empty string request_id"),
        )),
    }
}

/// The `request_id` of a message, if it has a readable one (for refusing it without a full
/// parse).
pub(crate) fn peek_request_id(data: &[u8]) -> Option<String> {
    if data.len() > MAX_CONTROL_MESSAGE_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(data).ok()?;
    value.get("request_id")?.as_str().map(str::to_owned)
}

impl ViewerCommand {
    /// The command as the publisher gets it: tagged with the sender, whatever `from` the
    /// viewer wrote.
    pub(crate) fn tagged(mut self, viewer: PeerId) -> String {
        self.body
            .insert("from".into(), Value::String(viewer.to_string()));
        Value::Object(self.body).to_string()
    }
}

/// Tag a command text with its sender (for tests of the agreement with the protocol crate).
pub fn tag_command(text: &str, viewer: &str) -> Option<String> {
    let (mut body, _) = envelope(text.as_bytes(), false).ok()?;
    body.insert("from".into(), Value::String(viewer.to_owned()));
    Some(Value::Object(body).to_string())
}

/// What the SFU does with a publisher's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublisherRoute {
    /// A reply: only to this viewer.
    To(PeerId),
    /// To every viewer of the camera; `cache` says whether new viewers get it too.
    Broadcast { cache: Option<CacheSlot> },
}

/// The publisher broadcasts the SFU keeps the last of, per camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheSlot {
    Capabilities,
    State,
}

/// Where a publisher's message goes. The publisher is trusted to speak the protocol; what is
/// not even an envelope is dropped (with the reason, for the log).
pub(crate) fn route_publisher_message(data: &[u8], binary: bool) -> Result<PublisherRoute, String> {
    let (body, ty) = envelope(data, binary).map_err(|r| r.message)?;
    match body.get("to") {
        Some(Value::String(to)) => to
            .parse::<PeerId>()
            .map(PublisherRoute::To)
            .map_err(|_| format!("`to` is not a viewer id: {to:?}")),
        Some(other) => Err(format!("`to` must be a viewer id string, got {other}")),
        None => Ok(PublisherRoute::Broadcast {
            cache: match ty.as_str() {
                "capabilities" => Some(CacheSlot::Capabilities),
                "state" => Some(CacheSlot::State),
                _ => None,
            },
        }),
    }
}

/// A refusal or error reply, shaped like the protocol's `response`.
pub fn error_response(
    request_id: Option<&str>,
    code: &str,
    message: &str,
    retry_after_ms: Option<u64>,
    unix_ms: u64,
) -> String {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.into());
    if let Some(ms) = retry_after_ms {
        error.insert("retry_after_ms".into(), ms.into());
    }
    let mut m = Map::new();
    m.insert("v".into(), CONTROL_VERSION.into());
    m.insert("type".into(), "response".into());
    m.insert(
        "request_id".into(),
        request_id.map_or(Value::Null, Value::from),
    );
    m.insert("success".into(), false.into());
    m.insert("message".into(), message.into());
    m.insert("error".into(), Value::Object(error));
    m.insert("timestamp".into(), unix_ms.into());
    Value::Object(m).to_string()
}

/// A success reply to a command the SFU handled itself.
pub fn ok_response(request_id: &str, message: &str, unix_ms: u64) -> String {
    let mut m = Map::new();
    m.insert("v".into(), CONTROL_VERSION.into());
    m.insert("type".into(), "response".into());
    m.insert("request_id".into(), request_id.into());
    m.insert("success".into(), true.into());
    m.insert("message".into(), message.into());
    m.insert("timestamp".into(), unix_ms.into());
    Value::Object(m).to_string()
}

/// The first message on a viewer's control channel.
pub fn welcome(
    viewer: &str,
    camera: &str,
    may_control: bool,
    per_second: f64,
    burst: u32,
) -> String {
    let mut rate = Map::new();
    rate.insert("per_second".into(), per_second.into());
    rate.insert("burst".into(), burst.into());
    let mut m = Map::new();
    m.insert("v".into(), CONTROL_VERSION.into());
    m.insert("type".into(), "welcome".into());
    m.insert("viewer".into(), viewer.into());
    m.insert("camera".into(), camera.into());
    m.insert("may_control".into(), may_control.into());
    m.insert("rate_limit".into(), Value::Object(rate));
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(text: &str) -> Result<ViewerCommand, Refused> {
        parse_viewer_command(text.as_bytes(), false)
    }

    #[test]
    fn commands_are_classified() {
        let c =
            viewer(r#"{"v":1,"type":"update_settings","request_id":"a","settings":{}}"#).unwrap();
        assert_eq!(
            (c.class, c.request_id.as_str()),
            (CommandClass::Control, "a")
        );
        assert_eq!(
            viewer(r#"{"v":1,"type":"get_status","request_id":"b"}"#)
                .unwrap()
                .class,
            CommandClass::ReadOnly
        );
        assert_eq!(
            viewer(r#"{"v":1,"type":"pause","request_id":"c"}"#)
                .unwrap()
                .class,
            CommandClass::ViewerLocal(LocalCommand::Pause)
        );
        for name in COMMAND_NAMES {
            assert!(command_class(name).is_some(), "{name}");
        }
    }

    #[test]
    fn bad_envelopes_are_refused_with_a_code() {
        let code = |t: &str| viewer(t).unwrap_err().code;
        assert_eq!(code("{nope"), "bad_message");
        assert_eq!(code("[]"), "bad_message");
        assert_eq!(
            code(r#"{"type":"get_status","request_id":"a"}"#),
            "bad_message"
        );
        assert_eq!(code(r#"{"v":1,"request_id":"a"}"#), "bad_message");
        assert_eq!(code(r#"{"v":1,"type":"get_status"}"#), "bad_message");
        assert_eq!(
            code(r#"{"v":1,"type":"get_status","request_id":""}"#),
            "bad_message"
        );
        let e = viewer(r#"{"v":9,"type":"get_status","request_id":"a"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.request_id.as_deref()),
            ("unsupported_version", Some("a"))
        );
        let e = viewer(r#"{"v":1,"type":"dance","request_id":"d"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.request_id.as_deref()),
            ("unknown_command", Some("d"))
        );
        assert!(e.message.contains("update_settings"));
        assert_eq!(
            parse_viewer_command(b"{}", true).unwrap_err().code,
            "bad_message"
        );
        let big = vec![b' '; MAX_CONTROL_MESSAGE_BYTES + 1];
        assert_eq!(
            parse_viewer_command(&big, false).unwrap_err().code,
            "too_large"
        );
        assert_eq!(
            parse_viewer_command(&[0xff, 0xfe], false).unwrap_err().code,
            "bad_message"
        );
    }

    #[test]
    fn tagging_overwrites_a_forged_sender() {
        let c = viewer(r#"{"v":1,"type":"get_status","request_id":"a","from":"peer-1"}"#).unwrap();
        let t: Value = serde_json::from_str(&c.tagged(PeerId(7))).unwrap();
        assert_eq!(t["from"], "peer-7");
        assert_eq!(t["request_id"], "a");
        assert_eq!(t["type"], "get_status");
    }

    #[test]
    fn publisher_messages_are_routed() {
        let r = |t: &str| route_publisher_message(t.as_bytes(), false);
        assert_eq!(
            r(r#"{"v":1,"type":"response","to":"peer-12","success":true}"#),
            Ok(PublisherRoute::To(PeerId(12)))
        );
        assert_eq!(
            r(r#"{"v":1,"type":"state","settings":{}}"#),
            Ok(PublisherRoute::Broadcast {
                cache: Some(CacheSlot::State)
            })
        );
        assert_eq!(
            r(r#"{"v":1,"type":"capabilities","settings":{}}"#),
            Ok(PublisherRoute::Broadcast {
                cache: Some(CacheSlot::Capabilities)
            })
        );
        assert_eq!(
            r(r#"{"v":1,"type":"notice"}"#),
            Ok(PublisherRoute::Broadcast { cache: None })
        );
        assert!(r(r#"{"v":1,"type":"response","to":"bob"}"#).is_err());
        assert!(r(r#"{"v":1,"type":"response","to":7}"#).is_err());
        assert!(r(r#"{"v":2,"type":"state"}"#).is_err());
        assert!(r("garbage").is_err());
    }

    #[test]
    fn replies_are_json_with_the_version() {
        let e: Value = serde_json::from_str(&error_response(
            Some("x"),
            "rate_limited",
            "slow down",
            Some(100),
            9,
        ))
        .unwrap();
        assert_eq!(e["v"], 1);
        assert_eq!(e["error"]["retry_after_ms"], 100);
        assert_eq!(e["success"], false);
        let e: Value =
            serde_json::from_str(&error_response(None, "bad_message", "m", None, 9)).unwrap();
        assert!(e["request_id"].is_null());
        assert!(e["error"].get("retry_after_ms").is_none());
        let w: Value = serde_json::from_str(&welcome("peer-1", "cam", false, 10.0, 20)).unwrap();
        assert_eq!(w["may_control"], false);
    }
}
