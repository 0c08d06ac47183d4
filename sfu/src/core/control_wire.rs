//! The part of the camera-control protocol the SFU reads and writes. Plain code, no I/O.
//!
//! The protocol is `sightline_protocol::control`; this module applies it the SFU's way. A
//! viewer's command is checked for its [`Envelope`], a known [`CommandType`] and a request id,
//! and is relayed as it came (tagged with the sender); its settings are left to the
//! publisher, the one that knows its capabilities. A publisher's message is routed by its
//! envelope and `to`.

use serde_json::Value;
use sightline_protocol::control::{
    peek_request_id, CommandType, ControlError, ControlErrorCode, ControlMessage, Envelope,
    RateLimitInfo, Refusal, Response, Welcome,
};

use crate::PeerId;

/// A viewer's command whose envelope is sound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewerCommand {
    pub(crate) request_id: String,
    pub(crate) command: CommandType,
    envelope: Envelope,
}

/// Check a viewer's message: envelope, a known command, a request id.
pub(crate) fn parse_viewer_command(data: &[u8], binary: bool) -> Result<ViewerCommand, Refusal> {
    if binary {
        return Err(Refusal {
            request_id: None,
            error: ControlError::new(
                ControlErrorCode::BadMessage,
                "control messages are JSON text, not binary",
            ),
        });
    }
    let envelope = Envelope::parse(data).map_err(|error| Refusal {
        // A refusal names the request when the message was an object that had one.
        request_id: peek_request_id(data),
        error,
    })?;
    let command = CommandType::parse(&envelope.ty).map_err(|error| Refusal {
        request_id: envelope.request_id().map(str::to_owned),
        error,
    })?;
    match envelope.request_id() {
        Some(id) if !id.is_empty() => Ok(ViewerCommand {
            request_id: id.to_owned(),
            command,
            envelope,
        }),
        _ => Err(Refusal {
            request_id: None,
            error: ControlError::new(
                ControlErrorCode::BadMessage,
                format!("{command}: needs a non-empty string request_id"),
            ),
        }),
    }
}

impl ViewerCommand {
    /// The command as the publisher gets it: tagged with the sender, whatever `from` the
    /// viewer wrote.
    pub(crate) fn tagged(mut self, viewer: PeerId) -> String {
        self.envelope
            .body
            .insert("from".into(), Value::String(viewer.to_string()));
        Value::Object(self.envelope.body).to_string()
    }
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
    if binary {
        return Err("control messages are JSON text, not binary".into());
    }
    let envelope = Envelope::parse(data).map_err(|e| e.message)?;
    match envelope.body.get("to") {
        Some(Value::String(to)) => to
            .parse::<PeerId>()
            .map(PublisherRoute::To)
            .map_err(|_| format!("`to` is not a viewer id: {to:?}")),
        Some(other) => Err(format!("`to` must be a viewer id string, got {other}")),
        None => Ok(PublisherRoute::Broadcast {
            cache: match envelope.ty.as_str() {
                "capabilities" => Some(CacheSlot::Capabilities),
                "state" => Some(CacheSlot::State),
                _ => None,
            },
        }),
    }
}

/// A refusal, as the `response` the viewer gets.
pub(crate) fn refusal_text(refusal: Refusal, retry_after_ms: Option<u64>, unix_ms: u64) -> String {
    let mut error = refusal.error;
    error.retry_after_ms = retry_after_ms;
    let mut response = Response::refused(refusal.request_id, error);
    response.timestamp = unix_ms;
    ControlMessage::Response(response).to_json()
}

/// A success reply to a command the SFU handled itself.
pub(crate) fn ok_text(request_id: &str, message: &str, unix_ms: u64) -> String {
    let mut response = Response::ok(request_id, message);
    response.timestamp = unix_ms;
    ControlMessage::Response(response).to_json()
}

/// The first message on a viewer's control channel.
pub(crate) fn welcome_text(
    viewer: PeerId,
    camera: &str,
    may_control: bool,
    rate_limit: RateLimitInfo,
) -> String {
    ControlMessage::Welcome(Welcome {
        viewer: viewer.to_string(),
        camera: camera.to_owned(),
        may_control,
        rate_limit,
    })
    .to_json()
}

#[cfg(test)]
mod tests {
    use sightline_protocol::control::{parse_command, MAX_CONTROL_MESSAGE_BYTES};

    use super::*;

    fn viewer(text: &str) -> Result<ViewerCommand, Refusal> {
        parse_viewer_command(text.as_bytes(), false)
    }

