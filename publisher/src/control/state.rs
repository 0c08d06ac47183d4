//! The publisher's control state: the current settings (every one the source has), its
//! capabilities, presets, stream status and a version that grows with every change.
//! Changes are all-or-nothing and published to the encode thread as a
//! [`PipelineSettings`] snapshot.

use serde_json::{Map, Value};
use sightline_protocol::control::{
    unix_millis, validate_update, CameraSettings, Capabilities, ControlError, ControlErrorCode,
    ControlMessage, ScheduleEntry, StateUpdate, StreamStatus,
};
use tracing::warn;

use crate::image::jpeg_out::DEFAULT_QUALITY;
use crate::pipeline::motion::MODEL as MOTION_MODEL;

use super::pipeline_settings::{
    PipelineSettings, PipelineSettingsHandle, DEFAULT_MOTION_CONFIDENCE,
};
use super::plan::ApplyPlan;
use super::presets::{self, PresetBook};
use super::resolution::format_sizes;
use super::schedule::ScheduleClock;
use super::source_profile::{SourceProfile, ENCODING};
use super::store::{SavedState, SettingsStore};
use crate::source::camera_controls::{CameraControlLink, DeviceRange, HardwareSetting};

/// What the publisher was started with (command line or embedding code).
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The name viewers see until one of them renames the camera.
    pub camera_name: String,
    /// Frame rate and bitrate to start with (before any saved settings).
    pub fps: u32,
    pub bitrate: u32,
    /// The source as given to `--source`, shown in the status.
    pub source_label: Option<String>,
    /// The names of the sources viewers may switch among, the running one first (empty:
    /// there is only the one).
    pub source_names: Vec<String>,
    /// Where settings persist; `None`: they last as long as the process.
    pub store: Option<SettingsStore>,
    /// Whether the stream starts running (false for on-demand publishers).
    pub streaming: bool,
    /// Where the values for a camera's own controls go (the capture thread writes them).
    pub camera_controls: CameraControlLink,
}

/// What [`ControlState::source_changed`] tells viewers.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceChange {
    pub capabilities: Capabilities,
    pub state: StateUpdate,
    /// Settings that the new source cannot keep, with what they became.
    pub warnings: Vec<String>,
}

/// The single owner of the settings. Commands go through it one at a time, in arrival order,
/// so two controllers racing end in one state: the last applied, which every viewer gets.
#[derive(Debug)]
pub struct ControlState {
    pub(super) profile: SourceProfile,
    pub(super) caps: Capabilities,
    pub(super) settings: CameraSettings,
    pub(super) presets: PresetBook,
    pub(super) active_preset: Option<String>,
    pub(super) version: u64,
    pub(super) streaming: bool,
    pub(super) schedule: Vec<ScheduleEntry>,
    pub(super) schedule_clock: ScheduleClock,
    source_label: Option<String>,
    pub(super) source_names: Vec<String>,
    pub(super) source_name: Option<String>,
    store: Option<SettingsStore>,
    start_fps: u32,
    start_bitrate: u32,
    pipeline: PipelineSettingsHandle,
    camera_controls: CameraControlLink,
    /// Every setting's last value, also those the current source cannot have, so a source
    /// that can (a camera offering exposure once it opened, a camera chosen again) gets
    /// them back.
    remembered: CameraSettings,
}

impl ControlState {
    /// The state for `profile`, with the saved settings (if a store is given) on top of the
    /// defaults. Returns what could not be restored, as warnings to log.
    pub fn new(profile: SourceProfile, config: ControlConfig) -> (Self, Vec<String>) {
        let caps = profile.capabilities();
        let (saved, mut warnings) = match &config.store {
            Some(store) => store.load(),
            None => (SavedState::default(), Vec::new()),
        };
        let base = defaults(&profile, &config.camera_name, config.fps, config.bitrate);
        // The command line names the device; a saved index does not override it.
        let wanted = CameraSettings {
            camera_index: None,
            ..saved.settings.clone()
        };
        let (settings, w) = reconcile(&profile, &caps, &base, &wanted, "saved settings");
        warnings.extend(w);
        // Versions keep growing across restarts even without a state dir: start at the
        // wall clock in milliseconds, or past the saved one if the clock went back.
        let version = saved.version.saturating_add(1).max(unix_millis());
        let pipeline =
            PipelineSettingsHandle::new(snapshot(&settings, &profile, config.bitrate, version));
        config
            .camera_controls
            .want(profile.hardware.device_values(&settings));
        let mut remembered = saved.settings.clone();
        remembered.merge(&settings);
        let presets = PresetBook::new(saved.presets);
        let preset_names = presets.names();
        let (schedule, unknown): (Vec<_>, Vec<_>) = saved
            .schedule
            .into_iter()
            .partition(|e| preset_names.contains(&e.preset));
        for e in unknown {
            warnings.push(format!(
                "schedule entry at {}: no preset `{}`; dropped",
                e.at, e.preset
            ));
        }
        let mut state = ControlState {
            profile,
            caps,
            settings,
            presets,
            active_preset: saved.active_preset,
            version,
            streaming: config.streaming,
            schedule,
            schedule_clock: ScheduleClock::default(),
            source_label: config.source_label,
            source_name: config.source_names.first().cloned(),
            source_names: config.source_names,
            store: config.store,
            start_fps: config.fps,
            start_bitrate: config.bitrate,
            pipeline,
            camera_controls: config.camera_controls,
            remembered,
        };
        state.refresh_active_preset();
        (state, warnings)
    }

