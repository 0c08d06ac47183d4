//! The signaling wire format: JSON objects tagged by `type`, one per WebSocket text message.
//!
//! Every side (server, publisher, headless viewers, the browser client) speaks these types.
//! The browser client mirrors them by hand in `web-client/signaling.js`; keep both in step.
//!
//! A session is a publisher once it sends [`ClientMessage::Register`], a viewer once it sends
//! [`ClientMessage::Subscribe`]; before that it may only list cameras.
//!
//! Publisher:  register → registered, offer → answer, candidate ⇄ candidate,
//!             source_state (whenever its video source connects, goes live or is lost, or
//!             its `detail` changes: how the live source runs, e.g. H.264 passthrough)
//! Viewer:     list → cameras, subscribe → subscribed, offer → answer, candidate ⇄ candidate
//! Server → publisher: demand {viewers} after `registered` and whenever its camera's viewer
//!             count changes (an on-demand publisher starts and stops capturing by it)
//! Everyone:   camera_online / camera_offline / source_state events, error {code, message}

use serde::{Deserialize, Serialize};

/// Largest signaling message the server reads. An SDP offer from a browser is 3–6 KiB; 64 KiB
/// leaves room for any sane offer while bounding what a misbehaving client can make us parse.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest camera id and name accepted at registration.
pub const MAX_CAMERA_ID_LEN: usize = 64;
pub const MAX_CAMERA_NAME_LEN: usize = 128;

/// Longest source name and source error a publisher may report (characters). Errors are one
/// line of a log, not a backtrace.
pub const MAX_SOURCE_NAME_LEN: usize = 256;
pub const MAX_SOURCE_ERROR_LEN: usize = 512;
/// Longest source detail (characters): one short line such as
/// "re-encoding (High 4.0, 1920x1080; High profile, B-frames)".
pub const MAX_SOURCE_DETAIL_LEN: usize = 256;

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
    },
    /// Ask for the camera list; answered with [`ServerMessage::Cameras`].
    List,
    /// A viewer picks the camera it wants to watch. A later subscribe replaces the earlier one
    /// (the old peer connection is closed; the client makes a new one).
    Subscribe {
        camera_id: String,
        /// The server's `--control-key`: with it the viewer may control the camera (see
        /// [`crate::control`]); without it, view-only (loopback viewers may control when
        /// the server has no key). A wrong key is refused with `forbidden`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control_key: Option<String>,
    },
    /// SDP offer from the client's peer connection (sendonly video for a publisher,
    /// recvonly video for a viewer). The server answers with [`ServerMessage::Answer`].
    Offer { sdp: String },
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
}

/// Messages the server sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent once on connect: who the server thinks this session is.
    Hello {
        session_id: u64,
        server_version: String,
    },
    /// The publisher's camera is registered; it may now send its offer.
    Registered { camera_id: String },
    /// Answer to [`ClientMessage::List`].
    Cameras { cameras: Vec<CameraInfo> },
    /// The viewer's subscription is recorded; it may now send its offer.
    Subscribed { camera: CameraInfo },
    /// SDP answer to the client's offer.
    Answer { sdp: String },
    /// One of the server's ICE candidates.
    Candidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
    /// A camera went live (a publisher registered it). Sent to every session.
    CameraOnline { camera: CameraInfo },
    /// A camera's publisher went away. Sent to every session. Viewers of it keep their peer
    /// connection; video resumes by itself when the camera comes back.
    CameraOffline { camera_id: String },
    /// A camera's video source changed state (its publisher said so). Sent to every session,
    /// like camera_online, since every camera list shows it.
    SourceState {
        camera_id: String,
        state: SourceState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// To a camera's publisher only: how many viewer sessions are subscribed to its camera.
    /// Sent right after [`ServerMessage::Registered`] and then whenever the count changes
    /// (a viewer subscribes, moves to another camera, or its session ends). An on-demand
    /// publisher captures and encodes only while this is above zero.
    Demand { camera_id: String, viewers: u32 },
    /// Something the client sent was refused. The session stays open.
    Error { code: ErrorCode, message: String },
}

