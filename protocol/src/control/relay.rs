//! The rules of whoever stands between a viewer and the camera's publisher on the control
//! channel: the SFU for viewers it serves, and the publisher itself for a viewer connected
//! to it directly (P2P). Both must answer a viewer alike, so the rules live here. Plain code,
//! no I/O.
//!
//! A viewer's message is checked for its [`Envelope`], a known [`CommandType`] and a request
//! id; `pause`/`resume` are the relay's own to answer (they stop and restart the sender's
//! video); a view-only sender may send only what [`CommandType::view_only_may_send`]
//! allows; everything else goes to the publisher as it came, tagged `from` the sender. Its
//! settings are left to the publisher, the one that knows its capabilities.

use std::time::Duration;

use serde_json::Value;

use super::{
    peek_request_id, CommandType, ControlError, ControlErrorCode, ControlMessage, Envelope,
    RateLimit, RateLimitInfo, Refusal, Response, Welcome,
};

/// Who sent a message, as far as the relay's rules care.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// How the publisher will know it (`peer-7`, `direct-3`): the `from` of its commands.
    pub id: &'a str,
    /// It may change the camera (signaling decided: a `control` token).
    pub may_control: bool,
    /// It has video of its own to pause and resume (an API caller has none).
    pub has_video: bool,
}

/// What the relay does with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Refused: send the sender this `response`.
    Refuse(String),
    /// Stop (`pause: true`) or restart the sender's own video (restarting at a keyframe),
    /// and send it `reply`.
    Pause { pause: bool, reply: String },
    /// Pass `text` (the command tagged with its sender) to the camera's publisher.
    /// `request_id` and `command`: for the relay's own answer when it has no publisher to
    /// give it to, or one without a control channel.
    Relay {
        text: String,
        request_id: String,
        command: CommandType,
    },
}

/// Decide one message from `sender`, whose rate limit (`limit`) allowed it (`taken` is
/// `Ok`) or not (how long until it would). Every message counts against the limit, refused
/// ones too: a flood of garbage is a flood.
pub fn admit(
    sender: Sender<'_>,
    taken: Result<(), Duration>,
    limit: RateLimit,
    data: &[u8],
    binary: bool,
    unix_ms: u64,
) -> Admission {
    let refuse = |request_id: Option<String>, error: ControlError, retry: Option<u64>| {
        Admission::Refuse(refusal_text(
            Refusal {
                request_id,
                from: None,
                error,
            },
            retry,
            unix_ms,
        ))
    };
    if let Err(wait) = taken {
        let ms = wait.as_millis() as u64;
        let error = ControlError::new(
            ControlErrorCode::RateLimited,
            format!(
                "too many control messages: at most {} per second (bursts of {}); retry after {ms} ms",
                limit.per_second, limit.burst
            ),
        );
        return refuse(peek_request_id(data), error, Some(ms));
    }
    let cmd = match parse_viewer_command(data, binary) {
        Ok(cmd) => cmd,
        Err(r) => return refuse(r.request_id, r.error, None),
    };
    let request_id = Some(cmd.request_id.clone());
    match cmd.command {
        // The viewer-local commands (`CommandType::is_viewer_local`): answered here.
        CommandType::Pause | CommandType::Resume if !sender.has_video => {
            let error = ControlError::new(
                ControlErrorCode::BadMessage,
                "pause/resume apply to a viewer's own video; not available here",
            );
            refuse(request_id, error, None)
        }
        CommandType::Pause | CommandType::Resume => {
            let pause = cmd.command == CommandType::Pause;
            let message = if pause {
                "paused: no video is sent to this viewer until it resumes"
            } else {
                "resumed: video restarts at the next keyframe"
            };
            Admission::Pause {
                pause,
                reply: ok_text(&cmd.request_id, message, unix_ms),
            }
        }
        command if !sender.may_control && !command.view_only_may_send() => {
            let who = if sender.has_video { "viewer" } else { "caller" };
            // Signaling decides access (a `control` token); the relay only enforces it.
            let message = format!(
                "this {who} is view-only: `{command}` changes the camera and needs \
                 control access (a `control` token)"
            );
            refuse(
                request_id,
                ControlError::new(ControlErrorCode::Forbidden, message),
                None,
            )
        }
        command => Admission::Relay {
            request_id: cmd.request_id.clone(),
            text: cmd.tagged(sender.id),
            command,
        },
    }
}

/// A viewer's command whose envelope is sound.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewerCommand {
    pub request_id: String,
    pub command: CommandType,
    envelope: Envelope,
}

