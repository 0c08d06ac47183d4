//! What a publisher's current source can do with each setting, and validating an update
//! against it. An update is all-or-nothing: the first bad field refuses the whole of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ControlError, ControlErrorCode};
use super::settings::{CameraSettings, SettingValue};

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// At once, no interruption (bitrate, fps, image controls).
    Live,
    /// The encoder restarts with a keyframe; viewers adapt without reconnecting (resolution).
    Keyframe,
    /// The source or pipeline restarts; a short gap in the video (camera index).
    Restart,
}

/// One setting as the source offers it: `{"type":"int","min":100000,"max":8000000,
/// "step":1000,"apply":"live"}`, `{"type":"unsupported","reason":"..."}`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Capability {
    Int {
        min: i64,
        max: i64,
        #[serde(default = "one")]
        step: i64,
        apply: ApplyMode,
    },
    Float {
        min: f64,
        max: f64,
        apply: ApplyMode,
    },
    Bool {
        apply: ApplyMode,
    },
    /// One of `choices` (compared as text, so `"fps"` may be an enum of `"15"`, `"30"`).
    Enum {
        choices: Vec<String>,
        apply: ApplyMode,
    },
    /// Free text up to `max_len` characters.
    #[serde(rename = "string")]
    Text {
        max_len: u32,
        apply: ApplyMode,
    },
    /// The source cannot honour it; updates naming it are refused.
    Unsupported {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl ApplyMode {
    /// Every mode, from the least disruptive (a test checks it against the variants).
    pub const ALL: &'static [ApplyMode] =
        &[ApplyMode::Live, ApplyMode::Keyframe, ApplyMode::Restart];

    /// The mode as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyMode::Live => "live",
            ApplyMode::Keyframe => "keyframe",
            ApplyMode::Restart => "restart",
        }
    }
}

fn one() -> i64 {
    1
}

impl Capability {
    /// Every capability `type` as written on the wire (a test checks it against the variants).
    pub const TYPES: &'static [&'static str] =
        &["int", "float", "bool", "enum", "string", "unsupported"];

    pub fn apply_mode(&self) -> Option<ApplyMode> {
        match self {
            Capability::Int { apply, .. }
            | Capability::Float { apply, .. }
            | Capability::Bool { apply }
            | Capability::Enum { apply, .. }
            | Capability::Text { apply, .. } => Some(*apply),
            Capability::Unsupported { .. } => None,
        }
    }
}

/// Where an image control is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlPath {
    /// By the camera itself (a V4L2 control): the sensor's own setting.
    Hardware,
    /// By the publisher, on the decoded pixels before encoding.
    Software,
}

impl ControlPath {
    /// Every path, as written on the wire (a test checks it against the variants).
    pub const NAMES: &'static [&'static str] = &["hardware", "software"];
}

/// The publisher's announcement: every setting by name. A setting it does not list is
/// unsupported. `paths` says, for the image controls (`brightness`, `contrast`,
/// `saturation`, `sharpness`, `auto_exposure`, `exposure_time`) that are supported, whether
/// the camera or the publisher carries them out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub settings: BTreeMap<String, Capability>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, ControlPath>,
}

impl Capabilities {
    pub fn get(&self, name: &str) -> Option<&Capability> {
        self.settings.get(name)
    }

    pub fn set(&mut self, name: &str, cap: Capability) -> &mut Self {
        self.settings.insert(name.to_owned(), cap);
        self
    }

    /// Set `name` carried out along `path`.
    pub fn set_on(&mut self, name: &str, cap: Capability, path: ControlPath) -> &mut Self {
        self.paths.insert(name.to_owned(), path);
        self.set(name, cap)
    }

    pub fn path(&self, name: &str) -> Option<ControlPath> {
        self.paths.get(name).copied()
    }

    /// The strictest apply mode among the settings of `update` (live < keyframe < restart).
    pub fn apply_mode_of(&self, update: &CameraSettings) -> Option<ApplyMode> {
        update
            .entries()
            .iter()
            .filter_map(|(name, _)| self.get(name)?.apply_mode())
            .max_by_key(|m| match m {
                ApplyMode::Live => 0,
                ApplyMode::Keyframe => 1,
                ApplyMode::Restart => 2,
            })
    }
}

/// Check every setting of `update` against `caps`. Errors name the field and what is allowed:
/// `bitrate: 50000000 is outside 100000..=8000000`.
pub fn validate_update(update: &CameraSettings, caps: &Capabilities) -> Result<(), ControlError> {
    let entries = update.entries();
    if entries.is_empty() {
        return Err(ControlError::field(
            ControlErrorCode::InvalidValue,
            "settings",
            format!(
                "the update names no setting; give at least one of {}",
                CameraSettings::NAMES.join(", ")
            ),
        ));
    }
    for (name, value) in &entries {
        let unsupported = Capability::Unsupported { reason: None };
        let cap = caps.get(name).unwrap_or(&unsupported);
        check(name, value, cap)?;
    }
    Ok(())
}

