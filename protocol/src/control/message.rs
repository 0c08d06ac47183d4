//! Messages towards viewers: replies, broadcasts from the publisher, the SFU's welcome.

use serde::{Deserialize, Serialize};

use super::capabilities::Capabilities;
use super::envelope::Envelope;
use super::error::{ControlError, ControlErrorCode};
use super::schedule::ScheduleEntry;
use super::settings::CameraSettings;
use super::VERSION;

/// The reply to one command (the seed's `StatusResponse`). From the publisher it carries
/// `to` (the viewer id from the command's `from`) and the SFU delivers it to that viewer
/// only; refusals by the SFU itself (forbidden, rate limited, malformed) have the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The command's `request_id`; absent when the command was too broken to have one.
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub success: bool,
    /// For people: what happened.
    pub message: String,
    /// The current settings after the command (all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<CameraSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StreamStatus>,
    /// For `get_capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Set exactly when `success` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

impl Response {
    pub fn ok(request_id: impl Into<String>, message: impl Into<String>) -> Self {
        Response {
            request_id: Some(request_id.into()),
            to: None,
            success: true,
            message: message.into(),
            settings: None,
            status: None,
            capabilities: None,
            error: None,
            timestamp: unix_millis(),
        }
    }

    pub fn refused(request_id: Option<String>, error: ControlError) -> Self {
        Response {
            request_id,
            to: None,
            success: false,
            message: error.message.clone(),
            settings: None,
            status: None,
            capabilities: None,
            error: Some(error),
            timestamp: unix_millis(),
        }
    }

    /// Address the reply to the viewer a command came `from`.
    pub fn to(mut self, viewer: Option<String>) -> Self {
        self.to = viewer;
        self
    }
}

/// What the stream is doing, beside the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// Capturing and sending (false when stopped or idle on demand).
    pub streaming: bool,
    /// The preset last applied, while the settings still match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Every preset name, built-in ones first.
    #[serde(default)]
    pub presets: Vec<String>,
    /// The source, as given to `--source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The names of the sources a viewer may switch among (`select_source`), in the
    /// publisher's order; empty when it was given one source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Which of `sources` runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// Presets applied at times of day, sorted by time.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
}

/// Broadcast by the publisher whenever settings or status change, and once when its control
/// channel opens. The SFU keeps the last one for viewers who join later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate {
    /// Grows by one with every change the publisher makes (and survives its restarts), so
    /// viewers who got updates out of order, or from two controllers at once, keep the
    /// highest and all converge on the same state.
    #[serde(default)]
    pub version: u64,
    pub settings: CameraSettings,
    pub status: StreamStatus,
    /// Who caused the change: a viewer id, or absent for the publisher itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The settings that changed with this update.
    #[serde(default)]
    pub changed: Vec<String>,
    pub timestamp: u64,
}

/// Motion seen by the publisher's detector (`ai_enabled` with `ai_model` `"motion"`), to
/// every viewer: `start` when it begins, `end` when it has been quiet for a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionEvent {
    pub phase: MotionPhase,
    /// `[x, y, width, height]` in pixels of the picture as sent: where it moved at the
    /// start; at the end, everywhere it moved.
    pub region: [u32; 4],
    /// 0.0..=1.0: how much moved (at the end, the most during the motion).
    pub score: f64,
    /// Capture time of the frame that decided it, milliseconds since the Unix epoch.
    pub ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MotionPhase {
    Start,
    End,
}

/// The SFU's first message on a viewer's control channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// This viewer's id, as commands are tagged (`from`) and state updates name it (`by`).
    pub viewer: String,
    pub camera: String,
    /// False: view-only (only get_status, get_capabilities, pause, resume are accepted).
    pub may_control: bool,
    pub rate_limit: RateLimitInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimitInfo {
    /// Sustained commands per second.
    pub per_second: f64,
    /// Commands accepted at once after a quiet spell.
    pub burst: u32,
}

/// Any message a viewer receives on its control channel (and the publisher sends, apart
/// from `welcome`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    Welcome(Welcome),
    Response(Response),
    State(StateUpdate),
    Capabilities(Capabilities),
    Motion(MotionEvent),
}

impl ControlMessage {
    /// The JSON text, with `"v":1`.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("control messages serialize");
        if let serde_json::Value::Object(m) = &mut value {
            m.insert("v".into(), VERSION.into());
        }
        value.to_string()
    }
}

impl From<Response> for ControlMessage {
    fn from(r: Response) -> Self {
        ControlMessage::Response(r)
    }
}

