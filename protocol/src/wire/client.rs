//! What a client (publisher or viewer) sends, and the checks each message gets before the
//! server acts on it.

use serde::{Deserialize, Serialize};

use super::{
    validate_camera_id, ErrorCode, MediaPath, SourceState, WireError, MAX_CAMERA_NAME_LEN,
    MAX_MESSAGE_BYTES, MAX_P2P_VIEWERS, MAX_RESUME_KEY_LEN, MAX_SOURCE_DETAIL_LEN,
    MAX_SOURCE_ERROR_LEN, MAX_SOURCE_NAME_LEN,
};

/// Messages a client (publisher or viewer) sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A publisher announces the camera it will stream.
    Register {
        camera_id: String,
        name: String,
        width: u32,
        height: u32,
        fps: u32,
        /// How many viewers may watch directly (P2P) at once; 0 (or absent): none.
        #[serde(default)]
        p2p_max: u32,
    },
    /// Ask for the camera list; answered with [`ServerMessage::Cameras`](super::ServerMessage::Cameras).
    List,
    /// A viewer picks the camera it wants to watch. A later subscribe replaces the earlier one
    /// (the old peer connection is closed; the client makes a new one).
    /// What the viewer may do (watch only, or control too) comes from the token it
    /// connected with, not from this message.
    Subscribe {
        camera_id: String,
        /// `direct` asks for a peer connection straight to the publisher; the server may
        /// still answer `server` (see `subscribed`).
        #[serde(default)]
        path: MediaPath,
    },
    /// SDP offer from the client's peer connection (sendonly video for a publisher,
    /// recvonly video for a viewer). The server answers with [`ServerMessage::Answer`](super::ServerMessage::Answer).
    Offer { sdp: String },
    /// A viewer watching through the server restarts ICE on its media connection: `sdp` is
    /// the browser's offer after `restartIce()`, with new ICE credentials. The connection,
    /// its keys and its streams are kept; the server answers with `answer`.
    ///
    /// `resume`: sent on a *new* signaling connection, before any `subscribe`, after the old
    /// one was lost (a phone that changed networks loses both paths at once). It is the key
    /// from the last `answer`; the new session takes the media connection over, is answered
    /// `subscribed` then `answer`, and the old session ends. A key is good for
    /// [`RESUME_GRACE_SECS`](super::RESUME_GRACE_SECS) after its socket is lost; after that,
    /// or when the restart fails, subscribe again.
    IceRestart {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// A trickled ICE candidate (`candidate:...` line, with or without the `a=` prefix).
    /// An empty `candidate` means end of candidates and is accepted and ignored.
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: Option<u16>,
    },
    /// A publisher reports its video source's state (after `registered`, then on every
    /// change). The WebRTC session stays up while the source is lost.
    SourceState {
        state: SourceState,
        /// Why the source is lost (required for `lost`, refused for `live`).
        #[serde(default)]
        error: Option<String>,
        /// The source as the publisher names it, passwords redacted (`rtsp://admin:***@cam/1`).
        source: String,
        /// How the source runs, when the publisher has something to say: an RTSP camera's
        /// path ("passthrough (Constrained Baseline 3.1, 1280x720)" or "re-encoding (...)"),
        /// an HTTP camera's "MJPEG stream". Optional; a change alone is worth a report.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Publisher: the answer to a direct viewer's offer (`direct_offer`).
    DirectAnswer { viewer: u64, sdp: String },
    /// Publisher: one ICE candidate of its peer connection to a direct viewer.
    DirectCandidate {
        viewer: u64,
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: Option<u16>,
    },
    /// Publisher: it refused a direct viewer, or lost it; the viewer falls back to the SFU.
    DirectEnded { viewer: u64, reason: String },
    /// Publisher: it cannot make the snapshot the server asked for (`snapshot_request`).
    SnapshotFailed { request: u64, reason: String },
}

impl ClientMessage {
    /// Every message `type` a client may send (a test checks it against the variants).
    pub const TYPES: &'static [&'static str] = &[
        "register",
        "list",
        "subscribe",
        "offer",
        "ice_restart",
        "candidate",
        "source_state",
        "direct_answer",
        "direct_candidate",
        "direct_ended",
        "snapshot_failed",
    ];

    /// The ones only a publisher sends (about its own camera); a viewer never does.
    pub const PUBLISHER_ONLY_TYPES: &'static [&'static str] = &[
        "register",
        "source_state",
        "direct_answer",
        "direct_candidate",
        "direct_ended",
        "snapshot_failed",
    ];
}