/// What `/api/cameras` and the signaling messages say about one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraInfo {
    pub id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub state: CameraState,
    pub viewers: u32,
    /// What the publisher last said about its video source; `null` while the camera is
    /// offline or before its publisher reported.
    #[serde(default)]
    pub source_state: Option<SourceStatus>,
}

/// A video source's state as its publisher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Opening the source; no frame yet.
    Connecting,
    /// Frames are flowing.
    Live,
    /// The source failed or stalled; the publisher reconnects it with backoff. Viewers keep
    /// the last picture.
    Lost,
    /// The publisher is not capturing on purpose: it streams on demand and nobody watches,
    /// or a controlling viewer stopped the stream. It starts again by itself when asked.
    Idle,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Live => "live",
            SourceState::Lost => "lost",
            SourceState::Idle => "idle",
        }
    }
}

/// One camera's source state, as kept by the server and shown in camera lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub state: SourceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The source's name, passwords redacted.
    pub source: String,
    /// How the source runs ("passthrough (Main 4.0, 1920x1080)"), if the publisher says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// A publisher is registered for it.
    Online,
    /// It was seen before; its publisher is gone. Viewers may stay subscribed.
    Offline,
}

/// Machine-readable reason in [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON that is not one of the known messages.
    BadMessage,
    /// A `type` the server does not know.
    UnknownType,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// A field has a value out of range (empty id, zero width, ...).
    InvalidField,
    /// The SDP could not be parsed or offers nothing we can use (no H.264, no video).
    InvalidSdp,
    /// The ICE candidate could not be parsed.
    InvalidCandidate,
    /// Subscribe to a camera id the server has never seen.
    UnknownCamera,
    /// Register a camera id that already has a live publisher.
    CameraAlreadyLive,
    /// The message does not fit the session's state (offer before register/subscribe,
    /// register twice, subscribe from a publisher...).
    WrongState,
    /// The media engine failed; the message says why.
    Internal,
    /// Not allowed for this session (a wrong control key).
    Forbidden,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidSdp => "invalid_sdp",
            ErrorCode::InvalidCandidate => "invalid_candidate",
            ErrorCode::UnknownCamera => "unknown_camera",
            ErrorCode::CameraAlreadyLive => "camera_already_live",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::Internal => "internal",
            ErrorCode::Forbidden => "forbidden",
        }
    }
}

/// A refusal: what goes back to the sender in [`ServerMessage::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