/// Parse a message towards a viewer (or from a publisher, on the SFU's and tests' side).
pub fn parse_message(text: &str) -> Result<ControlMessage, ControlError> {
    let Envelope { ty, body } = Envelope::parse(text.as_bytes())?;
    serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
        ControlError::new(
            ControlErrorCode::BadMessage,
            format!("bad `{ty}` control message: {e}"),
        )
    })
}

/// Milliseconds since the Unix epoch, for `timestamp` fields.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::control::{ApplyMode, Capability};

    #[test]
    fn every_message_round_trips_with_its_version() {
        let mut caps = Capabilities::default();
        caps.set(
            "fps",
            Capability::Int {
                min: 1,
                max: 60,
                step: 1,
                apply: ApplyMode::Live,
            },
        );
        let settings = CameraSettings {
            fps: Some(30),
            ..Default::default()
        };
        let msgs: Vec<ControlMessage> = vec![
            Response::ok("r1", "settings applied")
                .to(Some("peer-2".into()))
                .into(),
            Response::refused(
                Some("r2".into()),
                ControlError::field(
                    ControlErrorCode::InvalidValue,
                    "fps",
                    "99 is outside 1..=60",
                ),
            )
            .into(),
            ControlMessage::State(StateUpdate {
                version: 3,
                settings: settings.clone(),
                status: StreamStatus {
                    streaming: true,
                    preset: Some("hd".into()),
                    presets: vec!["hd".into()],
                    source: None,
                    sources: vec!["porch".into(), "garden".into()],
                    source_name: Some("porch".into()),
                    schedule: vec![ScheduleEntry {
                        at: "20:00".into(),
                        preset: "hd".into(),
                    }],
                },
                by: Some("peer-2".into()),
                changed: vec!["fps".into()],
                timestamp: 5,
            }),
            ControlMessage::Capabilities(caps),
            ControlMessage::Motion(MotionEvent {
                phase: MotionPhase::Start,
                region: [16, 24, 64, 48],
                score: 0.75,
                ts: 1_700_000_000_000,
            }),
            ControlMessage::Welcome(Welcome {
                viewer: "peer-2".into(),
                camera: "cam".into(),
                may_control: false,
                rate_limit: RateLimitInfo {
                    per_second: 10.0,
                    burst: 20,
                },
            }),
        ];
        for m in msgs {
            let text = m.to_json();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["v"], 1, "{text}");
            assert_eq!(parse_message(&text).unwrap(), m, "{text}");
        }
    }

    #[test]
    fn motion_json_shape_and_malformed_motion() {
        let m = ControlMessage::Motion(MotionEvent {
            phase: MotionPhase::End,
            region: [0, 8, 320, 120],
            score: 0.5,
            ts: 42,
        });
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"v":1,"type":"motion","phase":"end","region":[0,8,320,120],"score":0.5,"ts":42})
        );
        for bad in [
            r#"{"v":1,"type":"motion","phase":"middle","region":[0,0,1,1],"score":0.5,"ts":1}"#,
            r#"{"v":1,"type":"motion","phase":"start","region":[0,0,1],"score":0.5,"ts":1}"#,
            r#"{"v":1,"type":"motion","phase":"start","region":[0,0,1,-1],"score":0.5,"ts":1}"#,
            r#"{"v":1,"type":"motion","phase":"start","region":[0,0,1,1],"ts":1}"#,
        ] {
            let e = parse_message(bad).unwrap_err();
            assert!(
                e.message.contains("bad `motion` control message"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn response_json_shape() {
        let mut r = Response::refused(
            Some("r9".into()),
            ControlError::field(
                ControlErrorCode::InvalidValue,
                "bitrate",
                "50000000 is outside 100000..=8000000",
            ),
        );
        r.timestamp = 17;
        let v: serde_json::Value =
            serde_json::from_str(&ControlMessage::from(r).to_json()).unwrap();
        assert_eq!(
            v,
            json!({"v":1,"type":"response","request_id":"r9","success":false,
                   "message":"bitrate: 50000000 is outside 100000..=8000000",
                   "error":{"code":"invalid_value","field":"bitrate",
                            "message":"bitrate: 50000000 is outside 100000..=8000000"},
                   "timestamp":17})
        );
    }

    #[test]
    fn bad_messages_are_errors() {
        assert_eq!(
            parse_message("nope").unwrap_err().code,
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            parse_message(r#"{"v":3,"type":"state"}"#).unwrap_err().code,
            ControlErrorCode::UnsupportedVersion
        );
        let e = parse_message(r#"{"v":1,"type":"state"}"#).unwrap_err();
        assert!(e.message.contains("bad `state`"), "{}", e.message);
        assert!(parse_message(r#"{"v":1,"type":"dance"}"#).is_err());
        assert!(parse_message(
            r#"{"v":1,"type":"response","success":"yes","message":"","timestamp":1}"#
        )
        .is_err());
    }
}
