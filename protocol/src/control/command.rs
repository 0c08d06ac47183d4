//! Commands a viewer sends (and the publisher receives, tagged by the SFU with `from`).

use serde_json::{Map, Value};

use super::command_type::CommandType;
use super::envelope::Envelope;
use super::error::{ControlError, ControlErrorCode};
use super::schedule::{parse_schedule, ScheduleEntry};
use super::settings::CameraSettings;
use super::{validate_preset_name, validate_request_id, VERSION};

/// What a command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Change some settings, all or none (`settings`: a partial [`CameraSettings`]).
    UpdateSettings(CameraSettings),
    /// Start capturing and sending (on-demand publishers, or after `stop_stream`).
    StartStream,
    /// Stop capturing and sending; the publisher stays connected.
    StopStream,
    /// Reply with the current settings and stream status.
    GetStatus,
    /// Reopen the source (and encoder).
    RestartCamera,
    /// Reply with the capabilities.
    GetCapabilities,
    /// Send a keyframe now.
    RequestKeyframe,
    /// Apply the named preset (`low_bandwidth`, `balanced`, `hd`, or a saved one).
    ApplyPreset { name: String },
    /// Save the current settings as a preset under `name`.
    SavePreset { name: String },
    /// Forget the saved preset `name` (built-in presets cannot be deleted).
    DeletePreset { name: String },
    /// Rename the saved preset `name` to `new_name` (not a built-in one, on either side).
    RenamePreset { name: String, new_name: String },
    /// Replace the schedule (`schedule`: entries `{"at":"HH:MM","preset":NAME}`; `[]`
    /// clears it).
    SetSchedule { schedule: Vec<ScheduleEntry> },
    /// Switch to the configured source `name` (never a URL: a viewer only picks among the
    /// sources the publisher was given).
    SelectSource { name: String },
    /// Viewer-local, handled by the SFU: stop forwarding media to this viewer.
    Pause,
    /// Viewer-local, handled by the SFU: forward media again, starting at a keyframe.
    Resume,
}

impl Action {
    /// Every command `type` ([`CommandType::NAMES`]).
    pub const NAMES: &'static [&'static str] = CommandType::NAMES;

    /// Its type, without the arguments.
    pub fn command_type(&self) -> CommandType {
        match self {
            Action::UpdateSettings(_) => CommandType::UpdateSettings,
            Action::StartStream => CommandType::StartStream,
            Action::StopStream => CommandType::StopStream,
            Action::GetStatus => CommandType::GetStatus,
            Action::RestartCamera => CommandType::RestartCamera,
            Action::GetCapabilities => CommandType::GetCapabilities,
            Action::RequestKeyframe => CommandType::RequestKeyframe,
            Action::ApplyPreset { .. } => CommandType::ApplyPreset,
            Action::SavePreset { .. } => CommandType::SavePreset,
            Action::DeletePreset { .. } => CommandType::DeletePreset,
            Action::RenamePreset { .. } => CommandType::RenamePreset,
            Action::SetSchedule { .. } => CommandType::SetSchedule,
            Action::SelectSource { .. } => CommandType::SelectSource,
            Action::Pause => CommandType::Pause,
            Action::Resume => CommandType::Resume,
        }
    }

    pub fn name(&self) -> &'static str {
        self.command_type().name()
    }

    /// View-only viewers may send it: it changes nothing at the camera.
    pub fn is_read_only(&self) -> bool {
        self.command_type().is_read_only()
    }

    /// The SFU answers it for the sending viewer; the publisher never sees it.
    pub fn is_viewer_local(&self) -> bool {
        self.command_type().is_viewer_local()
    }

    /// An instance of the named command with placeholder arguments (tests, docs).
    pub fn example(name: &str) -> Option<Action> {
        Some(match name {
            "update_settings" => Action::UpdateSettings(CameraSettings {
                bitrate: Some(1_000_000),
                ..CameraSettings::default()
            }),
            "start_stream" => Action::StartStream,
            "stop_stream" => Action::StopStream,
            "get_status" => Action::GetStatus,
            "restart_camera" => Action::RestartCamera,
            "get_capabilities" => Action::GetCapabilities,
            "request_keyframe" => Action::RequestKeyframe,
            "apply_preset" => Action::ApplyPreset {
                name: "balanced".into(),
            },
            "save_preset" => Action::SavePreset {
                name: "mine".into(),
            },
            "delete_preset" => Action::DeletePreset {
                name: "mine".into(),
            },
            "rename_preset" => Action::RenamePreset {
                name: "mine".into(),
                new_name: "night".into(),
            },
            "set_schedule" => Action::SetSchedule {
                schedule: vec![ScheduleEntry {
                    at: "20:00".into(),
                    preset: "low_bandwidth".into(),
                }],
            },
            "select_source" => Action::SelectSource {
                name: "porch".into(),
            },
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            _ => return None,
        })
    }
}