/// Check a viewer's message: envelope, a known command, a request id.
pub fn parse_viewer_command(data: &[u8], binary: bool) -> Result<ViewerCommand, Refusal> {
    if binary {
        return Err(Refusal {
            request_id: None,
            from: None,
            error: ControlError::new(
                ControlErrorCode::BadMessage,
                "control messages are JSON text, not binary",
            ),
        });
    }
    let envelope = Envelope::parse(data).map_err(|error| Refusal {
        // A refusal names the request when the message was an object that had one.
        request_id: peek_request_id(data),
        from: None,
        error,
    })?;
    let command = CommandType::parse(&envelope.ty).map_err(|error| Refusal {
        request_id: envelope.request_id().map(str::to_owned),
        from: None,
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
            from: None,
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
    pub fn tagged(mut self, sender: &str) -> String {
        self.envelope
            .body
            .insert("from".into(), Value::String(sender.to_owned()));
        Value::Object(self.envelope.body).to_string()
    }
}

/// A refusal, as the `response` the viewer gets.
pub fn refusal_text(refusal: Refusal, retry_after_ms: Option<u64>, unix_ms: u64) -> String {
    let mut error = refusal.error;
    error.retry_after_ms = retry_after_ms;
    let mut response = Response::refused(refusal.request_id, error);
    response.timestamp = unix_ms;
    ControlMessage::Response(response).to_json()
}

/// A success reply to a command the relay handled itself.
pub fn ok_text(request_id: &str, message: &str, unix_ms: u64) -> String {
    let mut response = Response::ok(request_id, message);
    response.timestamp = unix_ms;
    ControlMessage::Response(response).to_json()
}

/// The first message on a viewer's control channel.
pub fn welcome_text(viewer: &str, camera: &str, may_control: bool, limit: RateLimit) -> String {
    ControlMessage::Welcome(Welcome {
        viewer: viewer.to_owned(),
        camera: camera.to_owned(),
        may_control,
        rate_limit: RateLimitInfo {
            per_second: limit.per_second,
            burst: limit.burst,
        },
    })
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::super::{parse_command, MAX_CONTROL_MESSAGE_BYTES};
    use super::*;

    fn viewer(text: &str) -> Result<ViewerCommand, Refusal> {
        parse_viewer_command(text.as_bytes(), false)
    }

    fn admit_text(sender: Sender<'_>, text: &str) -> Admission {
        admit(
            sender,
            Ok(()),
            RateLimit::default(),
            text.as_bytes(),
            false,
            9,
        )
    }

    const WATCHER: Sender<'static> = Sender {
        id: "direct-3",
        may_control: false,
        has_video: true,
    };

    #[test]
    fn each_message_is_refused_paused_or_relayed() {
        let controller = Sender {
            may_control: true,
            ..WATCHER
        };
        let update = r#"{"v":1,"type":"update_settings","request_id":"u","settings":{}}"#;
        match admit_text(controller, update) {
            Admission::Relay {
                text,
                request_id,
                command,
            } => {
                assert_eq!(request_id, "u");
                assert_eq!(command, CommandType::UpdateSettings);
                assert_eq!(
                    parse_command(&text).unwrap().from.as_deref(),
                    Some("direct-3")
                );
            }
            other => panic!("{other:?}"),
        }
        match admit_text(WATCHER, update) {
            Admission::Refuse(text) => {
                assert!(text.contains(r#""code":"forbidden""#), "{text}");
                assert!(text.contains("view-only"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            admit_text(WATCHER, r#"{"v":1,"type":"get_status","request_id":"g"}"#),
            Admission::Relay { .. }
        ));
        match admit_text(WATCHER, r#"{"v":1,"type":"pause","request_id":"p"}"#) {
            Admission::Pause { pause: true, reply } => assert!(reply.contains("paused")),
            other => panic!("{other:?}"),
        }
        let api = Sender {
            has_video: false,
            ..controller
        };
        match admit_text(api, r#"{"v":1,"type":"resume","request_id":"r"}"#) {
            Admission::Refuse(text) => assert!(text.contains("own video"), "{text}"),
            other => panic!("{other:?}"),
        }
        match admit_text(WATCHER, "{nope") {
            Admission::Refuse(text) => assert!(text.contains("bad_message"), "{text}"),
            other => panic!("{other:?}"),
        }
        let limited = admit(
            WATCHER,
            Err(Duration::from_millis(250)),
            RateLimit::default(),
            br#"{"v":1,"type":"get_status","request_id":"x"}"#,
            false,
            9,
        );
        match limited {
            Admission::Refuse(text) => {
                assert!(text.contains(r#""retry_after_ms":250"#), "{text}");
                assert!(text.contains(r#""request_id":"x""#), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_are_classified() {
        let c =
            viewer(r#"{"v":1,"type":"update_settings","request_id":"a","settings":{}}"#).unwrap();
        assert_eq!(
            (c.command, c.request_id.as_str()),
            (CommandType::UpdateSettings, "a")
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
        let tagged = c.tagged("peer-7");
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
    fn replies_are_json_with_the_version() {
        let refusal = |request_id: Option<&str>, code| Refusal {
            request_id: request_id.map(str::to_owned),
            from: None,
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
        let w: Value =
            serde_json::from_str(&welcome_text("peer-1", "cam", false, RateLimit::default()))
                .unwrap();
        assert_eq!(w["may_control"], false);
    }

    /// The replies are byte for byte what the SFU wrote before it used the protocol's types.
    #[test]
    fn reply_texts_are_unchanged() {
        let limited = Refusal {
            request_id: Some("r1".into()),
            from: None,
            error: ControlError::new(ControlErrorCode::RateLimited, "slow down"),
        };
        assert_eq!(
            refusal_text(limited, Some(250), 1234),
            r#"{"error":{"code":"rate_limited","message":"slow down","retry_after_ms":250},"message":"slow down","request_id":"r1","success":false,"timestamp":1234,"type":"response","v":1}"#
        );
        let broken = Refusal {
            request_id: None,
            from: None,
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
        assert_eq!(
            welcome_text("peer-7", "cam", true, RateLimit::default()),
            r#"{"camera":"cam","may_control":true,"rate_limit":{"burst":20,"per_second":10.0},"type":"welcome","v":1,"viewer":"peer-7"}"#
        );
    }
}
