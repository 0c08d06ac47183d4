//! Commands in, replies and broadcasts out, as plain code: the station feeds each command
//! text from the control channel to [`ControlState::handle_text`] (the one parse) and the
//! session sends what comes back. Starting, stopping and restarting are returned as an
//! [`Intent`] for the station to carry out, since they touch the capture, which this module
//! does not own.

use sightline_protocol::control::{
    parse_command, Action, CameraSettings, Command, ControlError, ControlErrorCode, ControlMessage,
    Response, StateUpdate,
};

use super::plan::ApplyPlan;
use super::presets;
use super::state::ControlState;

/// Something the station must do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Start capturing, encoding and sending; then [`ControlState::set_streaming`]`(true)`.
    StartStream,
    /// Stop them (staying connected); then `set_streaming(false)`.
    StopStream,
    /// Reopen the source (with the current `camera_index` if it has one) and re-create the
    /// encoder; then [`ControlState::source_changed`] with what the source reports.
    RestartCamera,
    /// Make the next frame a keyframe.
    RequestKeyframe,
    /// Switch to the configured source of this name (known to exist, not the running
    /// one); then [`ControlState::source_selected`].
    SelectSource(String),
}

/// The `by` of state changes the schedule made.
pub const SCHEDULE_BY: &str = "schedule";

/// The result of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// For the sender only (its `to` is the command's `from`).
    pub response: Response,
    /// For every viewer of the camera, when the state changed.
    pub broadcast: Option<StateUpdate>,
    pub intent: Option<Intent>,
    /// How an accepted settings change applies (already handed to the encode thread).
    pub plan: Option<ApplyPlan>,
}

impl Outcome {
    fn reply(response: Response) -> Self {
        Outcome {
            response,
            broadcast: None,
            intent: None,
            plan: None,
        }
    }

    /// The JSON texts to send on the control channel, in order: the reply, then the
    /// broadcast.
    pub fn messages(&self) -> Vec<String> {
        let mut out = vec![ControlMessage::Response(self.response.clone()).to_json()];
        if let Some(b) = &self.broadcast {
            out.push(ControlMessage::State(b.clone()).to_json());
        }
        out
    }
}

impl ControlState {
    /// One command's text, as it arrived on the control channel. Malformed commands get a
    /// refusal addressed to their sender when it can be read.
    pub fn handle_text(&mut self, text: &str) -> Outcome {
        match parse_command(text) {
            Ok(command) => self.handle(command),
            Err(refusal) => {
                let mut r = Response::refused(refusal.request_id, refusal.error).to(refusal.from);
                r.settings = Some(self.settings.clone());
                Outcome::reply(r)
            }
        }
    }

