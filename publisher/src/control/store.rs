//! Settings that survive a publisher restart: one JSON file per camera,
//! `<state dir>/<camera id>.json`, written atomically (temporary file, fsync, rename), so a
//! crash mid-write leaves the old file, never half a new one.
//!
//! ```json
//! {"format":1,"version":12,"settings":{"width":640,"height":360,"fps":15},
//!  "presets":{"night":{"brightness":30}},"active_preset":"night",
//!  "schedule":[{"at":"20:00","preset":"night"}]}
//! ```
//!
//! Reading is forgiving: the file is outside input (edited by hand, written by an older
//! version, truncated by a full disk). Whatever cannot be used is reported as a warning and
//! left out; a file that cannot be read at all gives the defaults. Never a crash.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};
use sightline_protocol::control::{
    parse_schedule, validate_preset_name, CameraSettings, ScheduleEntry,
};

use super::presets::{is_built_in, MAX_USER_PRESETS};

/// The file layout version this code writes and reads.
pub const FILE_FORMAT: u64 = 1;

/// A settings file larger than this is not read (it cannot be one of ours).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedState {
    /// The control state's version when saved, so versions keep growing across restarts.
    pub version: u64,
    pub settings: CameraSettings,
    pub presets: BTreeMap<String, CameraSettings>,
    pub active_preset: Option<String>,
    /// Presets applied at times of day.
    pub schedule: Vec<ScheduleEntry>,
}

impl SavedState {
    pub fn to_json(&self) -> String {
        let presets: Map<String, Value> = self
            .presets
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::to_value(v).expect("settings serialize"),
                )
            })
            .collect();
        let mut v = json!({
            "format": FILE_FORMAT,
            "version": self.version,
            "settings": serde_json::to_value(&self.settings).expect("settings serialize"),
            "presets": presets,
        });
        if let Some(p) = &self.active_preset {
            v["active_preset"] = json!(p);
        }
        if !self.schedule.is_empty() {
            v["schedule"] = json!(self.schedule);
        }
        serde_json::to_string_pretty(&v).expect("json serializes")
    }

    /// Read a settings file's text; `source` names it in the warnings.
    pub fn parse(text: &str, source: &str) -> (SavedState, Vec<String>) {
        let mut warnings = Vec::new();
        let mut state = SavedState::default();
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                warnings.push(format!(
                    "{source}: not valid JSON ({e}); using the defaults"
                ));
                return (state, warnings);
            }
        };
        let Value::Object(map) = value else {
            warnings.push(format!(
                "{source}: expected a JSON object; using the defaults"
            ));
            return (state, warnings);
        };
        match map.get("format").and_then(Value::as_u64) {
            Some(FILE_FORMAT) => {}
            other => {
                warnings.push(format!(
                    "{source}: file format {} is not {FILE_FORMAT}; using the defaults",
                    other.map_or("missing".to_owned(), |f| f.to_string())
                ));
                return (state, warnings);
            }
        }
        match map.get("version") {
            None => {}
            Some(v) => match v.as_u64() {
                Some(n) => state.version = n,
                None => warnings.push(format!(
                    "{source}: `version` {v} is not a whole number; starting at 0"
                )),
            },
        }
        if let Some(v) = map.get("settings") {
            state.settings = settings_leniently(v, &format!("{source}: settings"), &mut warnings);
        }
        match map.get("presets") {
            None => {}
            Some(Value::Object(presets)) => {
                for (name, v) in presets {
                    let what = format!("{source}: preset `{name}`");
                    if let Err(e) = validate_preset_name(name) {
                        warnings.push(format!("{what} ignored: {}", e.message));
                        continue;
                    }
                    if is_built_in(name) {
                        warnings.push(format!("{what} ignored: the name is a built-in preset's"));
                        continue;
                    }
                    if state.presets.len() >= MAX_USER_PRESETS {
                        warnings.push(format!(
                            "{what} ignored: more than {MAX_USER_PRESETS} presets"
                        ));
                        continue;
                    }
                    let s = settings_leniently(v, &what, &mut warnings);
                    if s.is_empty() {
                        warnings.push(format!("{what} ignored: nothing usable in it"));
                    } else {
                        state.presets.insert(name.clone(), s);
                    }
                }
            }
            Some(other) => warnings.push(format!(
                "{source}: `presets` is not an object ({other}); ignored"
            )),
        }
        match map.get("active_preset") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) => state.active_preset = Some(p.clone()),
            Some(other) => warnings.push(format!(
                "{source}: `active_preset` {other} is not a name; ignored"
            )),
        }
        if let Some(v) = map.get("schedule") {
            match parse_schedule(v) {
                Ok(schedule) => state.schedule = schedule,
                Err(e) => warnings.push(format!("{source}: {}; schedule ignored", e.message)),
            }
        }
        (state, warnings)
    }
}