    #[test]
    fn commands_are_classified() {
        let c =
            viewer(r#"{"v":1,"type":"update_settings","request_id":"a","settings":{}}"#).unwrap();
        assert_eq!(
            (c.command, c.request_id.as_str()),
            (CommandType::UpdateSettings, "a")
        );
        assert_eq!(
            viewer(r#"{"v":1,"type":"get_status","request_id":"b"}"#)
                .unwrap()
                .command,
            CommandType::GetStatus
        );
        assert_eq!(
            viewer(r#"{"v":1,"type":"pause","request_id":"c"}"#)
                .unwrap()
                .command,
            CommandType::Pause
        );
        for name in CommandType::NAMES {
            let text = format!(r#"{{"v":1,"type":"{name}","request_id":"r"}}"#);
            assert_eq!(viewer(&text).unwrap().command.name(), *name);
        }
    }

    #[test]
    fn bad_envelopes_are_refused_with_a_code() {
        let code = |t: &str| viewer(t).unwrap_err().error.code;
        assert_eq!(code("{nope"), ControlErrorCode::BadMessage);
        assert_eq!(code("[]"), ControlErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"get_status","request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":"get_status"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":"get_status","request_id":""}"#),
            ControlErrorCode::BadMessage
        );
        let e = viewer(r#"{"v":9,"type":"get_status","request_id":"a"}"#).unwrap_err();
        assert_eq!(
            (e.error.code, e.request_id.as_deref()),
            (ControlErrorCode::UnsupportedVersion, Some("a"))
        );
        let e = viewer(r#"{"v":1,"type":"dance","request_id":"d"}"#).unwrap_err();
        assert_eq!(
            (e.error.code, e.request_id.as_deref()),
            (ControlErrorCode::UnknownCommand, Some("d"))
        );
        assert!(e.error.message.contains("update_settings"));
        assert_eq!(
            parse_viewer_command(b"{}", true).unwrap_err().error.code,
            ControlErrorCode::BadMessage
        );
        let big = vec![b' '; MAX_CONTROL_MESSAGE_BYTES + 1];
        assert_eq!(
            parse_viewer_command(&big, false).unwrap_err().error.code,
            ControlErrorCode::TooLarge
        );
        assert_eq!(
            parse_viewer_command(&[0xff, 0xfe], false)
                .unwrap_err()
                .error
                .code,
            ControlErrorCode::BadMessage
        );
    }

    #[test]
    fn tagging_overwrites_a_forged_sender() {
        let c = viewer(r#"{"v":1,"type":"get_status","request_id":"a","from":"peer-1"}"#).unwrap();
        let tagged = c.tagged(PeerId(7));
        let t: Value = serde_json::from_str(&tagged).unwrap();
        assert_eq!(t["from"], "peer-7");
        assert_eq!(t["request_id"], "a");
        assert_eq!(t["type"], "get_status");
        // What the publisher reads.
        assert_eq!(
            parse_command(&tagged).unwrap().from.as_deref(),
            Some("peer-7")
        );
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
        assert!(route_publisher_message(br#"{"v":1,"type":"state"}"#, true).is_err());
    }

    #[test]
    fn replies_are_json_with_the_version() {
        let refusal = |request_id: Option<&str>, code| Refusal {
            request_id: request_id.map(str::to_owned),
            error: ControlError::new(code, "slow down"),
        };
        let e: Value = serde_json::from_str(&refusal_text(
            refusal(Some("x"), ControlErrorCode::RateLimited),
            Some(100),
            9,
        ))
        .unwrap();
        assert_eq!(e["v"], 1);
        assert_eq!(e["error"]["retry_after_ms"], 100);
        assert_eq!(e["success"], false);
        let e: Value = serde_json::from_str(&refusal_text(
            refusal(None, ControlErrorCode::BadMessage),
            None,
            9,
        ))
        .unwrap();
        assert!(e["request_id"].is_null());
        assert!(e["error"].get("retry_after_ms").is_none());
        let w: Value = serde_json::from_str(&welcome_text(
            PeerId(1),
            "cam",
            false,
            RateLimitInfo {
                per_second: 10.0,
                burst: 20,
            },
        ))
        .unwrap();
        assert_eq!(w["may_control"], false);
    }

    /// The replies are byte for byte what the SFU wrote before it used the protocol's types.
    #[test]
    fn reply_texts_are_unchanged() {
        let limited = Refusal {
            request_id: Some("r1".into()),
            error: ControlError::new(ControlErrorCode::RateLimited, "slow down"),
        };
        assert_eq!(
            refusal_text(limited, Some(250), 1234),
            r#"{"error":{"code":"rate_limited","message":"slow down","retry_after_ms":250},"message":"slow down","request_id":"r1","success":false,"timestamp":1234,"type":"response","v":1}"#
        );
        let broken = Refusal {
            request_id: None,
            error: ControlError::new(ControlErrorCode::BadMessage, "m"),
        };
        assert_eq!(
            refusal_text(broken, None, 1),
            r#"{"error":{"code":"bad_message","message":"m"},"message":"m","request_id":null,"success":false,"timestamp":1,"type":"response","v":1}"#
        );
        assert_eq!(
            ok_text("r2", "paused", 5),
            r#"{"message":"paused","request_id":"r2","success":true,"timestamp":5,"type":"response","v":1}"#
        );
        let rate_limit = RateLimitInfo {
            per_second: 10.0,
            burst: 20,
        };
        assert_eq!(
            welcome_text(PeerId(7), "cam", true, rate_limit),
            r#"{"camera":"cam","may_control":true,"rate_limit":{"burst":20,"per_second":10.0},"type":"welcome","v":1,"viewer":"peer-7"}"#
        );
    }
}
