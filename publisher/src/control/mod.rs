//! Camera control on the publisher: the settings viewers change over the control data
//! channel (protocol in [`sightline_protocol::control`]), what the current source can do
//! with them, and how changes reach the encode thread without stopping the video.
//!
//! ```text
//! control channel ──text──▶ ControlState::handle_text ──▶ Outcome { response (to the sender),
//!                               │   (validate, all or       broadcast (every viewer),
//!                               │    nothing; presets;      intent (start/stop/restart/
//!                               │    save to the file)      keyframe: the station does it) }
//!                               ▼
//!                    PipelineSettingsHandle ──snapshot──▶ encode thread: reader.get() per
//!                                                          frame → FrameTransform (drop for
//!                                                          fps, scale, adjust) → encoder
//!                                                          (bitrate, fps, size follow)
//! ```
//!
//! - [`source_profile`]: the source's kind and size → [`Capabilities`] (range, choices and
//!   apply mode of every setting, or why it is unsupported).
//! - [`state`]: [`ControlState`], the one owner of the settings; [`handler`]: commands.
//! - [`plan`]: which changes are live, need a keyframe (new size) or a source restart.
//! - [`pipeline_settings`]: the lock-free-on-the-hot-path handoff to the encode thread.
//! - [`frame_transform`], [`frame_rate`]: what the encode thread does with the snapshot.
//! - [`presets`], [`store`]: named presets and the settings file; [`schedule`]: when the
//!   presets of a camera's schedule apply.
//! - [`on_demand`]: when to capture at all (viewer counts, `start_stream` / `stop_stream`,
//!   the idle timer), as plain state with time passed in.
//!
//! [`Capabilities`]: sightline_protocol::control::Capabilities

pub mod frame_rate;
pub mod frame_transform;
pub mod handler;
pub mod on_demand;
pub mod pipeline_settings;
pub mod plan;
pub mod presets;
pub mod resolution;
pub mod schedule;
pub mod source_profile;
pub mod state;
pub mod store;

pub use frame_transform::FrameTransform;
pub use handler::{Intent, Outcome};
pub use pipeline_settings::{PipelineSettings, PipelineSettingsHandle, PipelineSettingsReader};
pub use plan::ApplyPlan;
pub use source_profile::{SourceKind, SourceProfile};
pub use state::{ControlConfig, ControlState, SourceChange};
pub use store::{SavedState, SettingsStore};

#[cfg(test)]
mod tests;
