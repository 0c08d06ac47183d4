//! Command `type`s on their own, without their arguments: which exist, who may send each and
//! who answers it. The SFU routes commands by these alone (it never reads their arguments);
//! the publisher parses the rest ([`super::parse_command`]); the web client mirrors the lists.

use std::fmt;

use super::error::{ControlError, ControlErrorCode};

macro_rules! command_types {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// A command's `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandType {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl CommandType {
            /// Every command type, in the protocol's order.
            pub const ALL: &'static [CommandType] = &[$(CommandType::$variant),*];

            /// Every command `type` as written on the wire, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The `type` as written on the wire.
            pub const fn name(self) -> &'static str {
                match self {
                    $(CommandType::$variant => $name,)*
                }
            }
        }
    };
}

command_types! {
    /// Change some settings, all or none.
    UpdateSettings = "update_settings",
    /// Start capturing and sending.
    StartStream = "start_stream",
    /// Stop capturing and sending; the publisher stays connected.
    StopStream = "stop_stream",
    /// Reply with the current settings and stream status.
    GetStatus = "get_status",
    /// Reopen the source (and encoder).
    RestartCamera = "restart_camera",
    /// Reply with the capabilities.
    GetCapabilities = "get_capabilities",
    /// Send a keyframe now.
    RequestKeyframe = "request_keyframe",
    /// Apply a named preset.
    ApplyPreset = "apply_preset",
    /// Save the current settings as a preset.
    SavePreset = "save_preset",
    /// Forget a saved preset (built-in ones stay).
    DeletePreset = "delete_preset",
    /// Give a saved preset another name (built-in ones keep theirs).
    RenamePreset = "rename_preset",
    /// Replace the schedule of presets applied at times of day.
    SetSchedule = "set_schedule",
    /// Switch to another of the publisher's configured sources, by name.
    SelectSource = "select_source",
    /// Stop forwarding media to the sending viewer (answered by the SFU).
    Pause = "pause",
    /// Forward media to the sending viewer again (answered by the SFU).
    Resume = "resume",
}

impl CommandType {
    /// The command type named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// `ty` as a command type, or the `unknown_command` refusal (listing every command) that
    /// the SFU and the publisher both answer with.
    pub fn parse(ty: &str) -> Result<Self, ControlError> {
        Self::from_name(ty).ok_or_else(|| {
            ControlError::new(
                ControlErrorCode::UnknownCommand,
                format!(
                    "unknown command `{ty}`; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            )
        })
    }

    /// It changes nothing at the camera: relayed to the publisher for any viewer.
    pub fn is_read_only(self) -> bool {
        matches!(self, CommandType::GetStatus | CommandType::GetCapabilities)
    }

    /// The SFU answers it for the sending viewer alone (stop or restart forwarding media to
    /// it); the publisher never sees it.
    pub fn is_viewer_local(self) -> bool {
        matches!(self, CommandType::Pause | CommandType::Resume)
    }

    /// A view-only viewer may send it (it is read-only or viewer-local); the SFU refuses the
    /// others from such a viewer with `forbidden`.
    pub fn view_only_may_send(self) -> bool {
        self.is_read_only() || self.is_viewer_local()
    }
}

impl fmt::Display for CommandType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_found_again() {
        assert_eq!(CommandType::ALL.len(), CommandType::NAMES.len());
        for (t, name) in CommandType::ALL.iter().zip(CommandType::NAMES) {
            assert_eq!(t.name(), *name);
            assert_eq!(CommandType::from_name(name), Some(*t));
            assert_eq!(CommandType::parse(name), Ok(*t));
        }
        let mut names = CommandType::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CommandType::NAMES.len());
    }

    #[test]
    fn unknown_commands_are_refused_with_the_list() {
        assert_eq!(CommandType::from_name("dance"), None);
        assert_eq!(CommandType::from_name("Pause"), None);
        let e = CommandType::parse("dance").unwrap_err();
        assert_eq!(e.code, ControlErrorCode::UnknownCommand);
        assert!(e
            .message
            .starts_with("unknown command `dance`; expected one of update_settings, "));
    }

    #[test]
    fn who_may_send_what() {
        let view_only: Vec<&str> = CommandType::ALL
            .iter()
            .filter(|t| t.view_only_may_send())
            .map(|t| t.name())
            .collect();
        assert_eq!(
            view_only,
            ["get_status", "get_capabilities", "pause", "resume"]
        );
        let local: Vec<&str> = CommandType::ALL
            .iter()
            .filter(|t| t.is_viewer_local())
            .map(|t| t.name())
            .collect();
        assert_eq!(local, ["pause", "resume"]);
        assert!(!CommandType::UpdateSettings.view_only_may_send());
        assert!(!CommandType::RequestKeyframe.view_only_may_send());
    }
}
