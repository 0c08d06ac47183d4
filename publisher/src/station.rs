//! What outlives a signaling session: the camera's settings ([`ControlState`], persisted),
//! the capture ([`Capture`]: running or not) and the decision when to run it ([`Demand`]).
//! Sessions come and go (reconnects); the settings, a running source and an idle timer
//! carry on across them.

use std::time::Instant;

use anyhow::Context;
use sightline_protocol::control::StateUpdate;
use sightline_protocol::wire::ClientMessage;
use tracing::{info, warn};

use crate::config::{NamedSource, PublisherConfig};
use crate::control::on_demand::{Demand, DemandAction};
use crate::control::schedule::local_minute_now;
use crate::control::{
    ControlConfig, ControlState, Intent, Outcome, SettingsStore, SourceChange, SourceProfile,
};
use crate::pipeline::capture::Capture;
use crate::pipeline::ApplyLog;
use crate::source::camera_controls::CameraControlLink;
use crate::source::SourceSpec;

/// A start, stop or restart the station carried out: the session makes its encode thread
/// and source reports follow the capture, then broadcasts `state` (when it changed).
#[derive(Debug)]
pub struct Switched {
    pub state: Option<StateUpdate>,
}

/// What a viewer's command leaves for the session, in this order: send `messages` on the
/// control channel, ask for a keyframe, tell viewers about `source_change`, follow
/// `switched` (an `Err` ends the session: the source could not be restarted).
#[derive(Debug)]
pub struct Handled {
    /// The reply to the sender, then any state broadcast (from [`Station::scheduled`]:
    /// only the broadcast).
    pub messages: Vec<String>,
    /// Make the next frame a keyframe.
    pub keyframe: bool,
    /// Another camera was chosen: new capabilities and the state they produced.
    pub source_change: Option<SourceChange>,
    pub switched: Option<anyhow::Result<Switched>>,
}

pub struct Station {
    pub control: ControlState,
    pub capture: Capture,
    pub demand: Demand,
    /// Waits for changes to reach an encoded frame (logged with their latency).
    pub applied: ApplyLog,
    /// The sources viewers may switch among (`select_source`).
    sources: Vec<NamedSource>,
    /// What a newly chosen source is assumed to give until its frames say otherwise.
    start_size: (u32, u32),
    start_fps: u32,
    /// What a camera offers of its own controls, and the last offer taken in.
    camera_controls: CameraControlLink,
    controls_seen: u64,
}

impl Station {
    /// The station for `config`, with its saved settings loaded (what could not be restored
    /// is logged). Nothing runs yet: see [`Self::start_up`].
    pub fn new(config: &PublisherConfig, spec: SourceSpec) -> Self {
        let profile =
            SourceProfile::for_source(&config.source, (config.width, config.height), config.fps);
        let store = config
            .state_dir
            .as_deref()
            .map(|dir| SettingsStore::for_camera(dir, &config.camera_id));
        if let Some(store) = &store {
            info!(file = %store.path().display(), "camera settings persist here");
        }
        let (control, warnings) = ControlState::new(
            profile,
            ControlConfig {
                camera_name: config.name.clone(),
                fps: config.fps,
                bitrate: config.bitrate,
                source_label: Some(config.source.to_string()),
                source_names: config.source_names(),
                store,
                streaming: false,
                camera_controls: spec.controls.clone(),
            },
        );
        for w in warnings {
            warn!("{w}");
        }
        let spec_controls = spec.controls.clone();
        Station {
            control,
            capture: Capture::new(spec),
            demand: Demand::new(config.on_demand, config.idle_stop),
            applied: ApplyLog::default(),
            sources: config.sources.clone(),
            start_size: (config.width, config.height),
            start_fps: config.fps,
            camera_controls: spec_controls,
            controls_seen: 0,
        }
    }

    /// At process start: an always-on publisher starts its source now.
    pub fn start_up(&mut self) {
        if let Some(action) = self.demand.start_up() {
            self.apply(action, None);
        }
    }