/// A command with its request id and, once relayed by the SFU, the viewer that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub request_id: String,
    /// The sending viewer's id (`peer-7`), set by the SFU; whatever a viewer put here is
    /// overwritten on the way.
    pub from: Option<String>,
    pub action: Action,
}

impl Command {
    pub fn new(request_id: impl Into<String>, action: Action) -> Self {
        Command {
            request_id: request_id.into(),
            from: None,
            action,
        }
    }

    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("v".into(), VERSION.into());
        m.insert("type".into(), self.action.name().into());
        m.insert("request_id".into(), self.request_id.clone().into());
        if let Some(from) = &self.from {
            m.insert("from".into(), from.clone().into());
        }
        match &self.action {
            Action::UpdateSettings(s) => {
                m.insert(
                    "settings".into(),
                    serde_json::to_value(s).expect("settings serialize"),
                );
            }
            Action::ApplyPreset { name }
            | Action::SavePreset { name }
            | Action::DeletePreset { name }
            | Action::SelectSource { name } => {
                m.insert("name".into(), name.clone().into());
            }
            Action::RenamePreset { name, new_name } => {
                m.insert("name".into(), name.clone().into());
                m.insert("new_name".into(), new_name.clone().into());
            }
            Action::SetSchedule { schedule } => {
                m.insert(
                    "schedule".into(),
                    serde_json::to_value(schedule).expect("schedule serializes"),
                );
            }
            _ => {}
        }
        Value::Object(m).to_string()
    }
}

/// A command that could not be parsed, with its request id when one could be read, so the
/// refusal can still be matched to the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    pub request_id: Option<String>,
    /// The viewer the SFU tagged the command with (`from`), when it could be read, so the
    /// publisher's refusal still reaches its sender. `None` for the SFU's own refusals.
    pub from: Option<String>,
    pub error: ControlError,
}

/// Parse one command, checking everything but the settings' ranges (which need the
/// capabilities: [`super::validate_update`]).
pub fn parse_command(text: &str) -> Result<Command, Refusal> {
    let Envelope { ty, body: map } = Envelope::parse(text.as_bytes()).map_err(|error| Refusal {
        request_id: None,
        from: None,
        error,
    })?;
    let request_id = map
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let sender = map.get("from").and_then(Value::as_str).map(str::to_owned);
    let refuse = |error| Refusal {
        request_id: request_id.clone(),
        from: sender.clone(),
        error,
    };
    let bad = |msg: String| refuse(ControlError::new(ControlErrorCode::BadMessage, msg));

    let command_type = CommandType::parse(&ty).map_err(refuse)?;
    let request_id = match map.get("request_id") {
        Some(Value::String(id)) => match validate_request_id(id) {
            Ok(()) => id.clone(),
            Err(reason) => return Err(bad(format!("{ty}: {reason}"))),
        },
        Some(_) => return Err(bad(format!("{ty}: request_id must be a string"))),
        None => return Err(bad(format!("{ty}: missing request_id"))),
    };
    let from = match map.get("from") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f.clone()),
        Some(_) => return Err(bad(format!("{ty}: from must be a string"))),
    };
    let extra: &[&str] = match command_type {
        CommandType::UpdateSettings => &["settings"],
        CommandType::SetSchedule => &["schedule"],
        CommandType::ApplyPreset
        | CommandType::SavePreset
        | CommandType::DeletePreset
        | CommandType::SelectSource => &["name"],
        CommandType::RenamePreset => &["name", "new_name"],
        _ => &[],
    };
    if let Some(unknown) = map.keys().find(|k| {
        !["v", "type", "request_id", "from"].contains(&k.as_str()) && !extra.contains(&k.as_str())
    }) {
        return Err(bad(format!("{ty}: unknown field `{unknown}`")));
    }

    let action = match command_type {
        CommandType::UpdateSettings => {
            let settings = map
                .get("settings")
                .ok_or_else(|| bad(format!("{ty}: missing settings")))?;
            Action::UpdateSettings(CameraSettings::from_json(settings).map_err(refuse)?)
        }
        CommandType::ApplyPreset => Action::ApplyPreset {
            name: name_field(&map, "name").map_err(refuse)?,
        },
        CommandType::SavePreset => Action::SavePreset {
            name: name_field(&map, "name").map_err(refuse)?,
        },
        CommandType::DeletePreset => Action::DeletePreset {
            name: name_field(&map, "name").map_err(refuse)?,
        },
        CommandType::RenamePreset => Action::RenamePreset {
            name: name_field(&map, "name").map_err(refuse)?,
            new_name: name_field(&map, "new_name").map_err(refuse)?,
        },
        CommandType::SetSchedule => {
            let schedule = map
                .get("schedule")
                .ok_or_else(|| bad(format!("{ty}: missing schedule")))?;
            Action::SetSchedule {
                schedule: parse_schedule(schedule).map_err(refuse)?,
            }
        }
        // Source names follow the preset names' rules (a short label, no paths).
        CommandType::SelectSource => Action::SelectSource {
            name: name_field(&map, "name").map_err(refuse)?,
        },
        other => Action::example(other.name()).expect("every command type has an action"),
    };
    Ok(Command {
        request_id,
        from,
        action,
    })
}