/// Parse one text message from a client, telling apart the ways it can be wrong so the
/// client gets an error it can act on.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, WireError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::new(
            ErrorCode::TooLarge,
            format!(
                "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                text.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| WireError::new(ErrorCode::BadMessage, format!("not valid JSON: {e}")))?;
    let ty = match value.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(WireError::new(
                ErrorCode::BadMessage,
                "field `type` must be a string",
            ))
        }
        None => {
            return Err(WireError::new(
                ErrorCode::BadMessage,
                "message has no `type` field",
            ))
        }
    };
    if !ClientMessage::TYPES.contains(&ty.as_str()) {
        return Err(WireError::new(
            ErrorCode::UnknownType,
            format!(
                "unknown message type `{ty}`; expected one of {}",
                ClientMessage::TYPES.join(", ")
            ),
        ));
    }
    let msg: ClientMessage = serde_json::from_value(value)
        .map_err(|e| WireError::new(ErrorCode::BadMessage, format!("bad `{ty}` message: {e}")))?;
    validate(&msg)?;
    Ok(msg)
}

fn validate(msg: &ClientMessage) -> Result<(), WireError> {
    match msg {
        ClientMessage::Register {
            camera_id,
            name,
            width,
            height,
            fps,
            p2p_max,
        } => {
            validate_camera_id(camera_id)?;
            if *p2p_max > MAX_P2P_VIEWERS {
                return Err(invalid(format!(
                    "p2p_max: {p2p_max} is above {MAX_P2P_VIEWERS} (a camera's uplink carries few streams)"
                )));
            }
            if name.chars().count() > MAX_CAMERA_NAME_LEN {
                return Err(invalid(format!(
                    "name: at most {MAX_CAMERA_NAME_LEN} characters"
                )));
            }
            if !(16..=7680).contains(width) || !(16..=4320).contains(height) {
                return Err(invalid(format!(
                    "width/height: {width}x{height} is outside 16x16..7680x4320"
                )));
            }
            if !(1..=240).contains(fps) {
                return Err(invalid(format!("fps: {fps} is outside 1..240")));
            }
            Ok(())
        }
        ClientMessage::Subscribe { camera_id, .. } => validate_camera_id(camera_id),
        ClientMessage::IceRestart {
            resume: Some(key), ..
        } if key.is_empty()
            || key.len() > MAX_RESUME_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Err(invalid(format!(
                "resume: the key from `answer` (1..{MAX_RESUME_KEY_LEN} letters and digits)"
            )))
        }
        ClientMessage::Offer { sdp }
        | ClientMessage::IceRestart { sdp, .. }
        | ClientMessage::DirectAnswer { sdp, .. }
            if sdp.trim().is_empty() =>
        {
            Err(WireError::new(ErrorCode::InvalidSdp, "sdp is empty"))
        }
        ClientMessage::DirectEnded { reason, .. }
        | ClientMessage::SnapshotFailed { reason, .. }
            if reason.trim().is_empty() || reason.chars().count() > MAX_SOURCE_ERROR_LEN =>
        {
            Err(invalid(format!(
                "reason: must be 1..{MAX_SOURCE_ERROR_LEN} characters"
            )))
        }
        ClientMessage::SourceState {
            state,
            error,
            source,
            detail,
        } => validate_source_state(*state, error.as_deref(), source, detail.as_deref()),
        _ => Ok(()),
    }
}

/// A source report must name its source, explain a loss, and not call a live source failed;
/// a detail, when there is one, is one short line.
fn validate_source_state(
    state: SourceState,
    error: Option<&str>,
    source: &str,
    detail: Option<&str>,
) -> Result<(), WireError> {
    if source.trim().is_empty() || source.chars().count() > MAX_SOURCE_NAME_LEN {
        return Err(invalid(format!(
            "source: must be 1..{MAX_SOURCE_NAME_LEN} characters"
        )));
    }
    if error.is_some_and(|e| e.chars().count() > MAX_SOURCE_ERROR_LEN) {
        return Err(invalid(format!(
            "error: at most {MAX_SOURCE_ERROR_LEN} characters"
        )));
    }
    if let Some(detail) = detail {
        if detail.trim().is_empty() || detail.chars().count() > MAX_SOURCE_DETAIL_LEN {
            return Err(invalid(format!(
                "detail: must be 1..{MAX_SOURCE_DETAIL_LEN} characters (leave it out when there is none)"
            )));
        }
        if detail.chars().any(char::is_control) {
            return Err(invalid("detail: one line, no control characters".into()));
        }
    }
    let has_error = error.is_some_and(|e| !e.trim().is_empty());
    match state {
        SourceState::Lost if !has_error => Err(invalid(
            "error: a `lost` source must say why (non-empty `error`)".into(),
        )),
        SourceState::Live | SourceState::Idle if error.is_some() => Err(invalid(format!(
            "error: a `{}` source has no error",
            state.as_str()
        ))),
        _ => Ok(()),
    }
}