/// Each setting on its own, so one bad value loses only itself.
fn settings_leniently(v: &Value, what: &str, warnings: &mut Vec<String>) -> CameraSettings {
    let mut out = CameraSettings::default();
    let Value::Object(map) = v else {
        warnings.push(format!("{what}: expected an object, got {v}; ignored"));
        return out;
    };
    for (k, v) in map {
        let one = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
        match CameraSettings::from_json(&one) {
            Ok(s) => out.merge(&s),
            Err(e) => warnings.push(format!("{what}: {} (ignored)", e.message)),
        }
    }
    out
}

/// Where one camera's settings live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    /// `dir/<camera id>.json`. Characters a file name should not hold become `_`.
    pub fn for_camera(dir: &Path, camera_id: &str) -> Self {
        let mut name: String = camera_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.is_empty() || name.starts_with('.') {
            name.insert(0, '_');
        }
        SettingsStore {
            path: dir.join(format!("{name}.json")),
        }
    }

    pub fn at(path: impl Into<PathBuf>) -> Self {
        SettingsStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or the defaults with a warning when the file is unusable. A missing
    /// file is a first start: defaults, no warning.
    pub fn load(&self) -> (SavedState, Vec<String>) {
        let name = self.path.display().to_string();
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (SavedState::default(), Vec::new());
            }
            Err(e) => {
                return (
                    SavedState::default(),
                    vec![format!("{name}: cannot read ({e}); using the defaults")],
                );
            }
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return (
                    SavedState::default(),
                    vec![format!(
                        "{name}: {} bytes is too large for a settings file; using the defaults",
                        m.len()
                    )],
                );
            }
            Ok(_) => {}
        }
        match std::fs::read(&self.path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => SavedState::parse(&text, &name),
                Err(_) => (
                    SavedState::default(),
                    vec![format!("{name}: not UTF-8 text; using the defaults")],
                ),
            },
            Err(e) => (
                SavedState::default(),
                vec![format!("{name}: cannot read ({e}); using the defaults")],
            ),
        }
    }

    /// Write `state`, replacing the file atomically (creating the directory if needed).
    pub fn save(&self, state: &SavedState) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file_name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("settings.json");
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(state.to_json().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself reaches the disk with the directory's fsync (best effort:
            // not every filesystem allows opening a directory).
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("saving settings to {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sightline-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn sample() -> SavedState {
        let mut presets = BTreeMap::new();
        presets.insert(
            "night".to_owned(),
            CameraSettings::from_json(&json!({"brightness": 30, "fps": 10})).unwrap(),
        );
        SavedState {
            version: 12,
            settings: CameraSettings::from_json(
                &json!({"width": 640, "height": 360, "bitrate": 300000, "camera_name": "Gate"}),
            )
            .unwrap(),
            presets,
            active_preset: Some("night".into()),
            schedule: vec![ScheduleEntry {
                at: "20:00".into(),
                preset: "night".into(),
            }],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = temp_dir("round");
        let store = SettingsStore::for_camera(&dir, "porch-1");
        assert_eq!(store.path(), dir.join("porch-1.json"));
        // First start: no file, no warning.
        assert_eq!(store.load(), (SavedState::default(), vec![]));
        store.save(&sample()).unwrap();
        assert_eq!(store.load(), (sample(), vec![]));
        // Overwriting leaves no temporary files behind.
        let mut s = sample();
        s.version = 13;
        s.active_preset = None;
        store.save(&s).unwrap();
        assert_eq!(store.load().0, s);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("porch-1.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn camera_ids_become_safe_file_names() {
        let d = Path::new("/state");
        assert_eq!(
            SettingsStore::for_camera(d, "../etc/passwd").path(),
            Path::new("/state/_.._etc_passwd.json")
        );
        assert_eq!(
            SettingsStore::for_camera(d, "").path(),
            Path::new("/state/_.json")
        );
        assert_eq!(
            SettingsStore::for_camera(d, "cam.A_b-2").path(),
            Path::new("/state/cam.A_b-2.json")
        );
    }

    #[test]
    fn unusable_files_give_defaults_and_a_warning() {
        for (text, says) in [
            ("", "not valid JSON"),
            ("{\"format\":1,\"settings\":{\"fps\":", "not valid JSON"),
            ("[1,2]", "expected a JSON object"),
            ("{\"settings\":{}}", "file format missing"),
            ("{\"format\":2}", "file format 2"),
            ("\u{feff}garbage", "not valid JSON"),
        ] {
            let (state, warnings) = SavedState::parse(text, "cam.json");
            assert_eq!(state, SavedState::default(), "{text:?}");
            assert_eq!(warnings.len(), 1, "{text:?}: {warnings:?}");
            assert!(
                warnings[0].starts_with("cam.json: ") && warnings[0].contains(says),
                "{text:?}: {warnings:?}"
            );
        }
    }

    #[test]
    fn bad_parts_are_dropped_and_the_rest_kept() {
        let text = r#"{"format":1,"version":"x",
            "settings":{"fps":15,"bitrate":"lots","zoom":3,"brightness":-5},
            "presets":{"ok":{"fps":5},"hd":{"fps":1},"bad/name":{"fps":1},"empty":{"zoom":1},"notobj":7},
            "active_preset":5}"#;
        let (state, warnings) = SavedState::parse(text, "f");
        assert_eq!(state.version, 0);
        assert_eq!(
            state.settings,
            CameraSettings::from_json(&json!({"fps": 15, "brightness": -5})).unwrap()
        );
        assert_eq!(state.presets.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert_eq!(state.active_preset, None);
        let all = warnings.join("\n");
        for needle in [
            "`version` \"x\"",
            "settings: bitrate: `lots` is not a bitrate",
            "settings: zoom: no such setting",
            "preset `hd` ignored: the name is a built-in",
            "preset `bad/name` ignored",
            "preset `empty`: zoom: no such setting",
            "preset `empty` ignored: nothing usable",
            "preset `notobj`: expected an object",
            "`active_preset` 5",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(warnings.len(), 10, "{all}");
    }

    #[test]
    fn a_corrupt_or_huge_file_on_disk_is_survivable() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        let store = SettingsStore::for_camera(&dir, "cam");
        std::fs::write(store.path(), [0xff, 0xfe, 0x00, 0x7b]).unwrap();
        let (state, w) = store.load();
        assert_eq!(state, SavedState::default());
        assert!(w[0].contains("not UTF-8"), "{w:?}");
        std::fs::write(store.path(), vec![b' '; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(store.load().1[0].contains("too large"));
        // A directory where the file should be: a warning on load, an error on save.
        std::fs::remove_file(store.path()).unwrap();
        std::fs::create_dir(store.path()).unwrap();
        assert_eq!(store.load().0, SavedState::default());
        assert!(store.save(&sample()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