    /// One parsed command (commands are handled strictly one after another).
    pub fn handle(&mut self, command: Command) -> Outcome {
        let Command {
            request_id,
            from,
            action,
        } = command;
        let ok = |this: &Self, message: String| {
            let mut r = Response::ok(request_id.clone(), message).to(from.clone());
            r.settings = Some(this.settings.clone());
            r.status = Some(this.status());
            r
        };
        match action {
            Action::UpdateSettings(update) => self.update(&request_id, from, &update, None),
            Action::ApplyPreset { name } => match self.presets.resolve(&name, &self.profile) {
                Ok(update) => self.update(&request_id, from, &update, Some(name)),
                Err(e) => self.refuse(&request_id, from, e),
            },
            Action::SavePreset { name } => {
                if let Err(e) = self.presets.save(&name, &self.settings) {
                    return self.refuse(&request_id, from, e);
                }
                self.active_preset = Some(name.clone());
                self.version += 1;
                let message = format!("saved the current settings as preset `{name}`");
                self.preset_book_changed(&request_id, from, message)
            }
            Action::DeletePreset { name } => match self.delete_preset(&name) {
                Ok(true) => {
                    self.preset_book_changed(&request_id, from, format!("deleted preset `{name}`"))
                }
                Ok(false) => {
                    let error = ControlError::field(
                        ControlErrorCode::UnknownPreset,
                        "name",
                        format!("no saved preset `{name}`"),
                    );
                    self.refuse(&request_id, from, error)
                }
                Err(e) => self.refuse(&request_id, from, e),
            },
            Action::RenamePreset { name, new_name } => match self.rename_preset(&name, &new_name) {
                Ok(true) => self.preset_book_changed(
                    &request_id,
                    from,
                    format!("renamed preset `{name}` to `{new_name}`"),
                ),
                Ok(false) => Outcome::reply(ok(self, format!("preset `{name}` keeps its name"))),
                Err(e) => self.refuse(&request_id, from, e),
            },
            Action::SetSchedule { schedule } => match self.set_schedule(schedule) {
                Ok(()) => {
                    let message = match self.schedule.as_slice() {
                        [] => "cleared the schedule".to_owned(),
                        entries => format!(
                            "schedule: {}",
                            entries
                                .iter()
                                .map(|e| format!("{} {}", e.at, e.preset))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.preset_book_changed(&request_id, from, message)
                }
                Err(e) => self.refuse(&request_id, from, e),
            },
            Action::SelectSource { name } => {
                if self.source_name.as_deref() == Some(name.as_str()) {
                    return Outcome::reply(ok(self, format!("already on source `{name}`")));
                }
                if !self.source_names.contains(&name) {
                    let known = match self.source_names.as_slice() {
                        [] => "this camera has one source".to_owned(),
                        names => format!("sources: {}", names.join(", ")),
                    };
                    let error = ControlError::field(
                        ControlErrorCode::InvalidValue,
                        "name",
                        format!("no source `{name}`; {known}"),
                    );
                    return self.refuse(&request_id, from, error);
                }
                Outcome {
                    response: ok(self, format!("switching to source `{name}`")),
                    broadcast: None,
                    intent: Some(Intent::SelectSource(name)),
                    plan: None,
                }
            }
            Action::GetStatus => Outcome::reply(ok(self, "current settings and status".into())),
            Action::GetCapabilities => {
                let mut r = ok(self, "capabilities of this camera's source".into());
                r.capabilities = Some(self.caps.clone());
                Outcome::reply(r)
            }
            Action::StartStream | Action::StopStream => {
                let start = matches!(action, Action::StartStream);
                if self.streaming == start {
                    let m = if start {
                        "already streaming"
                    } else {
                        "already stopped"
                    };
                    return Outcome::reply(ok(self, m.into()));
                }
                let m = if start {
                    "starting the stream"
                } else {
                    "stopping the stream"
                };
                Outcome {
                    response: ok(self, m.into()),
                    broadcast: None,
                    intent: Some(if start {
                        Intent::StartStream
                    } else {
                        Intent::StopStream
                    }),
                    plan: None,
                }
            }
            Action::RestartCamera => Outcome {
                response: ok(self, "restarting the camera".into()),
                broadcast: None,
                intent: Some(Intent::RestartCamera),
                plan: None,
            },
            Action::RequestKeyframe => Outcome {
                response: ok(self, "keyframe requested".into()),
                broadcast: None,
                intent: Some(Intent::RequestKeyframe),
                plan: None,
            },
            Action::Pause | Action::Resume => self.refuse(
                &request_id,
                from,
                ControlError::new(
                    ControlErrorCode::UnknownCommand,
                    format!(
                        "`{}` is handled by the server for each viewer, not by the camera",
                        action.name()
                    ),
                ),
            ),
        }
    }

    fn update(
        &mut self,
        request_id: &str,
        from: Option<String>,
        update: &CameraSettings,
        preset: Option<String>,
    ) -> Outcome {
        let plan = match self.apply_update(update) {
            Ok(plan) => plan,
            Err(e) => return self.refuse(request_id, from, e),
        };
        let preset_news = preset
            .as_ref()
            .is_some_and(|p| self.active_preset.as_ref() != Some(p));
        if let Some(p) = &preset {
            self.active_preset = Some(p.clone());
        }
        let mut message = match &preset {
            Some(p) => format!(
                "preset `{p}` ({}): {}",
                presets::describe(update),
                plan.describe()
            ),
            None => plan.describe(),
        };
        let mut broadcast = None;
        if !plan.is_empty() || preset_news {
            if plan.is_empty() {
                self.version += 1; // only the preset's name is news
            }
            note_unsaved(&mut message, self.persist());
            broadcast = Some(self.state_update(from.clone(), &plan.changed));
        }
        let mut response = Response::ok(request_id, message).to(from);
        response.settings = Some(self.settings.clone());
        response.status = Some(self.status());
        Outcome {
            response,
            broadcast,
            intent: plan.needs_source_restart().then_some(Intent::RestartCamera),
            plan: Some(plan),
        }
    }

    /// The schedule's entry for local minute `now` ([`super::schedule::local_minute_now`]),
    /// applied like `apply_preset` from [`SCHEDULE_BY`]. `None`: nothing is due.
    pub fn scheduled(&mut self, now: i64) -> Option<Outcome> {
        let entry = self.schedule_clock.due(&self.schedule, now)?.clone();
        Some(self.handle(Command {
            request_id: format!("{SCHEDULE_BY}-{}", entry.at),
            from: Some(SCHEDULE_BY.to_owned()),
            action: Action::ApplyPreset { name: entry.preset },
        }))
    }

    /// The saved presets or the schedule changed: save them, answer the sender and tell
    /// every viewer (their preset lists, the schedule).
    fn preset_book_changed(
        &mut self,
        request_id: &str,
        from: Option<String>,
        mut message: String,
    ) -> Outcome {
        note_unsaved(&mut message, self.persist());
        let mut response = Response::ok(request_id, message).to(from.clone());
        response.settings = Some(self.settings.clone());
        response.status = Some(self.status());
        Outcome {
            response,
            broadcast: Some(self.state_update(from, &[])),
            intent: None,
            plan: None,
        }
    }

    fn refuse(&self, request_id: &str, from: Option<String>, error: ControlError) -> Outcome {
        let mut r = Response::refused(Some(request_id.to_owned()), error).to(from);
        // The settings as they stand, so a client can put its controls back.
        r.settings = Some(self.settings.clone());
        Outcome::reply(r)
    }
}

fn note_unsaved(message: &mut String, saved: Result<(), String>) {
    if let Err(e) = saved {
        message.push_str(&format!(" (applied, but not saved: {e})"));
    }
}
