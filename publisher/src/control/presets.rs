//! Named presets: three built in (`low_bandwidth`, `balanced`, `hd`), adapted to what the
//! source can do, plus ones viewers save. A preset is a partial settings update; applying
//! it goes through the same all-or-nothing path as any update.

use std::collections::BTreeMap;

use sightline_protocol::control::{
    validate_preset_name, CameraSettings, Capability, ControlError, ControlErrorCode,
    BUILT_IN_PRESETS,
};

use super::resolution::{format_sizes, nearest};
use super::source_profile::{SourceProfile, MAX_BITRATE, MIN_BITRATE};

/// Built-in presets: name, picture size, fps, bitrate.
pub const BUILT_IN: &[(&str, (u32, u32), u32, u64)] = &[
    ("low_bandwidth", (640, 360), 15, 300_000),
    ("balanced", (1280, 720), 30, 1_500_000),
    ("hd", (1920, 1080), 30, 4_000_000),
];

/// Most presets a camera keeps besides the built-in ones.
pub const MAX_USER_PRESETS: usize = 16;

pub fn is_built_in(name: &str) -> bool {
    BUILT_IN_PRESETS.contains(&name)
}

/// The part of `settings` a preset keeps: everything but the camera's identity (its name and
/// which device it is), which a preset must not carry from one camera to another.
pub fn preset_part(settings: &CameraSettings) -> CameraSettings {
    CameraSettings {
        camera_name: None,
        camera_index: None,
        ..settings.clone()
    }
}

/// Whether every setting `preset` names has that value in `current`.
pub fn matches(current: &CameraSettings, preset: &CameraSettings) -> bool {
    let mut merged = current.clone();
    merged.merge(preset);
    merged == *current
}

/// A built-in preset as this source can do it: the offered size nearest the preset's, fps
/// and bitrate within the source's ranges, and only what the source can change at all.
fn built_in(name: &str, profile: &SourceProfile) -> Option<Result<CameraSettings, ControlError>> {
    let &(_, size, fps, bitrate) = BUILT_IN.iter().find(|(n, ..)| *n == name)?;
    let caps = profile.capabilities();
    let supported =
        |field: &str| !matches!(caps.get(field), None | Some(Capability::Unsupported { .. }));
    let mut s = CameraSettings::default();
    if supported("width") && supported("height") {
        if let Some((w, h)) = nearest(&profile.sizes(), size) {
            (s.width, s.height) = (Some(w), Some(h));
        }
    }
    if supported("fps") {
        s.fps = Some(fps.min(profile.max_fps));
    }
    if supported("bitrate") {
        s.bitrate = Some(bitrate.clamp(u64::from(MIN_BITRATE), u64::from(MAX_BITRATE)));
    }
    Some(if s.is_empty() {
        Err(ControlError::field(
            ControlErrorCode::Unsupported,
            "name",
            format!(
                "preset `{name}` sets picture size, fps and bitrate, none of which this source \
                 can change"
            ),
        ))
    } else {
        Ok(s)
    })
}

/// The presets viewers saved (the built-in ones are computed, never stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresetBook {
    saved: BTreeMap<String, CameraSettings>,
}

impl PresetBook {
    pub fn new(saved: BTreeMap<String, CameraSettings>) -> Self {
        PresetBook { saved }
    }

    pub fn saved(&self) -> &BTreeMap<String, CameraSettings> {
        &self.saved
    }

    /// Every preset name, built-in ones first.
    pub fn names(&self) -> Vec<String> {
        BUILT_IN
            .iter()
            .map(|(n, ..)| n.to_string())
            .chain(self.saved.keys().cloned())
            .collect()
    }

    /// The settings update preset `name` stands for on this source.
    pub fn resolve(
        &self,
        name: &str,
        profile: &SourceProfile,
    ) -> Result<CameraSettings, ControlError> {
        if let Some(built) = built_in(name, profile) {
            return built;
        }
        self.saved
            .get(name)
            .cloned()
            .ok_or_else(|| self.unknown(name))
    }