    pub fn settings(&self) -> &CameraSettings {
        &self.settings
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn profile(&self) -> &SourceProfile {
        &self.profile
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// The handle the encode thread reads settings from (`.reader()` once per thread).
    pub fn pipeline(&self) -> PipelineSettingsHandle {
        self.pipeline.clone()
    }

    pub fn status(&self) -> StreamStatus {
        StreamStatus {
            streaming: self.streaming,
            preset: self.active_preset.clone(),
            presets: self.presets.names(),
            source: self.source_label.clone(),
            sources: self.source_names.clone(),
            source_name: self.source_name.clone(),
            schedule: self.schedule.clone(),
        }
    }

    /// The full state as a broadcast, caused `by` a viewer (or the publisher: `None`).
    pub fn state_update(&self, by: Option<String>, changed: &[&str]) -> StateUpdate {
        StateUpdate {
            version: self.version,
            settings: self.settings.clone(),
            status: self.status(),
            by,
            changed: changed.iter().map(|s| s.to_string()).collect(),
            timestamp: unix_millis(),
        }
    }

    /// What to send when the publisher's control channel opens: capabilities, then state.
    pub fn announce(&self) -> Vec<ControlMessage> {
        vec![
            ControlMessage::Capabilities(self.caps.clone()),
            ControlMessage::State(self.state_update(None, &[])),
        ]
    }

    /// Record that the stream started or stopped; the broadcast, if that is news.
    pub fn set_streaming(&mut self, streaming: bool, by: Option<String>) -> Option<StateUpdate> {
        if self.streaming == streaming {
            return None;
        }
        self.streaming = streaming;
        self.version += 1;
        Some(self.state_update(by, &[]))
    }

    /// Validate `update` against the capabilities and apply it whole, or refuse it whole
    /// (the first bad field named, with what is allowed). An empty plan: nothing differed.
    /// Does not save; [`Self::persist`] does.
    pub fn apply_update(&mut self, update: &CameraSettings) -> Result<ApplyPlan, ControlError> {
        validate_update(update, &self.caps)?;
        let mut next = self.settings.clone();
        next.merge(update);
        self.check_size(&next, update)?;
        let plan = ApplyPlan::between(&self.settings, &next, &self.caps);
        if !plan.is_empty() {
            self.settings = next;
            self.commit();
        }
        Ok(plan)
    }

    /// Width and height are each one of the values offered; together they must be one of
    /// the offered sizes.
    fn check_size(
        &self,
        next: &CameraSettings,
        update: &CameraSettings,
    ) -> Result<(), ControlError> {
        if update.width.is_none() && update.height.is_none() {
            return Ok(());
        }
        let sizes = self.profile.sizes();
        match (next.width, next.height) {
            (Some(w), Some(h)) if sizes.contains(&(w, h)) => Ok(()),
            (w, h) => Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                if update.width.is_some() {
                    "width"
                } else {
                    "height"
                },
                format!(
                    "{}x{} is not an offered picture size; offered: {} (send width and height together)",
                    w.unwrap_or(0),
                    h.unwrap_or(0),
                    format_sizes(&sizes)
                ),
            )),
        }
    }

    /// A change happened: new version, the encode thread's snapshot, the preset still named
    /// only while the settings match it.
    pub(super) fn commit(&mut self) {
        self.version += 1;
        self.refresh_active_preset();
        self.remembered.merge(&self.settings);
        self.pipeline.publish(snapshot(
            &self.settings,
            &self.profile,
            self.start_bitrate,
            self.version,
        ));
        self.camera_controls
            .want(self.profile.hardware.device_values(&self.settings));
    }

    fn refresh_active_preset(&mut self) {
        if let Some(name) = &self.active_preset {
            let still = self
                .presets
                .resolve(name, &self.profile)
                .is_ok_and(|p| presets::matches(&self.settings, &p));
            if !still {
                self.active_preset = None;
            }
        }
    }

