//! What an accepted settings change asks of the publisher: which changes apply live (the
//! encode thread picks them up from the next frame), which need a new encoder and keyframe
//! (picture size: the pipeline re-creates the encoder when the frame size changes), and which
//! need the source reopened (another camera).

use sightline_protocol::control::{ApplyMode, CameraSettings, Capabilities};

/// The changes one accepted update makes, by how they take effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyPlan {
    /// Every setting whose value changed, in declaration order.
    pub changed: Vec<&'static str>,
    pub live: Vec<&'static str>,
    pub keyframe: Vec<&'static str>,
    pub restart: Vec<&'static str>,
    /// The camera's new name, for the session to announce.
    pub rename: Option<String>,
}

impl ApplyPlan {
    /// The plan from `old` to `new` settings under `caps`.
    pub fn between(old: &CameraSettings, new: &CameraSettings, caps: &Capabilities) -> Self {
        let changed = new.changed_from(old);
        let mut plan = ApplyPlan::default();
        for &name in &changed {
            match caps.get(name).and_then(|c| c.apply_mode()) {
                Some(ApplyMode::Restart) => plan.restart.push(name),
                Some(ApplyMode::Keyframe) => plan.keyframe.push(name),
                // Live, or a setting the source no longer lists (after a source change):
                // nothing to wait for.
                _ => plan.live.push(name),
            }
        }
        if changed.contains(&"camera_name") {
            plan.rename = new.camera_name.clone();
        }
        plan.changed = changed;
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// The strictest way the changes take effect.
    pub fn mode(&self) -> Option<ApplyMode> {
        if !self.restart.is_empty() {
            Some(ApplyMode::Restart)
        } else if !self.keyframe.is_empty() {
            Some(ApplyMode::Keyframe)
        } else if !self.live.is_empty() {
            Some(ApplyMode::Live)
        } else {
            None
        }
    }

    pub fn needs_source_restart(&self) -> bool {
        !self.restart.is_empty()
    }

    /// For the reply: "bitrate, fps applied live; width, height from the next keyframe".
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "nothing changed: the settings already have these values".to_owned();
        }
        let mut parts = Vec::new();
        if !self.live.is_empty() {
            parts.push(format!("{} applied live", self.live.join(", ")));
        }
        if !self.keyframe.is_empty() {
            parts.push(format!(
                "{} from the next keyframe (new encoder)",
                self.keyframe.join(", ")
            ));
        }
        if !self.restart.is_empty() {
            parts.push(format!("{}: the camera restarts", self.restart.join(", ")));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::control::source_profile::SourceProfile;
    use crate::source::{SourceUrl, V4l2Device};

    fn s(v: serde_json::Value) -> CameraSettings {
        CameraSettings::from_json(&v).unwrap()
    }

    #[test]
    fn changes_are_grouped_by_how_they_apply() {
        let caps =
            SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(0)), (1280, 720), 30)
                .capabilities();
        let old = s(
            json!({"width": 1280, "height": 720, "fps": 30, "bitrate": 2000000, "camera_name": "A", "camera_index": 0}),
        );
        let new = s(
            json!({"width": 640, "height": 360, "fps": 15, "bitrate": 2000000, "camera_name": "B", "camera_index": 1}),
        );
        let plan = ApplyPlan::between(&old, &new, &caps);
        assert_eq!(
            plan.changed,
            vec!["width", "height", "fps", "camera_name", "camera_index"]
        );
        assert_eq!(plan.live, vec!["fps", "camera_name"]);
        assert_eq!(plan.keyframe, vec!["width", "height"]);
        assert_eq!(plan.restart, vec!["camera_index"]);
        assert_eq!(plan.rename.as_deref(), Some("B"));
        assert_eq!(plan.mode(), Some(ApplyMode::Restart));
        assert!(plan.needs_source_restart());
        assert_eq!(
            plan.describe(),
            "fps, camera_name applied live; width, height from the next keyframe (new encoder); \
             camera_index: the camera restarts"
        );
    }

    #[test]
    fn no_change_is_an_empty_plan() {
        let caps =
            SourceProfile::for_source(&SourceUrl::TestPattern, (1280, 720), 30).capabilities();
        let a = s(json!({"fps": 30}));
        let plan = ApplyPlan::between(&a, &a, &caps);
        assert!(plan.is_empty());
        assert_eq!(plan.mode(), None);
        assert!(plan.describe().starts_with("nothing changed"));
        let live = ApplyPlan::between(&a, &s(json!({"fps": 20})), &caps);
        assert_eq!((live.mode(), live.rename), (Some(ApplyMode::Live), None));
    }
}
