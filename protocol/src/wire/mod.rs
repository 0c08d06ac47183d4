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
//! Direct (P2P) viewer: subscribe {path: direct} → subscribed {path: direct}; its offer and
//!             candidates go to the publisher as direct_offer / direct_candidate {viewer},
//!             whose direct_answer / direct_candidate come back to it as answer / candidate.
//!             Over the publisher's p2p_max, `subscribed` says path `server` (with a note)
//!             and the SFU answers as usual. direct_ended from the publisher reaches the
//!             viewer as direct_failed; a viewer that leaves makes the server send
//!             direct_close. The viewer falls back to the SFU by subscribing again.
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
mod snapshot;

use serde::{Deserialize, Serialize};

pub use crate::ids::{validate_camera_id, MAX_CAMERA_ID_LEN};
pub use camera::{CameraInfo, CameraState, SourceState, SourceStatus};
pub use client::{parse_client_message, ClientMessage};
pub use error::{ErrorCode, WireError};
pub use ice::IceServer;
pub use mse::MseInit;
pub use server::{parse_server_message, ServerMessage};
pub use snapshot::{
    parse_snapshot_reply, snapshot_reply, MAX_SNAPSHOT_MESSAGE_BYTES, SNAPSHOT_WIDTHS,
};

/// The way a viewer's media takes: through the SFU (`server`, the default) or straight from
/// the camera's publisher (`direct`, P2P). A viewer asks for one in `subscribe`; the server
/// says which it got in `subscribed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaPath {
    #[default]
    Server,
    Direct,
}

/// The most direct viewers a publisher may take (`register`'s `p2p_max`).
pub const MAX_P2P_VIEWERS: u32 = 16;

/// Largest signaling message the server reads. An SDP offer from a browser is 3–6 KiB; 64 KiB
/// leaves room for any sane offer while bounding what a misbehaving client can make us parse.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest camera name accepted at registration.
pub const MAX_CAMERA_NAME_LEN: usize = 128;

/// The longest `resume` key a client may present (the server issues 32 hex digits).
pub const MAX_RESUME_KEY_LEN: usize = 64;

/// How long after a viewer's signaling socket is lost its media connection waits for a new
/// session to resume it (`ice_restart` with `resume`). ICE itself gives up after about as
/// long without checks.
pub const RESUME_GRACE_SECS: u64 = 15;

/// The WebSocket close code a page uses when it drops its socket to reconnect on another
/// path (its network changed): the server then keeps its media connection for a resume, as
/// it does for a socket that just died.
pub const RESUME_CLOSE_CODE: u16 = 4000;

/// Longest source name and source error a publisher may report (characters). Errors are one
/// line of a log, not a backtrace.
pub const MAX_SOURCE_NAME_LEN: usize = 256;
pub const MAX_SOURCE_ERROR_LEN: usize = 512;
/// Longest source detail (characters): one short line such as
/// "re-encoding (High 4.0, 1920x1080; High profile, B-frames)".
pub const MAX_SOURCE_DETAIL_LEN: usize = 256;
