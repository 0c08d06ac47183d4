//! What outlives a signaling session: the camera's settings ([`ControlState`], persisted),
//! the capture ([`Capture`]: running or not) and the decision when to run it ([`Demand`]).
//! Sessions come and go (reconnects); the settings, a running source and an idle timer
//! carry on across them.

use std::time::Instant;

use sightline_protocol::control::StateUpdate;
use sightline_protocol::wire::ClientMessage;
use tracing::{info, warn};

use crate::capture::Capture;
use crate::config::PublisherConfig;
use crate::control::{ControlConfig, ControlState, SettingsStore, SourceProfile};
use crate::on_demand::{Demand, DemandAction};
use crate::pipeline::ApplyLog;
use crate::source::SourceSpec;

pub struct Station {
    pub control: ControlState,
    pub capture: Capture,
    pub demand: Demand,
    /// Waits for changes to reach an encoded frame (logged with their latency).
    pub applied: ApplyLog,
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
                store,
                streaming: false,
            },
        );
        for w in warnings {
            warn!("{w}");
        }
        Station {
            control,
            capture: Capture::new(spec),
            demand: Demand::new(config.on_demand, config.idle_stop),
            applied: ApplyLog::default(),
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

    /// Between signaling sessions: let the idle timer run out.
    pub fn tick(&mut self) {
        if let Some(action) = self.demand.tick(Instant::now()) {
            self.apply(action, None);
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
        }
    }
}
