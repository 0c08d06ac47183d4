//! What the current source can do, and the [`Capabilities`] announced for it.
//!
//! Every raw source (test pattern, camera, MJPEG stream or file, RTSP when re-encoded) is
//! encoded here, so picture size (software scaling), frame rate (dropping frames), bitrate
//! and the image controls (software, [`crate::image::adjust`]) work the same for all of them.
//! A local camera that has its own brightness, contrast, saturation, sharpness or exposure
//! controls ([`HardwareControls`]) carries those out itself instead; the capabilities'
//! `paths` say which.
//! RTSP passthrough sends the camera's own H.264 untouched: nothing about the picture can be
//! changed here, only on the camera.

use sightline_protocol::control::{
    ApplyMode, CameraSettings, Capabilities, Capability, ControlPath,
};

use crate::image::jpeg_out::{MAX_JPEG_QUALITY, MIN_JPEG_QUALITY};
use crate::pipeline::motion::MODEL as MOTION_MODEL;
use crate::source::camera_controls::{DeviceRange, HardwareControls, HardwareSetting};
use crate::source::{SourceUrl, V4l2Device};

use super::resolution::offered_sizes;

/// Bitrate range offered, bits per second.
pub const MIN_BITRATE: u32 = 100_000;
pub const MAX_BITRATE: u32 = 8_000_000;
/// Longest camera name.
pub const MAX_NAME_LEN: u32 = 64;
/// Highest `/dev/videoN` index offered.
pub const MAX_CAMERA_INDEX: i64 = 63;
/// The codec every viewer can get, and the `encoding` setting's value.
pub const ENCODING: &str = "h264";
/// Every codec this publisher sends (`encoding`'s choices): H.264, and VP8 for browsers
/// without H.264 where the publisher is built with libvpx. Each viewer gets the one its
/// browser decodes, so the setting describes the camera rather than steering it.
#[cfg(sightline_vp8)]
pub const ENCODINGS: &[&str] = &[ENCODING, "vp8"];
#[cfg(not(sightline_vp8))]
pub const ENCODINGS: &[&str] = &[ENCODING];

/// Kinds of source, as far as control cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    TestPattern,
    /// A local V4L2 camera.
    Camera,
    /// JPEG frames from a network device or a file.
    Mjpeg,
    Rtsp,
}

/// The current source, as control needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProfile {
    pub kind: SourceKind,
    /// The source's own frame size (its best knowledge: a JPEG source knows only after its
    /// first frame; update it with [`super::ControlState::source_changed`]).
    pub native: (u32, u32),
    /// Its nominal frame rate: the highest fps offered.
    pub max_fps: u32,
    /// RTSP passthrough: the camera's H.264 is sent as it is.
    pub passthrough: bool,
    /// A V4L2 camera opened by index: switching to another index reopens the source.
    pub camera_index: Option<u32>,
    /// The controls the camera itself carries out (none until it opened and said).
    pub hardware: HardwareControls,
}

impl SourceProfile {
    /// The profile for `--source url` producing `native`-sized frames at `max_fps`. RTSP
    /// starts as passthrough until the source says otherwise ([`Self::with_detail`]).
    pub fn for_source(url: &SourceUrl, native: (u32, u32), max_fps: u32) -> Self {
        let (kind, camera_index) = match url {
            SourceUrl::TestPattern => (SourceKind::TestPattern, None),
            SourceUrl::V4l2(V4l2Device::Index(i)) => (SourceKind::Camera, Some(*i)),
            SourceUrl::V4l2(V4l2Device::Name(_)) => (SourceKind::Camera, None),
            SourceUrl::Esp32Tcp { .. }
            | SourceUrl::Esp32Push { .. }
            | SourceUrl::Http { .. }
            | SourceUrl::File { .. } => (SourceKind::Mjpeg, None),
            SourceUrl::Rtsp { .. } => (SourceKind::Rtsp, None),
        };
        SourceProfile {
            kind,
            native,
            max_fps: max_fps.max(1),
            passthrough: kind == SourceKind::Rtsp,
            camera_index,
            hardware: HardwareControls::default(),
        }
    }

