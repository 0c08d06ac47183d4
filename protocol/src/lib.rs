//! Sightline protocol: what every side speaks, and nothing else.
//!
//! - [`wire`]: signaling, JSON over the server's WebSocket (`/ws`): publishers register
//!   cameras, viewers subscribe, both exchange SDP and ICE; the server reports cameras and
//!   their sources' state.
//! - [`control`]: camera control, JSON on a WebRTC data channel labelled `control`, between
//!   viewers and a camera's publisher, relayed by the SFU.
//! - [`ids`]: the names every side checks the same way (camera ids, request ids).
//!
//! The server (`sightline-signaling`), the SFU (`sightline-sfu`), the publisher and the test
//! viewers all use these types; the browser client (`web-client/`) mirrors their names by
//! hand. Only serde: no async runtime, no WebRTC stack.

pub mod control;
pub mod ids;
pub mod wire;

pub use ids::{validate_camera_id, validate_request_id};

pub use wire::{
    parse_client_message, parse_server_message, CameraInfo, CameraState, ClientMessage, ErrorCode,
    ServerMessage, SourceState, SourceStatus, WireError,
};
