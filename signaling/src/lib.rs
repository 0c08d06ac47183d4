//! Sightline signaling: the wire types every side speaks and, with the `server` feature,
//! the axum server (WebSocket signaling, REST API, static web client) that drives the SFU.
//! [`control`] is the camera-control protocol spoken on WebRTC data channels.

pub mod control;
pub mod wire;

#[cfg(feature = "server")]
pub mod server;

pub use wire::{
    parse_client_message, parse_server_message, CameraInfo, CameraState, ClientMessage, ErrorCode,
    ServerMessage, SourceState, SourceStatus, WireError,
};