    /// Take in what a running source says about itself ([`crate::source::Source::detail`]):
    /// an RTSP source that re-encodes ("re-encoding (High 4.0, ...)") gives raw frames, so
    /// everything becomes adjustable.
    pub fn with_detail(mut self, detail: Option<&str>) -> Self {
        if self.kind == SourceKind::Rtsp {
            self.passthrough = !detail.is_some_and(|d| d.starts_with("re-encoding"));
        }
        self
    }

    /// Who carries out a picture control: the camera if it has it, else the publisher.
    pub fn path_of(&self, setting: HardwareSetting) -> ControlPath {
        if self.hardware.has(setting) {
            ControlPath::Hardware
        } else {
            ControlPath::Software
        }
    }

    /// Picture sizes offered (none when the picture cannot be changed).
    pub fn sizes(&self) -> Vec<(u32, u32)> {
        if self.passthrough {
            Vec::new()
        } else {
            offered_sizes(self.native)
        }
    }

    /// Every setting of [`CameraSettings::NAMES`], with its range and apply mode or why it
    /// is unsupported.
    pub fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        let unsupported = |why: &str| Capability::Unsupported {
            reason: Some(why.to_owned()),
        };
        let int = |min: i64, max: i64, apply| Capability::Int {
            min,
            max,
            step: 1,
            apply,
        };
        let range = |r: std::ops::RangeInclusive<i32>| {
            int(i64::from(*r.start()), i64::from(*r.end()), ApplyMode::Live)
        };

