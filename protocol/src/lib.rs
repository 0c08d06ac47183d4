//! Sightline protocol: what every side speaks, and nothing else (serde only: no async
//! runtime, no WebRTC stack).
//!
//! - [`wire`]: signaling, JSON over the server's WebSocket (`/ws`): publishers register
//!   cameras, viewers subscribe, both exchange SDP and ICE; the server reports cameras and
//!   their sources' state. By concept: `wire/client.rs` (what clients send, and the checks
//!   each message gets), `wire/server.rs`, `wire/camera.rs`, `wire/error.rs`.
//! - [`control`]: camera control, JSON on a WebRTC data channel labelled `control`, between
//!   viewers and a camera's publisher, relayed by the SFU. The SFU reads only a message's
//!   [`control::Envelope`] and a command's [`control::CommandType`] (who may send it, whether
//!   the SFU answers it itself); the publisher parses the whole [`control::Command`].
//! - [`ids`]: the names every side checks the same way: camera ids, request ids, preset names.
//!
//! Users: the server (`sightline-signaling`), the SFU (`sightline-sfu`), the publisher and the
//! test viewers. The browser client (`web-client/`) copies the names and limits it needs by
//! hand; `tests/web_client.rs` reads its `export const` lines and checks each against the
//! lists here (`CommandType::NAMES`, `ServerMessage::TYPES`, `Capability::TYPES`, ...).

pub mod control;
pub mod ids;
pub mod wire;

pub use ids::{validate_camera_id, validate_preset_name, validate_request_id};
pub use wire::{
    parse_client_message, parse_server_message, CameraInfo, CameraState, ClientMessage, ErrorCode,
    ServerMessage, SourceState, SourceStatus, WireError,
};
