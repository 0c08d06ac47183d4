//! What the server says about a camera and its video source.

use serde::{Deserialize, Serialize};

/// What `/api/cameras` and the signaling messages say about one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraInfo {
    pub id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub state: CameraState,
    pub viewers: u32,
    /// What the publisher last said about its video source; `null` while the camera is
    /// offline or before its publisher reported.
    #[serde(default)]
    pub source_state: Option<SourceStatus>,
    /// When the server last heard from the camera's publisher, in milliseconds since the
    /// Unix epoch: now, while it is online; when it went offline, after that. An offline
    /// camera is forgotten a while after this (the server's `--forget-after`).
    #[serde(default)]
    pub last_seen: u64,
}

/// A video source's state as its publisher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Opening the source; no frame yet.
    Connecting,
    /// Frames are flowing.
    Live,
    /// The source failed or stalled; the publisher reconnects it with backoff. Viewers keep
    /// the last picture.
    Lost,
    /// The publisher is not capturing on purpose: it streams on demand and nobody watches,
    /// or a controlling viewer stopped the stream. It starts again by itself when asked.
    Idle,
}

impl SourceState {
    /// Every state (a test checks it against the variants).
    pub const ALL: &'static [SourceState] = &[
        SourceState::Connecting,
        SourceState::Live,
        SourceState::Lost,
        SourceState::Idle,
    ];

    /// The state as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Live => "live",
            SourceState::Lost => "lost",
            SourceState::Idle => "idle",
        }
    }
}

/// One camera's source state, as kept by the server and shown in camera lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub state: SourceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The source's name, passwords redacted.
    pub source: String,
    /// How the source runs ("passthrough (Main 4.0, 1920x1080)"), if the publisher says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// A publisher is registered for it.
    Online,
    /// It was seen before; its publisher is gone. Viewers may stay subscribed.
    Offline,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_states_are_all_listed_as_serde_writes_them() {
        for s in SourceState::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        // A new variant breaks this match: give it the next position and add it to ALL.
        let position = |s: SourceState| match s {
            SourceState::Connecting => 0,
            SourceState::Live => 1,
            SourceState::Lost => 2,
            SourceState::Idle => 3,
        };
        let positions: Vec<usize> = SourceState::ALL.iter().map(|s| position(*s)).collect();
        assert_eq!(positions, [0, 1, 2, 3]);
    }

    #[test]
    fn camera_info_without_source_state_still_parses() {
        // What a server from before source states sent.
        let c: CameraInfo = serde_json::from_str(
            r#"{"id":"a","name":"A","width":640,"height":480,"fps":30,"state":"online","viewers":0}"#,
        )
        .unwrap();
        assert_eq!(c.source_state, None);
        // ... and one from before source details.
        let c: CameraInfo = serde_json::from_str(
            r#"{"id":"a","name":"A","width":640,"height":480,"fps":30,"state":"online","viewers":0,
                "source_state":{"state":"live","source":"v4l2:0"}}"#,
        )
        .unwrap();
        assert_eq!(c.source_state.unwrap().detail, None);
    }
}
