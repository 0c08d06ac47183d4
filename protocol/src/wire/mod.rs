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
//! Everyone:   camera_online / camera_offline / source_state events, error {code, message};
//!             the ICE servers to use in `hello`, and fresh TURN credentials in `ice_servers`
//!             before the old ones expire
//!
//! The types, by concept: [`ClientMessage`] (what clients send, and the checks every field
//! gets), [`ServerMessage`] (what the server sends), [`CameraInfo`] and the camera's and its
//! source's state, and [`ErrorCode`] / [`WireError`] for refusals. Camera ids are checked by
//! [`validate_camera_id`] (in [`crate::ids`], with the other names every side checks).

mod camera;
mod client;
mod error;
mod ice;
mod mse;
mod server;

pub use crate::ids::{validate_camera_id, MAX_CAMERA_ID_LEN};
pub use camera::{CameraInfo, CameraState, SourceState, SourceStatus};
pub use client::{parse_client_message, ClientMessage};
pub use error::{ErrorCode, WireError};
pub use ice::IceServer;
pub use mse::MseInit;
pub use server::{parse_server_message, ServerMessage};

/// Largest signaling message the server reads. An SDP offer from a browser is 3–6 KiB; 64 KiB
/// leaves room for any sane offer while bounding what a misbehaving client can make us parse.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest camera name accepted at registration.
pub const MAX_CAMERA_NAME_LEN: usize = 128;

/// Longest source name and source error a publisher may report (characters). Errors are one
/// line of a log, not a backtrace.
pub const MAX_SOURCE_NAME_LEN: usize = 256;
pub const MAX_SOURCE_ERROR_LEN: usize = 512;
/// Longest source detail (characters): one short line such as
/// "re-encoding (High 4.0, 1920x1080; High profile, B-frames)".
pub const MAX_SOURCE_DETAIL_LEN: usize = 256;
