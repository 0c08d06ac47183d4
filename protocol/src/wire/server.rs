//! What the server sends to a client.

use serde::{Deserialize, Serialize};

use super::{CameraInfo, ErrorCode, IceServer, MediaPath, SourceState, WireError};

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Messages the server sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent once on connect: who the server thinks this session is.
    Hello {
        session_id: u64,
        server_version: String,
        /// STUN and TURN servers for this session's peer connections (none: the SFU's own
        /// address is enough).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// Fresh TURN credentials, sent before the ones in `hello` (or the last of these)
    /// expire. New peer connections and ICE restarts use them.
    IceServers { ice_servers: Vec<IceServer> },
    /// The publisher's camera is registered; it may now send its offer.
    Registered { camera_id: String },
    /// Answer to [`ClientMessage::List`](super::ClientMessage::List).
    Cameras { cameras: Vec<CameraInfo> },
    /// The viewer's subscription is recorded; it may now send its offer. `path`: where the
    /// offer goes (the SFU, or the publisher when a direct path was asked for and granted);
    /// `note` says why a direct request got `server`.
    Subscribed {
        camera: CameraInfo,
        #[serde(default)]
        path: MediaPath,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// SDP answer to the client's offer (or ICE restart). `resume`, on a viewer's answer
    /// from the SFU: the key a new signaling connection presents (`ice_restart` with
    /// `resume`) to take this media connection over after losing the socket.
    Answer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
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
    /// A camera was taken out of the registry (`DELETE /api/cameras/{id}`, or offline
    /// for longer than the server keeps cameras). Sent to every session. Its viewers stop
    /// waiting for it; its publisher, if connected, stops and does not reconnect.
    CameraRemoved { camera_id: String },
    /// To a camera's publisher only: send a JPEG of the picture now (`GET
    /// /api/cameras/{id}/snapshot.jpg`). `width`: scale down to this width (the height
    /// follows); none, or wider than the picture: its own size. The publisher answers with
    /// one binary message, [`snapshot_reply`](super::snapshot_reply) (the request id, then
    /// the JPEG), or `snapshot_failed` with the reason.
    SnapshotRequest {
        request: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
    },
    /// The server is shutting down (a restart or a deploy): the socket closes next. Clients
    /// reconnect as after any lost connection; nothing is wrong with them.
    ServerStopping,
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
    ///
    /// `vp8_viewers`: how many of them the SFU sends VP8 (their browsers cannot decode
    /// H.264). The publisher runs its VP8 encoder only while this is above zero; left out
    /// when zero, so older publishers read the message as before.
    Demand {
        camera_id: String,
        viewers: u32,
        #[serde(default, skip_serializing_if = "is_zero")]
        vp8_viewers: u32,
    },
    /// To a publisher: a direct viewer's offer. `viewer` names it in every direct message;
    /// `may_control`: whether it may change the camera (its token), which the publisher
    /// enforces on the direct control channel as the SFU would.
    DirectOffer {
        viewer: u64,
        sdp: String,
        may_control: bool,
    },
    /// To a publisher: one ICE candidate of a direct viewer.
    DirectCandidate {
        viewer: u64,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
    /// To a publisher: the direct viewer left (or moved to the SFU); close its connection.
    DirectClose { viewer: u64 },
    /// To a direct viewer: the publisher refused or lost the direct connection; subscribe
    /// again (without `direct`) to watch through the server.
    DirectFailed { reason: String },
    /// Something the client sent was refused. The session stays open.
    Error { code: ErrorCode, message: String },
}

impl From<WireError> for ServerMessage {
    fn from(e: WireError) -> Self {
        ServerMessage::Error {
            code: e.code,
            message: e.message,
        }
    }
}

impl ServerMessage {
    /// Every message `type` the server sends (a test checks it against the variants).
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "ice_servers",
        "registered",
        "cameras",
        "subscribed",
        "answer",
        "candidate",
        "camera_online",
        "camera_offline",
        "camera_removed",
        "source_state",
        "demand",
        "direct_offer",
        "direct_candidate",
        "direct_close",
        "direct_failed",
        "snapshot_request",
        "server_stopping",
        "error",
    ];

    /// The ones only a publisher gets (about its own camera); a viewer never sees them.
    pub const PUBLISHER_ONLY_TYPES: &'static [&'static str] = &[
        "registered",
        "demand",
        "direct_offer",
        "direct_candidate",
        "direct_close",
        "snapshot_request",
    ];

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
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

    #[test]
    fn types_lists_every_variant() {
        let camera = CameraInfo {
            id: "c".into(),
            name: "C".into(),
            width: 640,
            height: 480,
            fps: 30,
            state: crate::wire::CameraState::Online,
            viewers: 0,
            source_state: None,
            last_seen: 0,
        };
        let one_of_each = [
            ServerMessage::Hello {
                session_id: 1,
                server_version: "0".into(),
                ice_servers: vec![],
            },
            ServerMessage::IceServers {
                ice_servers: vec![IceServer {
                    urls: vec!["turn:t.example:3478?transport=udp".into()],
                    username: Some("1700000000:alice".into()),
                    credential: Some("c2VjcmV0".into()),
                }],
            },
            ServerMessage::Registered {
                camera_id: "c".into(),
            },
            ServerMessage::Cameras { cameras: vec![] },
            ServerMessage::Subscribed {
                camera: camera.clone(),
                path: MediaPath::Direct,
                note: None,
            },
            ServerMessage::Answer {
                sdp: "v=0".into(),
                resume: Some("0f3a".into()),
            },
            ServerMessage::Candidate {
                candidate: "candidate:1".into(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            ServerMessage::CameraOnline { camera },
            ServerMessage::CameraOffline {
                camera_id: "c".into(),
            },
            ServerMessage::CameraRemoved {
                camera_id: "c".into(),
            },
            ServerMessage::SourceState {
                camera_id: "c".into(),
                state: SourceState::Live,
                error: None,
                source: "s".into(),
                detail: None,
            },
            ServerMessage::Demand {
                camera_id: "c".into(),
                viewers: 0,
                vp8_viewers: 0,
            },
            ServerMessage::DirectOffer {
                viewer: 1,
                sdp: "v=0".into(),
                may_control: false,
            },
            ServerMessage::DirectCandidate {
                viewer: 1,
                candidate: "candidate:1".into(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            ServerMessage::DirectClose { viewer: 1 },
            ServerMessage::DirectFailed { reason: "r".into() },
            ServerMessage::SnapshotRequest {
                request: 1,
                width: Some(320),
            },
            ServerMessage::ServerStopping,
            ServerMessage::Error {
                code: ErrorCode::Internal,
                message: "m".into(),
            },
        ];
        // Adding a variant breaks this match: add it to `one_of_each` and to TYPES.
        let type_of = |m: &ServerMessage| match m {
            ServerMessage::Hello { .. }
            | ServerMessage::IceServers { .. }
            | ServerMessage::Registered { .. }
            | ServerMessage::Cameras { .. }
            | ServerMessage::Subscribed { .. }
            | ServerMessage::Answer { .. }
            | ServerMessage::Candidate { .. }
            | ServerMessage::CameraOnline { .. }
            | ServerMessage::CameraOffline { .. }
            | ServerMessage::CameraRemoved { .. }
            | ServerMessage::SourceState { .. }
            | ServerMessage::Demand { .. }
            | ServerMessage::DirectOffer { .. }
            | ServerMessage::DirectCandidate { .. }
            | ServerMessage::DirectClose { .. }
            | ServerMessage::DirectFailed { .. }
            | ServerMessage::SnapshotRequest { .. }
            | ServerMessage::ServerStopping
            | ServerMessage::Error { .. } => {
                let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
                v["type"].as_str().unwrap().to_owned()
            }
        };
        let types: Vec<String> = one_of_each.iter().map(type_of).collect();
        assert_eq!(types, ServerMessage::TYPES);
        for t in ServerMessage::PUBLISHER_ONLY_TYPES {
            assert!(ServerMessage::TYPES.contains(t), "{t}");
        }
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
            vp8_viewers: 0,
        };
        let json = m.to_json();
        assert_eq!(json, r#"{"type":"demand","camera_id":"porch","viewers":3}"#);
        assert_eq!(parse_server_message(&json).unwrap(), m);
        let vp8 = ServerMessage::Demand {
            camera_id: "porch".into(),
            viewers: 3,
            vp8_viewers: 1,
        };
        let json = vp8.to_json();
        assert_eq!(
            json,
            r#"{"type":"demand","camera_id":"porch","viewers":3,"vp8_viewers":1}"#
        );
        assert_eq!(parse_server_message(&json).unwrap(), vp8);
        assert!(parse_server_message(
            r#"{"type":"demand","camera_id":"p","viewers":1,"vp8_viewers":"x"}"#
        )
        .is_err());
        assert!(parse_server_message(r#"{"type":"demand","camera_id":"p","viewers":-1}"#).is_err());
        assert!(parse_server_message(r#"{"type":"demand","camera_id":"p"}"#).is_err());
    }
}
