//! [`CameraSettings`]: every setting a viewer may change, each optional, so one type serves
//! for partial updates and for the current state (where an absent field is one the source
//! does not have).
//!
//! Settings are parsed field by field, by hand, so a bad value gets an error naming the
//! field ("fps: expected a whole number, got \"fast\"") rather than serde's position.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::{ControlError, ControlErrorCode};

/// One setting's value, for validation and display.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Int(v) => write!(f, "{v}"),
            SettingValue::Float(v) => write!(f, "{v}"),
            SettingValue::Bool(v) => write!(f, "{v}"),
            SettingValue::Text(v) => write!(f, "{v:?}"),
        }
    }
}

/// A Rust type a setting can have: how to read it from JSON, naming the field on error.
trait SettingType: Sized {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError>;
    fn to_value(&self) -> SettingValue;
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> ControlError {
    ControlError::field(
        ControlErrorCode::InvalidValue,
        name,
        format!("expected {expected}, got {got}"),
    )
}

impl SettingType for u32 {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| wrong_type(name, "a whole number 0..=4294967295", value))
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Int(i64::from(*self))
    }
}

impl SettingType for i32 {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        value
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| wrong_type(name, "a whole number", value))
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Int(i64::from(*self))
    }
}

/// Only `bitrate` is a u64: it also takes the seed's strings (`"800k"`, `"2M"`).
impl SettingType for u64 {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        match value {
            Value::String(s) => parse_bitrate(s)
                .map_err(|e| ControlError::field(ControlErrorCode::InvalidValue, name, e)),
            _ => value
                .as_u64()
                .filter(|v| i64::try_from(*v).is_ok())
                .ok_or_else(|| {
                    wrong_type(name, "bits per second (like 800000 or \"800k\")", value)
                }),
        }
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl SettingType for f64 {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        value
            .as_f64()
            .ok_or_else(|| wrong_type(name, "a number", value))
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Float(*self)
    }
}

impl SettingType for bool {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        value
            .as_bool()
            .ok_or_else(|| wrong_type(name, "true or false", value))
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Bool(*self)
    }
}

impl SettingType for String {
    fn parse(name: &str, value: &Value) -> Result<Self, ControlError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| wrong_type(name, "a string", value))
    }
    fn to_value(&self) -> SettingValue {
        SettingValue::Text(self.clone())
    }
}

/// Bits per second from `"1500000"`, `"800k"`, `"2M"`, `"2.5M"` (k = 1000).
pub fn parse_bitrate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let bad =
        || format!("`{text}` is not a bitrate (bits/s as a number, or like \"800k\", \"2M\")");
    let n: f64 = digits.trim().parse().map_err(|_| bad())?;
    let bits = n * scale;
    if !(0.0..=1e15).contains(&bits) {
        return Err(bad());
    }
    Ok(bits.round() as u64)
}

macro_rules! camera_settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty, )*) => {
        /// Camera settings, each optional (see the module doc). JSON field names are the Rust
        /// ones; the seed's `cameraName` is accepted for `camera_name`.
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct CameraSettings {
            $(
                $(#[doc = $doc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        impl CameraSettings {
            /// Every setting's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The settings present, with their values, in declaration order.
            pub fn entries(&self) -> Vec<(&'static str, SettingValue)> {
                let mut out = Vec::new();
                $(
                    if let Some(v) = &self.$name {
                        out.push((stringify!($name), SettingType::to_value(v)));
                    }
                )*
                out
            }

            /// Take every field present in `update`.
            pub fn merge(&mut self, update: &CameraSettings) {
                $(
                    if let Some(v) = &update.$name {
                        self.$name = Some(v.clone());
                    }
                )*
            }

            /// Names of the settings whose value differs between `self` and `other`.
            pub fn changed_from(&self, other: &CameraSettings) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(
                    if self.$name != other.$name {
                        out.push(stringify!($name));
                    }
                )*
                out
            }

            fn set(&mut self, name: &str, value: &Value) -> Result<(), ControlError> {
                let name = if name == "cameraName" { "camera_name" } else { name };
                match name {
                    $(
                        stringify!($name) => {
                            self.$name = Some(<$ty as SettingType>::parse(name, value)?);
                        }
                    )*
                    _ => {
                        return Err(ControlError::field(
                            ControlErrorCode::UnknownSetting,
                            name,
                            format!("no such setting; known: {}", Self::NAMES.join(", ")),
                        ))
                    }
                }
                Ok(())
            }
        }
    };
}

camera_settings! {
    /// Picture width in pixels.
    width: u32,
    /// Picture height in pixels.
    height: u32,
    /// Frames per second.
    fps: u32,
    /// Target bitrate in bits per second.
    bitrate: u64,
    contrast: i32,
    brightness: i32,
    saturation: i32,
    sharpness: i32,
    ai_enabled: bool,
    /// e.g. `object_detection`, `face_recognition`.
    ai_model: String,
    /// 0..=1.
    ai_confidence: f64,
    /// The name viewers see.
    camera_name: String,
    /// Which local camera (`/dev/videoN`).
    camera_index: u32,
    /// Codec, e.g. `h264`.
    encoding: String,
    /// JPEG quality of snapshots and the MJPEG stream, 1..=100 (the video follows
    /// `bitrate`).
    quality: u32,
    auto_exposure: bool,
    /// Exposure time in the camera's own unit (V4L2: 100 µs).
    exposure_time: i32,
}