fn check(name: &str, value: &SettingValue, cap: &Capability) -> Result<(), ControlError> {
    let invalid = |msg: String| {
        Err(ControlError::field(
            ControlErrorCode::InvalidValue,
            name,
            msg,
        ))
    };
    match (cap, value) {
        (Capability::Unsupported { reason }, _) => Err(ControlError::field(
            ControlErrorCode::Unsupported,
            name,
            match reason {
                Some(r) => format!("not supported by this camera's source ({r})"),
                None => "not supported by this camera's source".to_owned(),
            },
        )),
        (Capability::Int { min, max, step, .. }, SettingValue::Int(v)) => {
            if v < min || v > max {
                return invalid(format!("{v} is outside {min}..={max}"));
            }
            if *step > 1 && (v - min) % step != 0 {
                return invalid(format!(
                    "{v} is not allowed: {min}..={max} in steps of {step}"
                ));
            }
            Ok(())
        }
        (Capability::Float { min, max, .. }, SettingValue::Float(_) | SettingValue::Int(_)) => {
            let v = match value {
                SettingValue::Float(f) => *f,
                SettingValue::Int(i) => *i as f64,
                _ => unreachable!("matched above"),
            };
            if !(v >= *min && v <= *max) {
                return invalid(format!("{v} is outside {min}..={max}"));
            }
            Ok(())
        }
        (Capability::Bool { .. }, SettingValue::Bool(_)) => Ok(()),
        (Capability::Enum { choices, .. }, v) => {
            let text = match v {
                SettingValue::Text(t) => t.clone(),
                other => other.to_string(),
            };
            if choices.contains(&text) {
                Ok(())
            } else {
                invalid(format!("{v} is not one of {}", choices.join(", ")))
            }
        }
        (Capability::Text { max_len, .. }, SettingValue::Text(t)) => {
            let n = t.chars().count();
            if n == 0 || n > *max_len as usize {
                return invalid(format!("{n} characters; allowed 1..={max_len}"));
            }
            Ok(())
        }
        (cap, v) => invalid(format!(
            "{v} does not fit this source, which takes {}",
            match cap {
                Capability::Int { .. } => "a whole number",
                Capability::Float { .. } => "a number",
                Capability::Bool { .. } => "true or false",
                Capability::Text { .. } => "text",
                Capability::Enum { .. } | Capability::Unsupported { .. } => "another value",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn caps() -> Capabilities {
        let mut c = Capabilities::default();
        c.set(
            "bitrate",
            Capability::Int {
                min: 100_000,
                max: 8_000_000,
                step: 1,
                apply: ApplyMode::Live,
            },
        )
        .set(
            "width",
            Capability::Int {
                min: 16,
                max: 1920,
                step: 2,
                apply: ApplyMode::Keyframe,
            },
        )
        .set(
            "fps",
            Capability::Enum {
                choices: vec!["15".into(), "30".into()],
                apply: ApplyMode::Live,
            },
        )
        .set(
            "ai_confidence",
            Capability::Float {
                min: 0.0,
                max: 1.0,
                apply: ApplyMode::Live,
            },
        )
        .set(
            "auto_exposure",
            Capability::Bool {
                apply: ApplyMode::Live,
            },
        )
        .set(
            "encoding",
            Capability::Enum {
                choices: vec!["h264".into()],
                apply: ApplyMode::Restart,
            },
        )
        .set(
            "camera_name",
            Capability::Text {
                max_len: 8,
                apply: ApplyMode::Live,
            },
        )
        .set(
            "camera_index",
            Capability::Unsupported {
                reason: Some("test pattern".into()),
            },
        );
        c
    }

    fn validate(v: serde_json::Value) -> Result<(), ControlError> {
        validate_update(&CameraSettings::from_json(&v).unwrap(), &caps())
    }

    fn refused(v: serde_json::Value) -> ControlError {
        validate(v).unwrap_err()
    }

    #[test]
    fn values_within_the_capabilities_pass() {
        validate(
            json!({"bitrate": 100000, "width": 640, "fps": 15, "ai_confidence": 1,
                        "auto_exposure": false, "encoding": "h264", "camera_name": "Gate"}),
        )
        .unwrap();
        validate(json!({"bitrate": 8000000})).unwrap();
    }

    #[test]
    fn out_of_range_names_field_and_range() {
        let e = refused(json!({"bitrate": 50000000}));
        assert_eq!(e.code, ControlErrorCode::InvalidValue);
        assert_eq!(e.field.as_deref(), Some("bitrate"));
        assert_eq!(e.message, "bitrate: 50000000 is outside 100000..=8000000");
        assert_eq!(
            refused(json!({"bitrate": 99999})).field.as_deref(),
            Some("bitrate")
        );
        assert_eq!(
            refused(json!({"width": 641})).message,
            "width: 641 is not allowed: 16..=1920 in steps of 2"
        );
        assert_eq!(
            refused(json!({"fps": 25})).message,
            "fps: 25 is not one of 15, 30"
        );
        assert_eq!(
            refused(json!({"ai_confidence": 1.5})).message,
            "ai_confidence: 1.5 is outside 0..=1"
        );
        assert_eq!(
            refused(json!({"encoding": "h265"})).message,
            "encoding: \"h265\" is not one of h264"
        );
        assert_eq!(
            refused(json!({"camera_name": ""})).field.as_deref(),
            Some("camera_name")
        );
        assert_eq!(
            refused(json!({"camera_name": "123456789"}))
                .field
                .as_deref(),
            Some("camera_name")
        );
    }

    #[test]
    fn unsupported_and_unlisted_settings_are_refused() {
        let e = refused(json!({"camera_index": 1}));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ControlErrorCode::Unsupported, Some("camera_index"))
        );
        assert!(e.message.contains("test pattern"), "{}", e.message);
        let e = refused(json!({"sharpness": 3}));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ControlErrorCode::Unsupported, Some("sharpness"))
        );
    }

    #[test]
    fn one_bad_field_refuses_the_whole_update() {
        let e = refused(json!({"bitrate": 1000000, "width": 7}));
        assert_eq!(e.field.as_deref(), Some("width"));
    }

    #[test]
    fn empty_update_and_type_mismatch_are_refused() {
        assert_eq!(refused(json!({})).field.as_deref(), Some("settings"));
        let mut c = caps();
        c.set(
            "quality",
            Capability::Bool {
                apply: ApplyMode::Live,
            },
        );
        let upd = CameraSettings::from_json(&json!({"quality": 5})).unwrap();
        let e = validate_update(&upd, &c).unwrap_err();
        assert_eq!(
            e.message,
            "quality: 5 does not fit this source, which takes true or false"
        );
    }

    #[test]
    fn types_and_apply_modes_are_listed_as_serde_writes_them() {
        let apply = ApplyMode::Live;
        let one_of_each = [
            Capability::Int {
                min: 0,
                max: 1,
                step: 1,
                apply,
            },
            Capability::Float {
                min: 0.0,
                max: 1.0,
                apply,
            },
            Capability::Bool { apply },
            Capability::Enum {
                choices: vec![],
                apply,
            },
            Capability::Text { max_len: 1, apply },
            Capability::Unsupported { reason: None },
        ];
        // Adding a variant breaks this match: add it to `one_of_each` and to TYPES.
        let type_of = |c: &Capability| match c {
            Capability::Int { .. }
            | Capability::Float { .. }
            | Capability::Bool { .. }
            | Capability::Enum { .. }
            | Capability::Text { .. }
            | Capability::Unsupported { .. } => serde_json::to_value(c).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        let types: Vec<String> = one_of_each.iter().map(type_of).collect();
        assert_eq!(types, Capability::TYPES);

        for m in ApplyMode::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
        }
        // A new variant breaks this match: give it its position and add it to ALL.
        let position = |m: ApplyMode| match m {
            ApplyMode::Live => 0,
            ApplyMode::Keyframe => 1,
            ApplyMode::Restart => 2,
        };
        let positions: Vec<usize> = ApplyMode::ALL.iter().map(|m| position(*m)).collect();
        assert_eq!(positions, [0, 1, 2]);
    }

    #[test]
    fn capabilities_json_shape_and_apply_mode() {
        let c = caps();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["settings"]["bitrate"],
            json!({"type":"int","min":100000,"max":8000000,"step":1,"apply":"live"})
        );
        assert_eq!(v["settings"]["camera_name"]["type"], "string");
        assert_eq!(
            v["settings"]["camera_index"],
            json!({"type":"unsupported","reason":"test pattern"})
        );
        let back: Capabilities = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        // step defaults to 1
        let cap: Capability =
            serde_json::from_value(json!({"type":"int","min":0,"max":9,"apply":"live"})).unwrap();
        assert!(matches!(cap, Capability::Int { step: 1, .. }));
        let upd = CameraSettings::from_json(&json!({"bitrate": 200000, "width": 640})).unwrap();
        assert_eq!(c.apply_mode_of(&upd), Some(ApplyMode::Keyframe));
    }

    #[test]
    fn paths_say_who_carries_out_a_control() {
        let mut c = caps();
        assert!(
            serde_json::to_value(&c).unwrap().get("paths").is_none(),
            "no paths: none written"
        );
        let range = Capability::Int {
            min: 0,
            max: 255,
            step: 1,
            apply: ApplyMode::Live,
        };
        c.set_on("brightness", range.clone(), ControlPath::Hardware);
        c.set_on("contrast", range, ControlPath::Software);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["paths"],
            json!({"brightness": "hardware", "contrast": "software"})
        );
        let back: Capabilities = serde_json::from_value(v).unwrap();
        assert_eq!(back.path("brightness"), Some(ControlPath::Hardware));
        assert_eq!(back.path("bitrate"), None);
        for (path, name) in [ControlPath::Hardware, ControlPath::Software]
            .iter()
            .zip(ControlPath::NAMES)
        {
            assert_eq!(serde_json::to_value(path).unwrap(), json!(name));
        }
        assert!(serde_json::from_value::<Capabilities>(
            json!({"settings": {}, "paths": {"brightness": "magic"}})
        )
        .is_err());
    }
}