        if self.passthrough {
            let why = "RTSP passthrough sends the camera's own H.264 unchanged; set this on \
                       the camera (or make the publisher re-encode)";
            for name in [
                "width",
                "height",
                "fps",
                "bitrate",
                "brightness",
                "contrast",
                "saturation",
                "sharpness",
            ] {
                caps.set(name, unsupported(why));
            }
        } else {
            let sizes = self.sizes();
            let choices = |side: fn(&(u32, u32)) -> u32| {
                let mut v: Vec<u32> = sizes.iter().map(side).collect();
                v.sort_unstable();
                v.dedup();
                v.iter().map(u32::to_string).collect::<Vec<_>>()
            };
            // Width and height are set together; the pair must be one of the offered sizes
            // (checked in `state`). Each side alone lists the values that occur.
            caps.set(
                "width",
                Capability::Enum {
                    choices: choices(|s| s.0),
                    apply: ApplyMode::Keyframe,
                },
            );
            caps.set(
                "height",
                Capability::Enum {
                    choices: choices(|s| s.1),
                    apply: ApplyMode::Keyframe,
                },
            );
            caps.set("fps", int(1, i64::from(self.max_fps), ApplyMode::Live));
            caps.set(
                "bitrate",
                int(
                    i64::from(MIN_BITRATE),
                    i64::from(MAX_BITRATE),
                    ApplyMode::Live,
                ),
            );
            // The same scale on either path (see `camera_controls`).
            for setting in [
                HardwareSetting::Brightness,
                HardwareSetting::Contrast,
                HardwareSetting::Saturation,
                HardwareSetting::Sharpness,
            ] {
                let ours = setting.our_range().expect("a picture control");
                caps.set_on(setting.name(), range(ours), self.path_of(setting));
            }
        }
        caps.set(
            "camera_name",
            Capability::Text {
                max_len: MAX_NAME_LEN,
                apply: ApplyMode::Live,
            },
        );
        caps.set(
            "encoding",
            Capability::Enum {
                choices: ENCODINGS.iter().map(|e| e.to_string()).collect(),
                apply: ApplyMode::Live,
            },
        );
        // The JPEG quality of snapshots and of the MJPEG stream made of them; any source
        // has a picture to snapshot (passthrough H.264 is decoded for it). The video's own
        // quality follows `bitrate`.
        caps.set(
            "quality",
            int(
                i64::from(MIN_JPEG_QUALITY),
                i64::from(MAX_JPEG_QUALITY),
                ApplyMode::Live,
            ),
        );
        // Motion detection runs on the frames being encoded: none while passing through.
        if self.passthrough {
            let why = "motion detection needs decoded frames; RTSP passthrough is not decoded";
            for name in ["ai_enabled", "ai_model", "ai_confidence"] {
                caps.set(name, unsupported(why));
            }
        } else {
            caps.set(
                "ai_enabled",
                Capability::Bool {
                    apply: ApplyMode::Live,
                },
            );
            caps.set(
                "ai_model",
                Capability::Enum {
                    choices: vec![MOTION_MODEL.to_owned()],
                    apply: ApplyMode::Live,
                },
            );
            caps.set(
                "ai_confidence",
                Capability::Float {
                    min: 0.0,
                    max: 1.0,
                    apply: ApplyMode::Live,
                },
            );
        }
        caps.set(
            "camera_index",
            match self.camera_index {
                Some(_) => int(0, MAX_CAMERA_INDEX, ApplyMode::Restart),
                None => unsupported(match self.kind {
                    SourceKind::Camera => "the camera was chosen by name (--source v4l2:NAME)",
                    _ => "only for local V4L2 cameras (--source v4l2:INDEX)",
                }),
            },
        );
        let exposure_why = match self.kind {
            SourceKind::TestPattern => "a synthetic picture has no exposure",
            SourceKind::Camera => "this camera offers no exposure control",
            SourceKind::Mjpeg | SourceKind::Rtsp => {
                "a network camera's exposure is set on the device itself"
            }
        };
        match self.hardware.get(HardwareSetting::AutoExposure) {
            Some(_) => caps.set_on(
                "auto_exposure",
                Capability::Bool {
                    apply: ApplyMode::Live,
                },
                ControlPath::Hardware,
            ),
            None => caps.set("auto_exposure", unsupported(exposure_why)),
        };
        match self
            .hardware
            .get(HardwareSetting::ExposureTime)
            .map(|c| c.range)
        {
            Some(DeviceRange::Int { min, max, step, .. }) => caps.set_on(
                "exposure_time",
                Capability::Int {
                    min,
                    max,
                    step,
                    apply: ApplyMode::Live,
                },
                ControlPath::Hardware,
            ),
            _ => caps.set("exposure_time", unsupported(exposure_why)),
        };
        debug_assert!(CameraSettings::NAMES.iter().all(|n| caps.get(n).is_some()));
        caps
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;
    use sightline_protocol::control::{validate_update, ControlErrorCode};

    use super::*;

    fn test_pattern() -> SourceProfile {
        SourceProfile::for_source(&SourceUrl::TestPattern, (1280, 720), 30)
    }

    fn check(
        profile: &SourceProfile,
        update: serde_json::Value,
    ) -> Result<(), (ControlErrorCode, String)> {
        let s = CameraSettings::from_json(&update).unwrap();
        validate_update(&s, &profile.capabilities()).map_err(|e| (e.code, e.message))
    }

