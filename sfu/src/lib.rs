//! Sightline SFU: forwards H.264 (and VP8, for viewers without H.264) from one publisher per
//! camera to any number of viewers, without decoding, over one UDP port, on str0m (ice-lite).
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
//! [`SfuHandle::control`] takes one command from outside WebRTC (a REST door) down the same
//! path, under a ticket id that names the caller to the publisher, and waits for its answer.
//!
//! [`SfuHandle::watch`] adds a viewer outside WebRTC (the server's MSE door): a [`Watch`]
//! that receives the camera's access units whole (from a keyframe on, never decoded) and
//! the same control messages a data channel carries, through a bounded queue. A watcher too
//! slow to keep up loses frames up to the next keyframe; nobody else waits for it.
//!
//! # Shape
//!
//! ```text
//!  SfuHandle ──commands──▶ ┌──────────── driver (tokio) ────────────┐
//!  (signaling)  ◀─events── │ UDP sockets · command channel · select │
//!                          └──┬───────────────────────────────▲─────┘
//!        datagrams, commands, │ now                transmits, │ events,
//!                             ▼                     next deadline
//!                          ┌──────────── core (sans-I/O) ───────────┐
//!                          │ peers (str0m Rtc) · negotiation ·      │
//!                          │ forwarding · control relay · timers ·  │
//!                          │ routing, keyframe gate, feed,          │
//!                          │ rate limit (plain state)               │
//!                          └────────────────────────────────────────┘
//! ```
//!
//! `core` owns every `Rtc` and all state and does no I/O: it takes datagrams, commands and
//! the time, and gives back datagrams to send, events and when to call it next, so it runs
//! in tests without sockets. `driver` is the thin tokio layer that feeds it.
//! `types` and `config` are what both sides and the public API share; `histogram` holds
//! the duration histograms among the counters (frames' dwell, viewers' first frame).

pub mod annex_b;
mod config;
mod core;
mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
mod types;

pub use crate::core::RateLimit;
pub use config::SfuConfig;
pub use driver::{Sfu, SfuHandle, Watch};
pub use types::{
    CameraStats, ControlCount, PeerAnswer, PeerId, SfuError, SfuEvent, SfuStats, VideoCodec,
    ViewerAccess, WatchFrame, WatchMessage,
};