/// A name field (a preset's `name`, `rename_preset`'s `new_name`, a source's `name`), as given
/// ([`validate_preset_name`]). A viewer's name is trimmed first, as it always was on the
/// wire: `" night "` means the preset `night`.
fn name_field(map: &Map<String, Value>, field: &str) -> Result<String, ControlError> {
    let name = match map.get(field) {
        Some(Value::String(n)) => n.trim(),
        Some(v) => {
            return Err(ControlError::field(
                ControlErrorCode::BadMessage,
                field,
                format!("expected a name, got {v}"),
            ))
        }
        None => {
            return Err(ControlError::field(
                ControlErrorCode::BadMessage,
                field,
                "missing name",
            ))
        }
    };
    validate_preset_name(name).map_err(|mut e| {
        e.field = Some(field.to_owned());
        e
    })?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> Refusal {
        parse_command(text).unwrap_err()
    }

    fn code(text: &str) -> ControlErrorCode {
        refusal(text).error.code
    }

    #[test]
    fn every_command_type_has_its_action() {
        for t in CommandType::ALL {
            let action = Action::example(t.name()).unwrap();
            assert_eq!(action.command_type(), *t);
            assert_eq!(action.name(), t.name());
        }
        assert_eq!(Action::example("dance"), None);
    }

    #[test]
    fn every_command_round_trips() {
        for name in Action::NAMES {
            let mut c = Command::new("r-1", Action::example(name).unwrap());
            assert_eq!(parse_command(&c.to_json()).unwrap(), c, "{name}");
            c.from = Some("peer-4".into());
            assert_eq!(parse_command(&c.to_json()).unwrap(), c, "{name}");
        }
    }

    #[test]
    fn parses_the_documented_examples() {
        let c = parse_command(
            r#"{"v":1,"type":"update_settings","request_id":"r1","settings":{"bitrate":1500000,"fps":15}}"#,
        )
        .unwrap();
        match c.action {
            Action::UpdateSettings(s) => {
                assert_eq!((s.bitrate, s.fps), (Some(1_500_000), Some(15)))
            }
            other => panic!("{other:?}"),
        }
        let c = parse_command(
            r#"{"v":1,"type":"apply_preset","request_id":"r2","name":"low_bandwidth"}"#,
        )
        .unwrap();
        assert_eq!(
            c.action,
            Action::ApplyPreset {
                name: "low_bandwidth".into()
            }
        );
    }

    #[test]
    fn malformed_messages_are_refused_clearly() {
        assert_eq!(code("{not json"), ControlErrorCode::BadMessage);
        assert!(refusal("{not json")
            .error
            .message
            .contains("not valid JSON"));
        assert_eq!(code("[1]"), ControlErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"get_status","request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":3,"request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":"get_status"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":"get_status","request_id":""}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":1,"type":"get_status","request_id":7}"#),
            ControlErrorCode::BadMessage
        );
        let long = format!(
            r#"{{"v":1,"type":"get_status","request_id":"{}"}}"#,
            "x".repeat(65)
        );
        assert_eq!(code(&long), ControlErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"v":1,"type":"get_status","request_id":"a","from":5}"#),
            ControlErrorCode::BadMessage
        );
        let e = refusal(r#"{"v":1,"type":"get_status","request_id":"a","x":1}"#);
        assert_eq!(e.error.message, "get_status: unknown field `x`");
        assert_eq!(
            e.request_id.as_deref(),
            Some("a"),
            "refusals keep the request id"
        );
        assert_eq!(
            code(r#"{"v":1,"type":"update_settings","request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        let e =
            refusal(r#"{"v":1,"type":"update_settings","request_id":"a","settings":{"fps":"x"}}"#);
        assert_eq!(
            (e.error.code, e.error.field.as_deref()),
            (ControlErrorCode::InvalidValue, Some("fps"))
        );
        let big = format!(
            r#"{{"v":1,"type":"get_status","request_id":"a","pad":"{}"}}"#,
            "x".repeat(20_000)
        );
        assert_eq!(code(&big), ControlErrorCode::TooLarge);
    }

    #[test]
    fn unknown_version_and_command_are_told_apart() {
        let e = refusal(r#"{"v":2,"type":"get_status","request_id":"a"}"#);
        assert_eq!(e.error.code, ControlErrorCode::UnsupportedVersion);
        assert!(e.error.message.contains("version 2"), "{}", e.error.message);
        assert_eq!(
            code(r#"{"v":"1","type":"get_status","request_id":"a"}"#),
            ControlErrorCode::UnsupportedVersion
        );
        let e = refusal(r#"{"v":1,"type":"zoom","request_id":"z"}"#);
        assert_eq!(e.error.code, ControlErrorCode::UnknownCommand);
        assert!(
            e.error.message.contains("update_settings"),
            "lists the commands: {}",
            e.error.message
        );
        assert_eq!(e.request_id.as_deref(), Some("z"));
        // The SFU's tag survives a refusal, so the publisher can address it.
        let e = refusal(r#"{"v":1,"type":"zoom","request_id":"z","from":"peer-9"}"#);
        assert_eq!(e.from.as_deref(), Some("peer-9"));
        assert_eq!(refusal("{nope").from, None);
    }

    #[test]
    fn set_schedule_and_select_source() {
        let text = r#"{"v":1,"type":"set_schedule","request_id":"a","schedule":[{"at":"20:00","preset":"night"},{"at":"07:00","preset":"day"}]}"#;
        match parse_command(text).unwrap().action {
            Action::SetSchedule { schedule } => {
                let at: Vec<&str> = schedule.iter().map(|e| e.at.as_str()).collect();
                assert_eq!(at, ["07:00", "20:00"], "sorted by time");
            }
            other => panic!("{other:?}"),
        }
        for (body, field) in [
            (r#""schedule":{"at":"07:00"}"#, Some("schedule")),
            (
                r#""schedule":[{"at":"7am","preset":"day"}]"#,
                Some("schedule"),
            ),
            (r#""schedule":[],"name":"x""#, None),
            ("", None),
        ] {
            let text = format!(
                r#"{{"v":1,"type":"set_schedule","request_id":"a"{}{body}}}"#,
                if body.is_empty() { "" } else { "," }
            );
            let e = refusal(&text);
            assert_eq!(e.error.field.as_deref(), field, "{body}: {e:?}");
            assert_eq!(e.request_id.as_deref(), Some("a"));
        }
        let text = r#"{"v":1,"type":"select_source","request_id":"a","name":"porch"}"#;
        assert_eq!(
            parse_command(text).unwrap().action,
            Action::SelectSource {
                name: "porch".into()
            }
        );
        for bad in [
            r#""name":"rtsp://10.0.0.9/stream""#,
            r#""name":"../etc/passwd""#,
            r#""name":7"#,
            r#""url":"rtsp://x""#,
        ] {
            let text = format!(r#"{{"v":1,"type":"select_source","request_id":"a",{bad}}}"#);
            assert!(parse_command(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn preset_names_are_checked() {
        assert_eq!(
            code(r#"{"v":1,"type":"apply_preset","request_id":"a"}"#),
            ControlErrorCode::BadMessage
        );
        for bad in [
            r#""""#,
            r#""../etc""#,
            r#""   ""#,
            "5",
            &format!("\"{}\"", "a".repeat(33)),
        ] {
            let text = format!(r#"{{"v":1,"type":"save_preset","request_id":"a","name":{bad}}}"#);
            let e = refusal(&text).error;
            assert_eq!(e.field.as_deref(), Some("name"), "{bad}");
        }
        // rename_preset checks both names, and says which one is wrong.
        for (fields, field) in [
            (r#""name":"a""#, "new_name"),
            (r#""new_name":"a""#, "name"),
            (r#""name":"a","new_name":"../x""#, "new_name"),
            (r#""name":"","new_name":"b""#, "name"),
        ] {
            let text = format!(r#"{{"v":1,"type":"rename_preset","request_id":"a",{fields}}}"#);
            let e = refusal(&text).error;
            assert_eq!(e.field.as_deref(), Some(field), "{fields}");
        }
        assert_eq!(
            code(r#"{"v":1,"type":"delete_preset","request_id":"a","name":"x","new_name":"y"}"#),
            ControlErrorCode::BadMessage,
            "delete_preset takes no new_name"
        );
        let text =
            r#"{"v":1,"type":"rename_preset","request_id":"a","name":"day ","new_name":" dusk"}"#;
        assert_eq!(
            parse_command(text).unwrap().action,
            Action::RenamePreset {
                name: "day".into(),
                new_name: "dusk".into()
            }
        );
        let text = r#"{"v":1,"type":"apply_preset","request_id":"a","name":" night "}"#;
        assert!(
            matches!(parse_command(text), Ok(Command { action: Action::ApplyPreset { ref name }, .. }) if name == "night"),
            "surrounding spaces are trimmed"
        );
    }
}