    #[test]
    fn every_setting_is_announced() {
        for p in [
            test_pattern(),
            SourceProfile::for_source(
                &SourceUrl::Rtsp {
                    url: "rtsp://x/y".into(),
                },
                (1920, 1080),
                25,
            ),
            SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(0)), (640, 480), 30),
        ] {
            let caps = p.capabilities();
            for name in CameraSettings::NAMES {
                assert!(caps.get(name).is_some(), "{:?}: {name}", p.kind);
            }
            assert_eq!(caps.settings.len(), CameraSettings::NAMES.len());
        }
    }

    #[test]
    fn a_test_pattern_offers_software_controls() {
        let p = test_pattern();
        let caps = p.capabilities();
        assert_eq!(
            serde_json::to_value(caps.get("width").unwrap()).unwrap(),
            json!({"type":"enum","choices":["320","640","960","1280"],"apply":"keyframe"})
        );
        assert_eq!(
            serde_json::to_value(caps.get("fps").unwrap()).unwrap(),
            json!({"type":"int","min":1,"max":30,"step":1,"apply":"live"})
        );
        check(
            &p,
            json!({"bitrate": "1.5M", "fps": 15, "brightness": -100, "sharpness": 100}),
        )
        .unwrap();
        check(&p, json!({"width": 640, "height": 360})).unwrap();
        let (code, msg) = check(&p, json!({"bitrate": 9_000_000})).unwrap_err();
        assert_eq!(
            (code, msg.as_str()),
            (
                ControlErrorCode::InvalidValue,
                "bitrate: 9000000 is outside 100000..=8000000"
            )
        );
        assert_eq!(
            check(&p, json!({"fps": 31})).unwrap_err().1,
            "fps: 31 is outside 1..=30"
        );
        assert_eq!(
            check(&p, json!({"fps": 0})).unwrap_err().1,
            "fps: 0 is outside 1..=30"
        );
        assert_eq!(
            check(&p, json!({"width": 1920})).unwrap_err().1,
            "width: 1920 is not one of 320, 640, 960, 1280"
        );
        assert_eq!(
            check(&p, json!({"sharpness": -1})).unwrap_err().1,
            "sharpness: -1 is outside 0..=100"
        );
        let (code, msg) = check(&p, json!({"exposure_time": 100})).unwrap_err();
        assert_eq!(code, ControlErrorCode::Unsupported);
        assert!(msg.contains("synthetic"), "{msg}");
        check(
            &p,
            json!({"ai_enabled": true, "ai_model": "motion", "ai_confidence": 0.3}),
        )
        .unwrap();
        assert_eq!(
            check(&p, json!({"ai_model": "faces"})).unwrap_err().1,
            "ai_model: \"faces\" is not one of motion"
        );
        assert!(check(&p, json!({"ai_confidence": 1.5})).is_err());
        assert_eq!(
            check(&p, json!({"camera_index": 1})).unwrap_err().0,
            ControlErrorCode::Unsupported
        );
        check(&p, json!({"encoding": "h264", "camera_name": "Porch"})).unwrap();
        assert!(check(&p, json!({"encoding": "h265"})).is_err());
        let caps = p.capabilities();
        let Some(Capability::Enum { choices, .. }) = caps.get("encoding") else {
            panic!("{:?}", caps.get("encoding"));
        };
        assert_eq!(choices[0], "h264");
        assert_eq!(choices.contains(&"vp8".to_owned()), cfg!(sightline_vp8));
        check(&p, json!({"quality": 100})).unwrap();
        assert_eq!(
            check(&p, json!({"quality": 0})).unwrap_err().1,
            "quality: 0 is outside 1..=100"
        );
    }

    #[test]
    fn rtsp_passthrough_refuses_picture_changes_until_it_re_encodes() {
        let url = SourceUrl::Rtsp {
            url: "rtsp://cam/stream".into(),
        };
        let p = SourceProfile::for_source(&url, (1920, 1080), 25);
        assert!(p.passthrough);
        let (code, msg) = check(&p, json!({"bitrate": 1_000_000})).unwrap_err();
        assert_eq!(code, ControlErrorCode::Unsupported);
        assert!(msg.contains("passthrough"), "{msg}");
        assert!(check(&p, json!({"width": 640, "height": 360})).is_err());
        check(&p, json!({"camera_name": "Gate"})).unwrap();
        check(&p, json!({"quality": 40})).unwrap();
        assert!(p.sizes().is_empty());

        let p = p.with_detail(Some(
            "re-encoding (High 4.0, 1920x1080; High profile, B-frames)",
        ));
        assert!(!p.passthrough);
        check(
            &p,
            json!({"bitrate": 1_000_000, "width": 640, "height": 360}),
        )
        .unwrap();
        assert!(
            p.clone()
                .with_detail(Some("passthrough (Constrained Baseline 3.1)"))
                .passthrough
        );
    }

    #[test]
    fn cameras_by_index_can_switch_with_a_restart() {
        let p = SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(2)), (640, 480), 30);
        assert_eq!(p.camera_index, Some(2));
        let caps = p.capabilities();
        assert_eq!(
            caps.get("camera_index").unwrap().apply_mode(),
            Some(ApplyMode::Restart)
        );
        check(&p, json!({"camera_index": 0})).unwrap();
        assert!(check(&p, json!({"camera_index": 64})).is_err());
        let by_name = SourceProfile::for_source(
            &SourceUrl::V4l2(V4l2Device::Name("HD".into())),
            (640, 480),
            30,
        );
        assert!(check(&by_name, json!({"camera_index": 0}))
            .unwrap_err()
            .1
            .contains("by name"));
        let file = SourceProfile::for_source(
            &SourceUrl::File {
                path: PathBuf::from("a.mjpeg"),
            },
            (640, 480),
            10,
        );
        assert_eq!(file.kind, SourceKind::Mjpeg);
        assert_eq!(
            check(&file, json!({"fps": 11})).unwrap_err().1,
            "fps: 11 is outside 1..=10"
        );
    }

    /// A V4L2 camera that said which controls it has (a made-up list: no camera here).
    fn webcam_profile(controls: &[nokhwa::utils::CameraControl]) -> SourceProfile {
        let mut p =
            SourceProfile::for_source(&SourceUrl::V4l2(V4l2Device::Index(0)), (1280, 720), 30);
        p.hardware = HardwareControls::from_device(controls);
        p
    }

    #[test]
    fn a_cameras_own_controls_take_the_hardware_path() {
        let caps = webcam_profile(&crate::source::camera_controls::fake::webcam()).capabilities();
        for name in [
            "brightness",
            "contrast",
            "saturation",
            "sharpness",
            "auto_exposure",
            "exposure_time",
        ] {
            assert_eq!(caps.path(name), Some(ControlPath::Hardware), "{name}");
        }
        // Our scale stays; exposure is the device's own.
        assert_eq!(
            caps.get("brightness"),
            Some(&Capability::Int {
                min: -100,
                max: 100,
                step: 1,
                apply: ApplyMode::Live
            })
        );
        assert_eq!(
            caps.get("exposure_time"),
            Some(&Capability::Int {
                min: 3,
                max: 2047,
                step: 1,
                apply: ApplyMode::Live
            })
        );
        assert!(matches!(
            caps.get("auto_exposure"),
            Some(Capability::Bool { .. })
        ));

        // A camera with brightness only: the rest in software, exposure unsupported.
        let only = [crate::source::camera_controls::fake::int(
            nokhwa::utils::KnownCameraControl::Brightness,
            0,
            255,
            1,
            128,
        )];
        let caps = webcam_profile(&only).capabilities();
        assert_eq!(caps.path("brightness"), Some(ControlPath::Hardware));
        assert_eq!(caps.path("contrast"), Some(ControlPath::Software));
        assert_eq!(caps.path("exposure_time"), None);
        assert!(matches!(
            caps.get("exposure_time"),
            Some(Capability::Unsupported { reason: Some(r) }) if r.contains("no exposure control")
        ));

        // Other sources: software, or unsupported when passed through.
        let caps = test_pattern().capabilities();
        assert_eq!(caps.path("sharpness"), Some(ControlPath::Software));
        let rtsp = SourceProfile::for_source(
            &SourceUrl::Rtsp {
                url: "rtsp://x/y".into(),
            },
            (1920, 1080),
            25,
        );
        let caps = rtsp.capabilities();
        assert_eq!(caps.path("brightness"), None);
        assert!(matches!(
            caps.get("brightness"),
            Some(Capability::Unsupported { .. })
        ));
    }
}
