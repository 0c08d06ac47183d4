//! Sightline SFU: forwards H.264 from one publisher per camera to any number of viewers,
//! without decoding, over one UDP port, on str0m (ice-lite).
//!
//! The public surface is [`Sfu::start`] and the cloneable [`SfuHandle`]. Signaling hands
//! the SFU SDP offers and trickled candidates; the SFU answers and runs the media.
//!
//! Peers that add a data channel labelled `control` to their offer take part in camera
//! control (the protocol is `sightline_protocol::control`): the SFU relays viewers' commands
//! to the camera's publisher (tagged with the viewer's id), the publisher's replies back to
//! the one viewer, its broadcasts to all, and enforces each viewer's [`ViewerAccess`] and
//! [`RateLimit`]. It reads only a command's envelope and type (who may send it, whether the
//! SFU answers it itself: pause and resume); the publisher checks the settings.

mod command;
mod config;
mod control_channel;
mod control_relay;
mod control_wire;
mod feed;
mod forward;
mod handle;
mod keyframe;
mod media_loop;
mod negotiate;
mod offer;
mod peer;
mod rate_limit;
mod routing;
mod rtc_config;
mod send_batch;
mod sockets;
mod types;
mod viewer_tx;

pub use config::SfuConfig;
pub use handle::{Sfu, SfuHandle};
pub use rate_limit::RateLimit;
pub use types::{PeerAnswer, PeerId, SfuError, SfuEvent, SfuStats, ViewerAccess};