    /// Save `settings` (its preset part) as `name`, replacing a saved preset of that name.
    pub fn save(&mut self, name: &str, settings: &CameraSettings) -> Result<(), ControlError> {
        validate_preset_name(name)?;
        if is_built_in(name) {
            return Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                "name",
                format!("`{name}` is a built-in preset; save under another name"),
            ));
        }
        if !self.saved.contains_key(name) && self.saved.len() >= MAX_USER_PRESETS {
            return Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                "name",
                format!(
                    "at most {MAX_USER_PRESETS} saved presets; replace one of {}",
                    self.saved.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let part = preset_part(settings);
        if part.is_empty() {
            return Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                "name",
                "the current settings hold nothing a preset keeps",
            ));
        }
        self.saved.insert(name.to_owned(), part);
        Ok(())
    }

    /// Forget saved preset `name`. Built-in ones cannot be deleted. `Ok(false)`: there was
    /// none by that name.
    pub fn delete(&mut self, name: &str) -> Result<bool, ControlError> {
        if is_built_in(name) {
            return Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                "name",
                format!("`{name}` is a built-in preset and cannot be deleted"),
            ));
        }
        Ok(self.saved.remove(name).is_some())
    }

    /// Give saved preset `name` the name `new_name`. Built-in names are refused on either
    /// side, as is a `new_name` another saved preset has; renaming to the same name is a
    /// no-op.
    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<(), ControlError> {
        validate_preset_name(new_name).map_err(|mut e| {
            e.field = Some("new_name".into());
            e
        })?;
        let refuse = |field: &str, message: String| {
            Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                field,
                message,
            ))
        };
        if is_built_in(name) {
            return refuse(
                "name",
                format!("`{name}` is a built-in preset and keeps its name"),
            );
        }
        if !self.saved.contains_key(name) {
            return Err(self.unknown(name));
        }
        if name == new_name {
            return Ok(());
        }
        if is_built_in(new_name) || self.saved.contains_key(new_name) {
            return refuse(
                "new_name",
                format!("there is a preset `{new_name}` already; delete it first"),
            );
        }
        let settings = self.saved.remove(name).expect("checked above");
        self.saved.insert(new_name.to_owned(), settings);
        Ok(())
    }

    fn unknown(&self, name: &str) -> ControlError {
        ControlError::field(
            ControlErrorCode::UnknownPreset,
            "name",
            format!("no preset `{name}`; presets: {}", self.names().join(", ")),
        )
    }
}