    /// Save settings and presets, if there is a store. The error is for the reply and logs;
    /// the change stands either way.
    pub fn persist(&self) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let saved = SavedState {
            version: self.version,
            settings: self.settings.clone(),
            presets: self.presets.saved().clone(),
            active_preset: self.active_preset.clone(),
            schedule: self.schedule.clone(),
        };
        store.save(&saved).map_err(|e| {
            warn!("{e:#}");
            format!("{e:#}")
        })
    }

    /// The source was reopened or learnt more about itself (a JPEG source's real size, RTSP
    /// passthrough or re-encoding, another camera). Capabilities are rebuilt and settings the
    /// new source cannot keep fall back to its defaults. `None`: nothing changed.
    pub fn source_changed(&mut self, profile: SourceProfile) -> Option<SourceChange> {
        if profile == self.profile {
            return None;
        }
        let caps = profile.capabilities();
        let name = self.settings.camera_name.clone().unwrap_or_default();
        let base = defaults(&profile, &name, self.start_fps, self.start_bitrate);
        let mut wanted = CameraSettings {
            camera_index: None,
            ..self.settings.clone()
        };
        // A picture size nobody chose follows the source.
        if (self.settings.width, self.settings.height)
            == (Some(self.profile.native.0), Some(self.profile.native.1))
        {
            (wanted.width, wanted.height) = (None, None);
        }
        fill_in(&mut wanted, &self.remembered, &caps);
        let (settings, warnings) = reconcile(&profile, &caps, &base, &wanted, "current settings");
        let changed = settings.changed_from(&self.settings);
        self.profile = profile;
        self.caps = caps;
        self.settings = settings;
        self.commit();
        Some(SourceChange {
            capabilities: self.caps.clone(),
            state: self.state_update(None, &changed),
            warnings,
        })
    }

    /// Another of the configured sources runs now (`select_source`): `label` as shown in
    /// the status, `profile` what it can do. Always news for viewers, even when the new
    /// source can do the same as the old.
    pub fn source_selected(
        &mut self,
        name: &str,
        label: String,
        profile: SourceProfile,
    ) -> SourceChange {
        self.source_name = Some(name.to_owned());
        self.source_label = Some(label);
        self.source_changed(profile).unwrap_or_else(|| {
            self.version += 1;
            SourceChange {
                capabilities: self.caps.clone(),
                state: self.state_update(None, &[]),
                warnings: Vec::new(),
            }
        })
    }

    /// Replace the schedule (`set_schedule`); every entry must name a preset this camera
    /// has. The caller persists and broadcasts.
    pub fn set_schedule(&mut self, mut schedule: Vec<ScheduleEntry>) -> Result<(), ControlError> {
        schedule.sort();
        let names = self.presets.names();
        if let Some(e) = schedule.iter().find(|e| !names.contains(&e.preset)) {
            return Err(ControlError::field(
                ControlErrorCode::UnknownPreset,
                "schedule",
                format!(
                    "entry at {}: no preset `{}`; presets: {}",
                    e.at,
                    e.preset,
                    names.join(", ")
                ),
            ));
        }
        self.schedule = schedule;
        self.schedule_clock.restart();
        self.version += 1;
        Ok(())
    }

    pub fn schedule(&self) -> &[ScheduleEntry] {
        &self.schedule
    }

    /// Forget saved preset `name` (`delete_preset`). `Ok(false)`: there was none by that
    /// name. A preset the schedule uses stays until the schedule stops naming it. The caller
    /// persists and broadcasts the change.
    pub fn delete_preset(&mut self, name: &str) -> Result<bool, ControlError> {
        if let Some(e) = self.schedule.iter().find(|e| e.preset == name) {
            return Err(ControlError::field(
                ControlErrorCode::InvalidValue,
                "name",
                format!(
                    "preset `{name}` is in the schedule at {}; change the schedule first",
                    e.at
                ),
            ));
        }
        if !self.presets.delete(name)? {
            return Ok(false);
        }
        if self.active_preset.as_deref() == Some(name) {
            self.active_preset = None;
        }
        self.version += 1;
        Ok(true)
    }

    /// Rename saved preset `name` to `new_name` (`rename_preset`); the active preset's name
    /// follows. `Ok(false)`: it already had that name. The caller persists and broadcasts.
    pub fn rename_preset(&mut self, name: &str, new_name: &str) -> Result<bool, ControlError> {
        self.presets.rename(name, new_name)?;
        if name == new_name {
            return Ok(false);
        }
        if self.active_preset.as_deref() == Some(name) {
            self.active_preset = Some(new_name.to_owned());
        }
        for e in self.schedule.iter_mut().filter(|e| e.preset == name) {
            e.preset = new_name.to_owned();
        }
        self.version += 1;
        Ok(true)
    }
}