    /// Carry out a start or stop: the source runs or not, and the control state says so.
    /// Returns the state broadcast for viewers. `by`: the viewer who asked, if one did.
    pub fn apply(&mut self, action: DemandAction, by: Option<String>) -> Option<StateUpdate> {
        match action {
            DemandAction::Start => {
                info!(viewers = ?self.demand.viewers(), "starting capture and encoding");
                self.applied.expect("stream start", None);
                if let Err(e) = self.capture.start() {
                    // Only a failure to start a thread: the process is in trouble anyway.
                    warn!("cannot start the source: {e}");
                }
                self.control.set_streaming(true, by)
            }
            DemandAction::Stop => {
                info!(viewers = ?self.demand.viewers(), "stopping capture and encoding (idle)");
                self.applied.clear();
                self.capture.stop();
                self.control.set_streaming(false, by)
            }
        }
    }

    /// Between signaling sessions: the viewer count is unknown from now on.
    pub fn signaling_lost(&mut self) {
        if let Some(action) = self.demand.signaling_lost(Instant::now()) {
            self.apply(action, None);
        }
    }

    /// Let the idle timer run out (between signaling sessions, or in one).
    pub fn tick(&mut self) -> Option<Switched> {
        let action = self.demand.tick(Instant::now())?;
        Some(self.switch(action, None))
    }

    /// The server says the camera has `viewers` viewers.
    pub fn viewers_changed(&mut self, viewers: u32) -> Option<Switched> {
        let action = self.demand.viewers_changed(viewers, Instant::now())?;
        Some(self.switch(action, None))
    }

    fn switch(&mut self, action: DemandAction, by: Option<String>) -> Switched {
        Switched {
            state: self.apply(action, by),
        }
    }

    /// One command from a viewer, as it arrived on the control channel (parsed once, in
    /// [`ControlState::handle_text`]), carried out as far as the station goes: settings
    /// handed to the encode thread, the capture started, stopped or restarted. What is left
    /// is the session's I/O, in [`Handled`].
    pub fn command(&mut self, text: &str) -> Handled {
        let outcome = self.control.handle_text(text);
        self.carry_out(outcome)
    }

    /// The schedule's entry for this minute, if one is due, carried out like a viewer's
    /// `apply_preset` (its reply is only logged: nobody asked).
    pub fn scheduled(&mut self) -> Option<Handled> {
        let outcome = self.control.scheduled(local_minute_now())?;
        let r = &outcome.response;
        match r.success {
            true => info!("schedule: {}", r.message),
            false => warn!("schedule: {}", r.message),
        }
        let mut handled = self.carry_out(outcome);
        handled.messages.remove(0);
        Some(handled)
    }

    fn carry_out(&mut self, outcome: Outcome) -> Handled {
        let by = outcome.response.to.clone();
        if let Some(plan) = outcome.plan.as_ref().filter(|p| !p.is_empty()) {
            info!(
                by = by.as_deref().unwrap_or("?"),
                "settings changed: {}",
                plan.describe()
            );
            if self.capture.running() {
                let version = self.control.version();
                self.applied.expect(
                    format!("settings v{version} ({})", plan.changed.join(", ")),
                    Some(version),
                );
            }
        }
        let mut handled = Handled {
            messages: outcome.messages(),
            keyframe: false,
            source_change: None,
            switched: None,
        };
        let now = Instant::now();
        match outcome.intent {
            None => {}
            Some(Intent::RequestKeyframe) => handled.keyframe = true,
            Some(Intent::StartStream | Intent::StopStream) => {
                let start = outcome.intent == Some(Intent::StartStream);
                handled.switched = self
                    .demand
                    .command(start, now)
                    .map(|action| Ok(self.switch(action, by)));
            }
            Some(Intent::RestartCamera) => self.restart_camera(&mut handled),
            Some(Intent::SelectSource(name)) => self.select_source(&name, by, &mut handled),
        }
        handled
    }

