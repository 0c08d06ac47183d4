//! Sightline signaling: with the `server` feature, the axum server (WebSocket signaling, REST
//! API, static web client) that drives the SFU. The wire types and the camera-control
//! protocol now live in `sightline-protocol`; they are re-exported here for the crates that
//! still import them from this one.

pub use sightline_protocol::{control, wire};

#[cfg(feature = "server")]
pub mod server;

pub use sightline_protocol::{
    parse_client_message, parse_server_message, CameraInfo, CameraState, ClientMessage, ErrorCode,
    ServerMessage, SourceState, SourceStatus, WireError,
};