/// The settings a fresh start has on this source. Absent: the source cannot have it.
fn defaults(profile: &SourceProfile, name: &str, fps: u32, bitrate: u32) -> CameraSettings {
    let mut s = CameraSettings {
        // Size and frame rate describe the stream even when they cannot be changed.
        width: Some(profile.native.0),
        height: Some(profile.native.1),
        fps: Some(fps.clamp(1, profile.max_fps)),
        camera_name: Some(name.to_owned()),
        encoding: Some(ENCODING.to_owned()),
        camera_index: profile.camera_index,
        quality: Some(u32::from(DEFAULT_QUALITY)),
        ..CameraSettings::default()
    };
    if let Some(c) = profile.hardware.get(HardwareSetting::AutoExposure) {
        if let DeviceRange::Switch { default_on, .. } = c.range {
            s.auto_exposure = Some(default_on);
        }
    }
    if let Some(c) = profile.hardware.get(HardwareSetting::ExposureTime) {
        if let DeviceRange::Int { default, .. } = c.range {
            s.exposure_time = i32::try_from(default).ok();
        }
    }
    if !profile.passthrough {
        s.bitrate = Some(u64::from(bitrate));
        (s.brightness, s.contrast, s.saturation, s.sharpness) =
            (Some(0), Some(0), Some(0), Some(0));
        s.ai_enabled = Some(false);
        s.ai_model = Some(MOTION_MODEL.to_owned());
        s.ai_confidence = Some(DEFAULT_MOTION_CONFIDENCE);
    }
    s
}

/// What the encode thread gets for `settings` on this source: everything but the picture
/// controls the camera carries out itself.
fn snapshot(
    settings: &CameraSettings,
    profile: &SourceProfile,
    bitrate: u32,
    version: u64,
) -> PipelineSettings {
    PipelineSettings::from_settings(settings, profile.native, bitrate, version)
        .leaving_to_camera(&profile.hardware)
}

/// Into `wanted`, the `remembered` values of settings it lacks and `caps` supports (not the
/// picture size or camera index: those follow the source).
fn fill_in(wanted: &mut CameraSettings, remembered: &CameraSettings, caps: &Capabilities) {
    let (Ok(Value::Object(have)), Ok(Value::Object(old))) = (
        serde_json::to_value(&*wanted),
        serde_json::to_value(remembered),
    ) else {
        return;
    };
    for (name, value) in old {
        let supported = caps.get(&name).is_some_and(|c| c.apply_mode().is_some());
        if have.contains_key(&name)
            || !supported
            || matches!(name.as_str(), "width" | "height" | "camera_index")
        {
            continue;
        }
        if let Ok(one) = CameraSettings::from_json(&Value::Object(Map::from_iter([(name, value)])))
        {
            wanted.merge(&one);
        }
    }
}

/// `base` with every setting of `wanted` this source accepts; the others are reported.
fn reconcile(
    profile: &SourceProfile,
    caps: &Capabilities,
    base: &CameraSettings,
    wanted: &CameraSettings,
    what: &str,
) -> (CameraSettings, Vec<String>) {
    let mut out = base.clone();
    let mut warnings = Vec::new();
    if wanted.width.is_some() || wanted.height.is_some() {
        let size = (
            wanted.width.or(base.width).unwrap_or(0),
            wanted.height.or(base.height).unwrap_or(0),
        );
        let base_size = (base.width.unwrap_or(0), base.height.unwrap_or(0));
        if size != base_size {
            if profile.sizes().contains(&size) {
                (out.width, out.height) = (Some(size.0), Some(size.1));
            } else {
                warnings.push(format!(
                    "{what}: picture size {}x{} is not offered by this source ({}); using {}x{}",
                    size.0,
                    size.1,
                    format_sizes(&profile.sizes()),
                    base_size.0,
                    base_size.1
                ));
            }
        }
    }
    let Ok(Value::Object(all)) = serde_json::to_value(wanted) else {
        return (out, warnings);
    };
    for (name, value) in all {
        if matches!(name.as_str(), "width" | "height" | "camera_index") {
            continue;
        }
        let Ok(single) =
            CameraSettings::from_json(&Value::Object(Map::from_iter([(name.clone(), value)])))
        else {
            continue;
        };
        let mut merged = out.clone();
        merged.merge(&single);
        if merged == out {
            continue; // the same as the default: nothing to check
        }
        match validate_update(&single, caps) {
            Ok(()) => out = merged,
            Err(e) => warnings.push(format!("{what}: {}; not restored", e.message)),
        }
    }
    (out, warnings)
}