    /// A camera that opened said which of its own controls it has: capabilities follow
    /// (the settings it carries out now go to it, the rest stay in software).
    pub fn camera_controls_seen(&mut self) -> Option<SourceChange> {
        let (generation, hardware) = self.camera_controls.offer_since(self.controls_seen)?;
        self.controls_seen = generation;
        info!("camera controls on the device: {}", hardware.describe());
        let mut profile = self.control.profile().clone();
        profile.hardware = hardware;
        self.control.source_changed(profile)
    }

    /// Switch to configured source `name` (the control state checked it exists): the
    /// capture reopens on it if it runs, and capabilities follow the new source.
    fn select_source(&mut self, name: &str, by: Option<String>, handled: &mut Handled) {
        let Some(source) = self.sources.iter().find(|s| s.name == name) else {
            return;
        };
        info!(
            by = by.as_deref().unwrap_or("?"),
            "switching to source `{name}` ({})", source.url
        );
        self.capture.select_source(source.url.clone());
        self.camera_controls.withdraw();
        let profile = SourceProfile::for_source(&source.url, self.start_size, self.start_fps);
        let mut change = self
            .control
            .source_selected(name, source.url.to_string(), profile);
        change.state.by = by;
        handled.source_change = Some(change);
        if self.capture.running() {
            handled.switched = Some(
                self.capture
                    .restart()
                    .map(|()| Switched { state: None })
                    .context("opening the selected source"),
            );
        }
    }

    /// Reopen the source (on the camera index the settings name, for V4L2), if it runs.
    fn restart_camera(&mut self, handled: &mut Handled) {
        if let Some(index) = self.control.settings().camera_index {
            if self.capture.select_camera(index) {
                let mut profile = self.control.profile().clone();
                profile.camera_index = Some(index);
                handled.source_change = self.control.source_changed(profile);
            }
        }
        if self.capture.running() {
            info!(source = %self.capture.name(), "restarting the camera");
            handled.switched = Some(
                self.capture
                    .restart()
                    .map(|()| Switched { state: None })
                    .context("restarting the source"),
            );
        }
    }

    /// `register` with what is being sent now: the picture size and rate viewers chose (or
    /// the source's), the camera's name (a viewer may have renamed it).
    pub fn register_message(&self, config: &PublisherConfig) -> ClientMessage {
        let s = self.control.settings();
        let native = self.control.profile().native;
        let name = s
            .camera_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| config.name.clone());
        ClientMessage::Register {
            camera_id: config.camera_id.clone(),
            name,
            width: s.width.unwrap_or(native.0),
            height: s.height.unwrap_or(native.1),
            fps: s.fps.unwrap_or(config.fps).clamp(1, 240),
            p2p_max: config.p2p_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use sightline_protocol::control::ControlPath;

    use super::*;
    use crate::source::camera_controls::{fake, HardwareControls};

    /// What a camera's capture thread offers reaches the capabilities once; a source
    /// switch withdraws it.
    #[test]
    fn a_cameras_offer_becomes_capabilities_once() {
        let config = PublisherConfig::new("ws://127.0.0.1:1/ws", "cam").with_sources(vec![
            NamedSource::parse("a=test-pattern").unwrap(),
            NamedSource::parse("b=test-pattern").unwrap(),
        ]);
        let spec = config.source_spec();
        let link = spec.controls.clone();
        let mut station = Station::new(&config, spec);
        assert!(station.camera_controls_seen().is_none(), "nothing offered");
        link.offer(HardwareControls::from_device(&fake::webcam()));
        let change = station.camera_controls_seen().expect("a new offer");
        assert_eq!(
            change.capabilities.path("brightness"),
            Some(ControlPath::Hardware)
        );
        assert!(station.camera_controls_seen().is_none(), "taken in once");
        let handled =
            station.command(r#"{"v":1,"type":"select_source","request_id":"r","name":"b"}"#);
        let change = handled.source_change.expect("the switch is news");
        assert_eq!(
            change.capabilities.path("brightness"),
            Some(ControlPath::Software)
        );
        assert!(
            station.camera_controls_seen().is_none(),
            "the withdrawal changes nothing more"
        );
    }
}