impl From<WireError> for ServerMessage {
    fn from(e: WireError) -> Self {
        ServerMessage::Error {
            code: e.code,
            message: e.message,
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "register",
    "list",
    "subscribe",
    "offer",
    "candidate",
    "source_state",
];

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
    if !CLIENT_TYPES.contains(&ty.as_str()) {
        return Err(WireError::new(
            ErrorCode::UnknownType,
            format!(
                "unknown message type `{ty}`; expected one of {}",
                CLIENT_TYPES.join(", ")
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
        } => {
            validate_camera_id(camera_id)?;
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
        ClientMessage::Offer { sdp } if sdp.trim().is_empty() => {
            Err(WireError::new(ErrorCode::InvalidSdp, "sdp is empty"))
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

/// Camera ids appear in URLs, logs and file names: keep them to a safe alphabet.
pub fn validate_camera_id(id: &str) -> Result<(), WireError> {
    if id.is_empty() || id.len() > MAX_CAMERA_ID_LEN {
        return Err(invalid(format!(
            "camera_id: must be 1..{MAX_CAMERA_ID_LEN} characters"
        )));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(format!(
            "camera_id: `{id}` may only hold letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

fn invalid(message: String) -> WireError {
    WireError::new(ErrorCode::InvalidField, message)
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

impl ClientMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client messages always serialize")
    }
}

/// Parse a server message (client side). Unknown or malformed messages are an error the
/// client logs and skips.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client_message(text).unwrap_err().code
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
            },
            ClientMessage::List,
            ClientMessage::Subscribe {
                camera_id: "cam-1".into(),
                control_key: None,
            },
            ClientMessage::Subscribe {
                camera_id: "cam-1".into(),
                control_key: Some("secret".into()),
            },
            ClientMessage::Offer {
                sdp: "v=0\r\n".into(),
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
    fn tells_the_kinds_of_bad_input_apart() {
        assert_eq!(code("{not json"), ErrorCode::BadMessage);
        assert_eq!(code("[1,2]"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"camera_id":"x"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"subscribe","camera_id":"a","control_key":5}"#),
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

    #[test]
    fn server_messages_round_trip() {
        let m = ServerMessage::Error {
            code: ErrorCode::UnknownCamera,
            message: "no camera `x`".into(),
        };
        let json = m.to_json();
        assert!(json.contains(r#""type":"error""#));
        assert!(json.contains(r#""code":"unknown_camera""#));
        assert_eq!(parse_server_message(&json).unwrap(), m);

        let m = ServerMessage::SourceState {
            camera_id: "porch".into(),
            state: SourceState::Lost,
            error: Some("no frame for 2.0 s".into()),
            source: "esp32-tcp://10.0.0.7:80".into(),
            detail: None,
        };
        let json = m.to_json();
        assert!(json.contains(r#""type":"source_state""#), "{json}");
        assert!(json.contains(r#""state":"lost""#), "{json}");
        assert_eq!(parse_server_message(&json).unwrap(), m);
        // No `error` key at all when live.
        let live = ServerMessage::SourceState {
            camera_id: "porch".into(),
            state: SourceState::Live,
            error: None,
            source: "s".into(),
            detail: None,
        };
        assert!(!live.to_json().contains("error"), "{}", live.to_json());
        // Nor a `detail` key when there is none (what older clients saw).
        assert!(!live.to_json().contains("detail"), "{}", live.to_json());
        let m = ServerMessage::SourceState {
            camera_id: "porch".into(),
            state: SourceState::Live,
            error: None,
            source: "rtsp://cam/1".into(),
            detail: Some("passthrough (Main 4.0, 1920x1080)".into()),
        };
        let json = m.to_json();
        assert!(
            json.contains(r#""detail":"passthrough (Main 4.0, 1920x1080)""#),
            "{json}"
        );
        assert_eq!(parse_server_message(&json).unwrap(), m);
    }

    #[test]
    fn demand_round_trips() {
        let m = ServerMessage::Demand {
            camera_id: "porch".into(),
            viewers: 3,
        };
        let json = m.to_json();
        assert_eq!(json, r#"{"type":"demand","camera_id":"porch","viewers":3}"#);
        assert_eq!(parse_server_message(&json).unwrap(), m);
        assert!(parse_server_message(r#"{"type":"demand","camera_id":"p","viewers":-1}"#).is_err());
        assert!(parse_server_message(r#"{"type":"demand","camera_id":"p"}"#).is_err());
    }

    #[test]
    fn camera_info_without_source_state_still_parses() {
        // What a server from before source states sent.
        let c: CameraInfo = serde_json::from_str(
            r#"{"id":"a","name":"A","width":640,"height":480,"fps":30,"state":"online","viewers":0}"#,
        )
        .unwrap();
        assert_eq!(c.source_state, None);
        // ... and one from before source details.
        let c: CameraInfo = serde_json::from_str(
            r#"{"id":"a","name":"A","width":640,"height":480,"fps":30,"state":"online","viewers":0,
                "source_state":{"state":"live","source":"v4l2:0"}}"#,
        )
        .unwrap();
        assert_eq!(c.source_state.unwrap().detail, None);
    }
}