impl CameraSettings {
    /// Parse a `settings` object, naming the field at fault.
    pub fn from_json(value: &Value) -> Result<Self, ControlError> {
        let Value::Object(map) = value else {
            return Err(ControlError::field(
                ControlErrorCode::BadMessage,
                "settings",
                format!("expected an object of setting: value, got {value}"),
            ));
        };
        Self::from_map(map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Self, ControlError> {
        let mut s = CameraSettings::default();
        for (name, value) in map {
            s.set(name, value)?;
        }
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

impl<'de> Deserialize<'de> for CameraSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(d)?;
        CameraSettings::from_map(&map).map_err(|e| D::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(v: Value) -> ControlError {
        CameraSettings::from_json(&v).unwrap_err()
    }

    #[test]
    fn parses_every_field_and_round_trips() {
        let v = json!({
            "width": 1280, "height": 720, "fps": 30, "bitrate": 2000000,
            "contrast": 10, "brightness": -5, "saturation": 0, "sharpness": 3,
            "ai_enabled": false, "ai_model": "object_detection", "ai_confidence": 0.5,
            "camera_name": "Porch", "camera_index": 0, "encoding": "h264", "quality": 80,
            "auto_exposure": true, "exposure_time": 150
        });
        let s = CameraSettings::from_json(&v).unwrap();
        assert_eq!(s.entries().len(), CameraSettings::NAMES.len());
        assert_eq!(s.brightness, Some(-5));
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let back: CameraSettings = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn absent_fields_stay_absent() {
        let s = CameraSettings::from_json(&json!({"fps": 15})).unwrap();
        assert_eq!(s.entries(), vec![("fps", SettingValue::Int(15))]);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"fps":15}"#);
        assert!(CameraSettings::from_json(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn seed_spellings_are_accepted() {
        let s =
            CameraSettings::from_json(&json!({"cameraName": "Gate", "bitrate": "800k"})).unwrap();
        assert_eq!(s.camera_name.as_deref(), Some("Gate"));
        assert_eq!(s.bitrate, Some(800_000));
        assert_eq!(parse_bitrate("2M"), Ok(2_000_000));
        assert_eq!(parse_bitrate("2.5m"), Ok(2_500_000));
        assert_eq!(parse_bitrate(" 1500000 "), Ok(1_500_000));
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = err(json!({"fps": "fast"}));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ControlErrorCode::InvalidValue, Some("fps"))
        );
        assert!(
            e.message.starts_with("fps: expected a whole number"),
            "{}",
            e.message
        );
        assert_eq!(err(json!({"width": -1})).field.as_deref(), Some("width"));
        assert_eq!(err(json!({"width": 1.5})).field.as_deref(), Some("width"));
        assert_eq!(
            err(json!({"width": 5_000_000_000u64})).field.as_deref(),
            Some("width")
        );
        assert_eq!(
            err(json!({"brightness": 3_000_000_000u64}))
                .field
                .as_deref(),
            Some("brightness")
        );
        assert_eq!(
            err(json!({"auto_exposure": 1})).field.as_deref(),
            Some("auto_exposure")
        );
        assert_eq!(
            err(json!({"camera_name": null})).field.as_deref(),
            Some("camera_name")
        );
        let e = err(json!({"bitrate": "lots"}));
        assert!(
            e.message.contains("`lots` is not a bitrate"),
            "{}",
            e.message
        );
        for bad in ["", "k", "-5M", "1e400", "NaNk", "infM"] {
            assert!(parse_bitrate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_setting_is_refused_with_the_known_ones() {
        let e = err(json!({"zoom": 2}));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ControlErrorCode::UnknownSetting, Some("zoom"))
        );
        assert!(e.message.contains("width, height, fps"), "{}", e.message);
        assert_eq!(err(json!([1, 2])).code, ControlErrorCode::BadMessage);
        assert!(serde_json::from_str::<CameraSettings>(r#"{"zoom":1}"#).is_err());
    }

    #[test]
    fn merge_and_changed_from() {
        let mut cur = CameraSettings::from_json(&json!({"fps": 30, "bitrate": 2000000})).unwrap();
        let before = cur.clone();
        let upd = CameraSettings::from_json(&json!({"fps": 15, "width": 640})).unwrap();
        cur.merge(&upd);
        assert_eq!(
            (cur.fps, cur.width, cur.bitrate),
            (Some(15), Some(640), Some(2_000_000))
        );
        assert_eq!(cur.changed_from(&before), vec!["width", "fps"]);
        assert!(cur.changed_from(&cur.clone()).is_empty());
    }
}