/// For messages: "640x360 at 15 fps, 300 kbit/s".
pub fn describe(s: &CameraSettings) -> String {
    let mut parts = Vec::new();
    if let (Some(w), Some(h)) = (s.width, s.height) {
        parts.push(format_sizes(&[(w, h)]));
    }
    if let Some(f) = s.fps {
        parts.push(format!("{f} fps"));
    }
    if let Some(b) = s.bitrate {
        parts.push(format!("{} kbit/s", b / 1000));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::source::SourceUrl;

    fn profile(native: (u32, u32), fps: u32) -> SourceProfile {
        SourceProfile::for_source(&SourceUrl::TestPattern, native, fps)
    }

    fn settings(v: serde_json::Value) -> CameraSettings {
        CameraSettings::from_json(&v).unwrap()
    }

    #[test]
    fn built_ins_on_a_1080p_source_are_as_named() {
        let book = PresetBook::default();
        let p = profile((1920, 1080), 30);
        assert_eq!(
            book.resolve("low_bandwidth", &p).unwrap(),
            settings(json!({"width": 640, "height": 360, "fps": 15, "bitrate": 300000}))
        );
        assert_eq!(
            book.resolve("balanced", &p).unwrap(),
            settings(json!({"width": 1280, "height": 720, "fps": 30, "bitrate": 1500000}))
        );
        assert_eq!(
            book.resolve("hd", &p).unwrap(),
            settings(json!({"width": 1920, "height": 1080, "fps": 30, "bitrate": 4000000}))
        );
    }

    #[test]
    fn built_ins_adapt_to_a_smaller_slower_source() {
        let book = PresetBook::default();
        let p = profile((640, 480), 10);
        let hd = book.resolve("hd", &p).unwrap();
        assert_eq!(
            (hd.width, hd.height, hd.fps),
            (Some(640), Some(480), Some(10))
        );
        let low = book.resolve("low_bandwidth", &p).unwrap();
        assert_eq!(
            (low.width, low.height, low.fps),
            (Some(640), Some(480), Some(10))
        );
        assert_eq!(describe(&low), "640x480, 10 fps, 300 kbit/s");
    }

    #[test]
    fn built_ins_on_rtsp_passthrough_are_refused() {
        let p = SourceProfile::for_source(
            &SourceUrl::Rtsp {
                url: "rtsp://c/s".into(),
            },
            (1920, 1080),
            25,
        );
        let e = PresetBook::default().resolve("hd", &p).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ControlErrorCode::Unsupported, Some("name"))
        );
    }

    #[test]
    fn saving_listing_resolving_and_deleting() {
        let mut book = PresetBook::default();
        let p = profile((1280, 720), 30);
        let current = settings(
            json!({"width": 640, "height": 360, "brightness": 10, "camera_name": "Porch", "camera_index": 0}),
        );
        book.save("night", &current).unwrap();
        assert_eq!(
            book.names(),
            vec!["low_bandwidth", "balanced", "hd", "night"]
        );
        let night = book.resolve("night", &p).unwrap();
        assert_eq!(
            night,
            settings(json!({"width": 640, "height": 360, "brightness": 10}))
        );
        assert!(matches(&current, &night));
        assert!(!matches(
            &settings(json!({"width": 640, "height": 360, "brightness": 11})),
            &night
        ));
        // Replacing keeps one entry.
        book.save("night", &settings(json!({"brightness": 20})))
            .unwrap();
        assert_eq!(book.saved().len(), 1);
        assert_eq!(book.delete("night"), Ok(true));
        assert_eq!(book.delete("night"), Ok(false));
        let e = book.resolve("night", &p).unwrap_err();
        assert_eq!(e.code, ControlErrorCode::UnknownPreset);
        assert!(
            e.message.contains("low_bandwidth, balanced, hd"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_built_ins_are_the_protocols() {
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, ..)| *n).collect();
        assert_eq!(names, BUILT_IN_PRESETS);
    }

    #[test]
    fn renames_keep_the_settings_and_refuse_what_would_clash() {
        let mut book = PresetBook::default();
        let night = settings(json!({"brightness": 20}));
        book.save("night", &night).unwrap();
        book.save("day", &settings(json!({"fps": 10}))).unwrap();
        book.rename("night", "dusk").unwrap();
        assert_eq!(book.saved().get("dusk"), Some(&night));
        assert!(!book.saved().contains_key("night"));
        assert_eq!(
            book.rename("dusk", "dusk"),
            Ok(()),
            "same name: nothing to do"
        );
        let field = |r: Result<(), ControlError>| {
            let e = r.unwrap_err();
            (e.code, e.field)
        };
        let invalid = |f: &str| (ControlErrorCode::InvalidValue, Some(f.to_owned()));
        assert_eq!(
            field(book.rename("dusk", "day")),
            invalid("new_name"),
            "taken"
        );
        assert_eq!(
            field(book.rename("dusk", "hd")),
            invalid("new_name"),
            "built-in"
        );
        assert_eq!(
            field(book.rename("hd", "mine")),
            invalid("name"),
            "built-in"
        );
        assert_eq!(field(book.rename("dusk", "a/b")), invalid("new_name"));
        assert_eq!(
            field(book.rename("nope", "x")),
            (ControlErrorCode::UnknownPreset, Some("name".to_owned()))
        );
        assert_eq!(
            book.names(),
            ["low_bandwidth", "balanced", "hd", "day", "dusk"]
        );
    }

    #[test]
    fn bad_saves_are_refused() {
        let mut book = PresetBook::default();
        let s = settings(json!({"fps": 10}));
        for bad in ["hd", "", " x", "a/b", "../up", &"x".repeat(33)] {
            let e = book.save(bad, &s).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad:?}");
        }
        assert!(book.delete("balanced").is_err());
        assert!(book
            .save("name only", &settings(json!({"camera_name": "x"})))
            .is_err());
        for i in 0..MAX_USER_PRESETS {
            book.save(&format!("p{i}"), &s).unwrap();
        }
        let e = book.save("one more", &s).unwrap_err();
        assert!(e.message.contains("at most 16"), "{}", e.message);
        // Replacing an existing one is still fine when full.
        book.save("p3", &s).unwrap();
    }
}
