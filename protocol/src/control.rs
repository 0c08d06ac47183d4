//! The camera-control protocol: JSON text messages on a WebRTC data channel labelled
//! [`CHANNEL_LABEL`], between viewers and a camera's publisher, relayed by the SFU.
//!
//! Every message is one JSON object with `"v":1` (the protocol version) and a `type`.
//!
//! ```text
//! viewer    ──command──▶ SFU ──command + "from":"peer-7"──▶ publisher
//! viewer ◀──response──── SFU ◀──response + "to":"peer-7"─── publisher   (only that viewer)
//! viewers ◀─state / capabilities── SFU ◀─state / capabilities─ publisher (every viewer;
//!                                    the SFU keeps the last of each for viewers who join later)
//! viewer ◀──welcome── SFU (once the viewer's channel opens: its id, whether it may control)
//! viewers ◀─motion── SFU ◀─motion── publisher (every viewer, not kept: events of the moment)
//! ```
//!
//! Commands ([`Command`]), each with a `request_id` echoed in its [`Response`]:
//!
//! ```json
//! {"v":1,"type":"update_settings","request_id":"r1","settings":{"bitrate":1500000,"fps":15}}
//! {"v":1,"type":"apply_preset","request_id":"r2","name":"low_bandwidth"}
//! {"v":1,"type":"get_status","request_id":"r3"}
//! {"v":1,"type":"set_schedule","request_id":"r4","schedule":[{"at":"20:00","preset":"night"}]}
//! {"v":1,"type":"select_source","request_id":"r5","name":"porch"}
//! ```
//!
//! `pause` / `resume` are handled by the SFU for the sending viewer alone (stop and restart
//! forwarding media to it); the publisher never sees them. View-only viewers may send
//! `get_status`, `get_capabilities`, `pause` and `resume`; the SFU refuses the rest with
//! `forbidden`. The SFU also rate-limits every viewer (`rate_limited`).
//!
//! The SFU checks only the [`Envelope`] (`v`, `type`, `request_id`) and, by [`CommandType`],
//! who may send a command and whether it answers it itself; it leaves the settings to the
//! publisher. Full checks ([`parse_command`], [`validate_update`]) run on the publisher and in
//! clients.

mod capabilities;
mod command;
mod command_type;
mod envelope;
mod error;
mod message;
mod rate_limit;
pub mod relay;
mod schedule;
mod settings;

pub use capabilities::{validate_update, ApplyMode, Capabilities, Capability, ControlPath};
pub use command::{parse_command, Action, Command, Refusal};
pub use command_type::CommandType;
pub use envelope::{peek_request_id, Envelope};
pub use error::{ControlError, ControlErrorCode};
pub use message::{
    parse_message, unix_millis, ControlMessage, MotionEvent, MotionPhase, RateLimitInfo, Response,
    StateUpdate, StreamStatus, Welcome,
};
pub use rate_limit::{RateLimit, TokenBucket};
pub use schedule::{parse_schedule, ScheduleEntry, MAX_SCHEDULE_ENTRIES};
pub use settings::{parse_bitrate, CameraSettings, SettingValue};

pub use crate::ids::{
    validate_preset_name, validate_request_id, BUILT_IN_PRESETS, MAX_PRESET_NAME_LEN,
    MAX_REQUEST_ID_LEN,
};

/// The protocol version this side speaks; every message carries it as `"v"`.
pub const VERSION: u64 = 1;

/// The label of the data channel viewers and publishers open for control.
pub const CHANNEL_LABEL: &str = "control";

/// Largest control message accepted. Settings and capabilities are a few KiB at most.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 16 * 1024;