fn invalid(message: String) -> WireError {
    WireError::new(ErrorCode::InvalidField, message)
}

impl ClientMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client_message(text).unwrap_err().code
    }

    /// One message of every kind (parses_every_client_message uses these and more).
    fn one_of_each() -> Vec<ClientMessage> {
        vec![
            ClientMessage::Register {
                camera_id: "c".into(),
                name: "C".into(),
                width: 640,
                height: 480,
                fps: 30,
                p2p_max: 0,
            },
            ClientMessage::List,
            ClientMessage::Subscribe {
                camera_id: "c".into(),
                path: MediaPath::Server,
            },
            ClientMessage::Offer { sdp: "v=0".into() },
            ClientMessage::IceRestart {
                sdp: "v=0".into(),
                resume: None,
            },
            ClientMessage::Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            ClientMessage::SourceState {
                state: SourceState::Live,
                error: None,
                source: "s".into(),
                detail: None,
            },
            ClientMessage::DirectAnswer {
                viewer: 1,
                sdp: "v=0".into(),
            },
            ClientMessage::DirectCandidate {
                viewer: 1,
                candidate: String::new(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            ClientMessage::DirectEnded {
                viewer: 1,
                reason: "r".into(),
            },
            ClientMessage::SnapshotFailed {
                request: 3,
                reason: "idle".into(),
            },
        ]
    }

    #[test]
    fn types_lists_every_variant() {
        // Adding a variant breaks this match: add it to `one_of_each` and to TYPES.
        let type_of = |m: &ClientMessage| match m {
            ClientMessage::Register { .. }
            | ClientMessage::List
            | ClientMessage::Subscribe { .. }
            | ClientMessage::Offer { .. }
            | ClientMessage::IceRestart { .. }
            | ClientMessage::Candidate { .. }
            | ClientMessage::SourceState { .. }
            | ClientMessage::DirectAnswer { .. }
            | ClientMessage::DirectCandidate { .. }
            | ClientMessage::DirectEnded { .. }
            | ClientMessage::SnapshotFailed { .. } => {
                let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
                v["type"].as_str().unwrap().to_owned()
            }
        };
        let types: Vec<String> = one_of_each().iter().map(type_of).collect();
        assert_eq!(types, ClientMessage::TYPES);
        for t in ClientMessage::PUBLISHER_ONLY_TYPES {
            assert!(ClientMessage::TYPES.contains(t), "{t}");
        }
    }

    #[test]
    fn parses_every_client_message() {
        let msgs = [
            ClientMessage::Register {
                camera_id: "cam-1".into(),
                name: "Front door".into(),
                width: 1280,
                height: 720,
                fps: 30,
                p2p_max: 2,
            },
            ClientMessage::List,
            ClientMessage::Subscribe {
                camera_id: "cam-1".into(),
                path: MediaPath::Direct,
            },
            ClientMessage::Offer {
                sdp: "v=0\r\n".into(),
            },
            ClientMessage::IceRestart {
                sdp: "v=0\r\n".into(),
                resume: Some("0f3a9c".into()),
            },
            ClientMessage::Candidate {
                candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
            ClientMessage::SourceState {
                state: SourceState::Lost,
                error: Some("connection refused".into()),
                source: "esp32-tcp://10.0.0.7:80".into(),
                detail: None,
            },
            ClientMessage::SourceState {
                state: SourceState::Live,
                error: None,
                source: "file:movie.Mjpeg".into(),
                detail: None,
            },
            ClientMessage::SourceState {
                state: SourceState::Live,
                error: None,
                source: "rtsp://admin:***@cam/1".into(),
                detail: Some("passthrough (Constrained Baseline 3.1, 1280x720)".into()),
            },
            ClientMessage::SourceState {
                state: SourceState::Connecting,
                error: None,
                source: "rtsp://admin:***@cam/1".into(),
                detail: None,
            },
            ClientMessage::SourceState {
                state: SourceState::Idle,
                error: None,
                source: "test-pattern".into(),
                detail: None,
            },
        ];
        for m in msgs {
            assert_eq!(parse_client_message(&m.to_json()).unwrap(), m);
        }
        assert_eq!(
            parse_client_message(r#"{"type":"list"}"#).unwrap(),
            ClientMessage::List
        );
    }

    #[test]
    fn malformed_direct_messages_are_refused() {
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":"c","path":"sideways"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"direct_answer","viewer":"7","sdp":"v=0"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"direct_answer","viewer":-1,"sdp":"v=0"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"direct_answer","viewer":7,"sdp":"  "}"#),
            ErrorCode::InvalidSdp
        );
        assert_eq!(
            code(r#"{"type":"direct_candidate","candidate":"candidate:1"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"direct_ended","viewer":7,"reason":""}"#),
            ErrorCode::InvalidField
        );
        let long = "x".repeat(MAX_SOURCE_ERROR_LEN + 1);
        assert_eq!(
            code(&format!(
                r#"{{"type":"direct_ended","viewer":7,"reason":"{long}"}}"#
            )),
            ErrorCode::InvalidField
        );
        let register = |p2p: u32| {
            format!(
                r#"{{"type":"register","camera_id":"c","name":"C","width":640,"height":480,"fps":30,"p2p_max":{p2p}}}"#
            )
        };
        assert_eq!(
            code(&register(MAX_P2P_VIEWERS + 1)),
            ErrorCode::InvalidField
        );
        assert!(parse_client_message(&register(MAX_P2P_VIEWERS)).is_ok());
        // Older clients leave both fields out: no direct viewers, the SFU path.
        match parse_client_message(r#"{"type":"subscribe","camera_id":"c"}"#).unwrap() {
            ClientMessage::Subscribe { path, .. } => assert_eq!(path, MediaPath::Server),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tells_the_kinds_of_bad_input_apart() {
        assert_eq!(code("{not json"), ErrorCode::BadMessage);
        assert_eq!(code("[1,2]"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"camera_id":"x"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::BadMessage);
        assert_eq!(
            // The control key of old is gone: access comes from the connection's token.
            code(r#"{"type":"subscribe","camera_id":"a","control_key":"k"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":5}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":"a","extra":1}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":"../etc"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":""}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(
                r#"{"type":"register","camera_id":"a","name":"n","width":0,"height":10,"fps":30}"#
            ),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(
                r#"{"type":"register","camera_id":"a","name":"n","width":640,"height":480,"fps":0}"#
            ),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(
                r#"{"type":"register","camera_id":"a","name":"n","width":-1,"height":480,"fps":30}"#
            ),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"offer","sdp":"  "}"#),
            ErrorCode::InvalidSdp
        );
        let huge = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&huge), ErrorCode::TooLarge);
    }

    #[test]
    fn malformed_ice_restarts_are_refused() {
        assert_eq!(code(r#"{"type":"ice_restart"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"ice_restart","sdp":""}"#),
            ErrorCode::InvalidSdp
        );
        assert_eq!(
            code(r#"{"type":"ice_restart","sdp":"v=0","resume":7}"#),
            ErrorCode::BadMessage
        );
        for key in ["", "../x", "a b", "k-1"] {
            let text = format!(r#"{{"type":"ice_restart","sdp":"v=0","resume":"{key}"}}"#);
            assert_eq!(code(&text), ErrorCode::InvalidField, "{key:?}");
        }
        let long = "a".repeat(MAX_RESUME_KEY_LEN + 1);
        let text = format!(r#"{{"type":"ice_restart","sdp":"v=0","resume":"{long}"}}"#);
        assert_eq!(code(&text), ErrorCode::InvalidField);
        let longest = "a".repeat(MAX_RESUME_KEY_LEN);
        let text = format!(r#"{{"type":"ice_restart","sdp":"v=0","resume":"{longest}"}}"#);
        assert!(parse_client_message(&text).is_ok());
        // Without `resume` (or with null): a restart on this session's own connection.
        let m = parse_client_message(r#"{"type":"ice_restart","sdp":"v=0","resume":null}"#);
        assert!(matches!(
            m,
            Ok(ClientMessage::IceRestart { resume: None, .. })
        ));
    }

    #[test]
    fn source_state_parses_from_the_documented_json() {
        let m = parse_client_message(
            r#"{"type":"source_state","state":"lost","error":"timed out","source":"http://cam/stream"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ClientMessage::SourceState {
                state: SourceState::Lost,
                error: Some("timed out".into()),
                source: "http://cam/stream".into(),
                detail: None,
            }
        );
        // `error` may be left out when there is none.
        let m = parse_client_message(r#"{"type":"source_state","state":"live","source":"v4l2:0"}"#)
            .unwrap();
        assert!(matches!(
            m,
            ClientMessage::SourceState {
                error: None,
                detail: None,
                ..
            }
        ));
        let m = parse_client_message(
            r#"{"type":"source_state","state":"live","source":"rtsp://cam/1","detail":"re-encoding (High 3.1, 1280x720; High profile, B-frames)"}"#,
        )
        .unwrap();
        assert!(
            matches!(&m, ClientMessage::SourceState { detail: Some(d), .. } if d.starts_with("re-encoding (High 3.1")),
            "{m:?}"
        );
    }

    #[test]
    fn malformed_source_details_are_refused() {
        let bad = |detail: &str| {
            code(&format!(
                r#"{{"type":"source_state","state":"live","source":"s","detail":{detail}}}"#
            ))
        };
        assert_eq!(bad("7"), ErrorCode::BadMessage);
        assert_eq!(bad(r#"["passthrough"]"#), ErrorCode::BadMessage);
        assert_eq!(bad(r#"{"path":"passthrough"}"#), ErrorCode::BadMessage);
        assert_eq!(bad(r#""""#), ErrorCode::InvalidField);
        assert_eq!(bad(r#""  ""#), ErrorCode::InvalidField);
        assert_eq!(bad(r#""two\nlines""#), ErrorCode::InvalidField);
        let long = "d".repeat(MAX_SOURCE_DETAIL_LEN + 1);
        assert_eq!(bad(&format!(r#""{long}""#)), ErrorCode::InvalidField);
        // The longest allowed, counted in characters, not bytes.
        let longest = "é".repeat(MAX_SOURCE_DETAIL_LEN);
        assert!(parse_client_message(&format!(
            r#"{{"type":"source_state","state":"live","source":"s","detail":"{longest}"}}"#
        ))
        .is_ok());
        // `null` is the same as leaving it out.
        assert!(parse_client_message(
            r#"{"type":"source_state","state":"live","source":"s","detail":null}"#
        )
        .is_ok());
    }

    #[test]
    fn malformed_source_states_are_refused() {
        let bad = |fields: &str| code(&format!(r#"{{"type":"source_state",{fields}}}"#));
        // Unknown or mistyped state, missing fields: not one of the known messages.
        assert_eq!(
            bad(r#""state":"burning","source":"s""#),
            ErrorCode::BadMessage
        );
        assert_eq!(bad(r#""state":"LIVE","source":"s""#), ErrorCode::BadMessage);
        assert_eq!(bad(r#""state":3,"source":"s""#), ErrorCode::BadMessage);
        assert_eq!(bad(r#""source":"s""#), ErrorCode::BadMessage);
        assert_eq!(bad(r#""state":"live""#), ErrorCode::BadMessage);
        assert_eq!(
            bad(r#""state":"lost","error":7,"source":"s""#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            bad(r#""state":"live","source":"s","x":1"#),
            ErrorCode::BadMessage
        );
        // Well-formed but meaningless.
        assert_eq!(
            bad(r#""state":"lost","source":"s""#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            bad(r#""state":"lost","error":" ","source":"s""#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            bad(r#""state":"live","error":"x","source":"s""#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            bad(r#""state":"live","source":" ""#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            bad(r#""state":"idle","error":"x","source":"s""#),
            ErrorCode::InvalidField
        );
        let long = "e".repeat(MAX_SOURCE_ERROR_LEN + 1);
        assert_eq!(
            bad(&format!(r#""state":"lost","error":"{long}","source":"s""#)),
            ErrorCode::InvalidField
        );
        let long = "s".repeat(MAX_SOURCE_NAME_LEN + 1);
        assert_eq!(
            bad(&format!(r#""state":"live","source":"{long}""#)),
            ErrorCode::InvalidField
        );
    }
}
