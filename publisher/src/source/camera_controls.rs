//! A camera's own controls (V4L2 through nokhwa): which of our image settings the camera can
//! carry out itself, how our values map onto its ranges, and the [`CameraControlLink`] that
//! carries them between the control state and the capture thread that owns the device.
//!
//! `brightness`, `contrast`, `saturation` and `sharpness` keep the same scale whichever path
//! carries them out (`-100..=100`, sharpness `0..=100`, 0 = as the camera gives it), so a
//! saved value or a preset means the same on any camera: on the camera, 0 is the device's
//! default, the ends of our range are the ends of the device's (sharpness only goes up from
//! the default). `auto_exposure` and `exposure_time` exist only on the camera: their range
//! is the device's own (V4L2's exposure is in units of 100 µs).
//!
//! Nothing here touches a device: [`HardwareControls::from_device`] reads the control list
//! nokhwa reports, so it is tested with made-up lists (there is no camera on the machines
//! that run the tests).

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use nokhwa::utils::{
    CameraControl, ControlValueDescription, ControlValueSetter, KnownCameraControl,
    KnownCameraControlFlag,
};
use sightline_protocol::control::CameraSettings;

use crate::image::adjust;

/// V4L2's `V4L2_CID_EXPOSURE_AUTO` (a menu: 0 auto, 1 manual, 2 shutter priority, 3
/// aperture priority). nokhwa has no name for it, so it comes as `Other(id)` on Linux.
const V4L2_EXPOSURE_AUTO: u128 = 0x009a_0901;
/// V4L2's `V4L2_CID_EXPOSURE_ABSOLUTE` (100 µs units): what UVC webcams offer for exposure.
const V4L2_EXPOSURE_ABSOLUTE: u128 = 0x009a_0902;
const V4L2_EXPOSURE_MANUAL: i64 = 1;
const V4L2_EXPOSURE_APERTURE_PRIORITY: i64 = 3;

/// The settings a camera may carry out itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HardwareSetting {
    Brightness,
    Contrast,
    Saturation,
    Sharpness,
    AutoExposure,
    ExposureTime,
}

impl HardwareSetting {
    pub const ALL: [HardwareSetting; 6] = [
        HardwareSetting::Brightness,
        HardwareSetting::Contrast,
        HardwareSetting::Saturation,
        HardwareSetting::Sharpness,
        HardwareSetting::AutoExposure,
        HardwareSetting::ExposureTime,
    ];

    /// The setting's name in [`CameraSettings`].
    pub fn name(self) -> &'static str {
        match self {
            HardwareSetting::Brightness => "brightness",
            HardwareSetting::Contrast => "contrast",
            HardwareSetting::Saturation => "saturation",
            HardwareSetting::Sharpness => "sharpness",
            HardwareSetting::AutoExposure => "auto_exposure",
            HardwareSetting::ExposureTime => "exposure_time",
        }
    }

    /// Our scale for the picture controls (the software adjustment's); `None` for the
    /// exposure settings, which use the device's.
    pub fn our_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            HardwareSetting::Brightness => Some(adjust::BRIGHTNESS),
            HardwareSetting::Contrast => Some(adjust::CONTRAST),
            HardwareSetting::Saturation => Some(adjust::SATURATION),
            HardwareSetting::Sharpness => Some(adjust::SHARPNESS),
            HardwareSetting::AutoExposure | HardwareSetting::ExposureTime => None,
        }
    }

    /// Which of nokhwa's controls serves it, if `control` is one.
    fn served_by(control: KnownCameraControl) -> Option<Self> {
        Some(match control {
            KnownCameraControl::Brightness => HardwareSetting::Brightness,
            KnownCameraControl::Contrast => HardwareSetting::Contrast,
            KnownCameraControl::Saturation => HardwareSetting::Saturation,
            KnownCameraControl::Sharpness => HardwareSetting::Sharpness,
            // Linux names UVC's exposure controls by number; other systems call exposure
            // time `Exposure`.
            KnownCameraControl::Other(V4L2_EXPOSURE_AUTO) => HardwareSetting::AutoExposure,
            KnownCameraControl::Other(V4L2_EXPOSURE_ABSOLUTE) | KnownCameraControl::Exposure => {
                HardwareSetting::ExposureTime
            }
            _ => return None,
        })
    }
}

/// What the device takes for one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRange {
    /// A whole number in `min..=max` (on the step from `min`), `default` at power-on.
    Int {
        min: i64,
        max: i64,
        step: i64,
        default: i64,
    },
    /// Auto exposure: on or off, written as these device values.
    Switch {
        on: DeviceValue,
        off: DeviceValue,
        default_on: bool,
    },
}

/// A value as written to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceValue {
    Int(i64),
    Bool(bool),
}

impl From<DeviceValue> for ControlValueSetter {
    fn from(v: DeviceValue) -> Self {
        match v {
            DeviceValue::Int(i) => ControlValueSetter::Integer(i),
            DeviceValue::Bool(b) => ControlValueSetter::Boolean(b),
        }
    }
}

/// One setting the camera carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardwareControl {
    pub setting: HardwareSetting,
    /// The device control to write.
    pub device: KnownCameraControl,
    pub range: DeviceRange,
}

impl HardwareControl {
    /// Our value of this setting in `settings` as the device's, if set. Picture controls
    /// map our scale onto the device's range around its default (see the module doc).
    fn device_value(&self, settings: &CameraSettings) -> Option<DeviceValue> {
        match (self.setting, self.range) {
            (HardwareSetting::AutoExposure, DeviceRange::Switch { on, off, .. }) => {
                settings.auto_exposure.map(|a| if a { on } else { off })
            }
            (HardwareSetting::ExposureTime, DeviceRange::Int { min, max, .. }) => settings
                .exposure_time
                .map(|t| DeviceValue::Int(i64::from(t).clamp(min, max))),
            (
                setting,
                DeviceRange::Int {
                    min,
                    max,
                    step,
                    default,
                },
            ) => {
                let ours = setting.our_range()?;
                let value = match setting {
                    HardwareSetting::Brightness => settings.brightness,
                    HardwareSetting::Contrast => settings.contrast,
                    HardwareSetting::Saturation => settings.saturation,
                    HardwareSetting::Sharpness => settings.sharpness,
                    _ => None,
                }?;
                Some(DeviceValue::Int(scale(
                    value, ours, min, max, step, default,
                )))
            }
            _ => None,
        }
    }
}

/// `value` on our scale `ours` (0 in it, or at its start) → the device's `min..=max`, with
/// 0 at `default`, on the device's step.
fn scale(
    value: i32,
    ours: RangeInclusive<i32>,
    min: i64,
    max: i64,
    step: i64,
    default: i64,
) -> i64 {
    let (v, lo, hi) = (
        i64::from(value),
        i64::from(*ours.start()),
        i64::from(*ours.end()),
    );
    let raw = if v >= 0 {
        default + (max - default) * v / hi.max(1)
    } else {
        default - (default - min) * v / lo.min(-1)
    };
    let step = step.max(1);
    (min + (raw - min + step / 2) / step * step).clamp(min, max)
}

/// The settings a camera carries out itself, as found when it opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardwareControls {
    controls: Vec<HardwareControl>,
}

impl HardwareControls {
    /// Our settings among the controls a device reports. Read-only controls, ranges that
    /// are empty and values of other kinds are left out (their settings stay in software
    /// or unsupported). nokhwa's V4L2 backend reports V4L2's own, inclusive, bounds.
    pub fn from_device(controls: &[CameraControl]) -> Self {
        let mut found: Vec<HardwareControl> = Vec::new();
        for c in controls {
            let Some(setting) = HardwareSetting::served_by(c.control()) else {
                continue;
            };
            if c.flag().contains(&KnownCameraControlFlag::ReadOnly)
                || found.iter().any(|f| f.setting == setting)
            {
                continue;
            }
            let range = match (setting, c.description()) {
                (HardwareSetting::AutoExposure, d) => match switch(d) {
                    Some(r) => r,
                    None => continue,
                },
                (
                    _,
                    &ControlValueDescription::IntegerRange {
                        min,
                        max,
                        step,
                        default,
                        ..
                    },
                ) if min < max => DeviceRange::Int {
                    min,
                    max,
                    step: step.max(1),
                    default: default.clamp(min, max),
                },
                _ => continue,
            };
            found.push(HardwareControl {
                setting,
                device: c.control(),
                range,
            });
        }
        found.sort_by_key(|c| c.setting);
        HardwareControls { controls: found }
    }

    pub fn get(&self, setting: HardwareSetting) -> Option<&HardwareControl> {
        self.controls.iter().find(|c| c.setting == setting)
    }

    pub fn has(&self, setting: HardwareSetting) -> bool {
        self.get(setting).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.controls.is_empty()
    }

    /// What to write to the device for `settings`, in order: auto exposure before the
    /// exposure time, which is left alone while auto exposure is on (the camera would
    /// refuse it).
    pub fn device_values(
        &self,
        settings: &CameraSettings,
    ) -> Vec<(KnownCameraControl, DeviceValue)> {
        let auto = settings.auto_exposure == Some(true) && self.has(HardwareSetting::AutoExposure);
        self.controls
            .iter()
            .filter(|c| !(auto && c.setting == HardwareSetting::ExposureTime))
            .filter_map(|c| Some((c.device, c.device_value(settings)?)))
            .collect()
    }

    /// For logs: `brightness, contrast, auto_exposure` or `none`.
    pub fn describe(&self) -> String {
        if self.controls.is_empty() {
            return "none".to_owned();
        }
        let names: Vec<&str> = self.controls.iter().map(|c| c.setting.name()).collect();
        names.join(", ")
    }
}

/// Auto exposure as a switch: V4L2's menu (on: aperture priority, or auto; off: manual) or
/// a plain boolean.
fn switch(d: &ControlValueDescription) -> Option<DeviceRange> {
    match *d {
        ControlValueDescription::Boolean { default, .. } => Some(DeviceRange::Switch {
            on: DeviceValue::Bool(true),
            off: DeviceValue::Bool(false),
            default_on: default,
        }),
        ControlValueDescription::IntegerRange {
            min, max, default, ..
        } if (min..=max).contains(&V4L2_EXPOSURE_MANUAL) => {
            let on = if (min..=max).contains(&V4L2_EXPOSURE_APERTURE_PRIORITY) {
                V4L2_EXPOSURE_APERTURE_PRIORITY
            } else {
                min
            };
            (on != V4L2_EXPOSURE_MANUAL).then_some(DeviceRange::Switch {
                on: DeviceValue::Int(on),
                off: DeviceValue::Int(V4L2_EXPOSURE_MANUAL),
                default_on: default != V4L2_EXPOSURE_MANUAL,
            })
        }
        _ => None,
    }
}

/// Between the control state and the thread that owns a camera: the controls the camera
/// offers (written when it opens, read by the session about once a second) and the values
/// wanted on it (written on every settings change, read by the capture thread between
/// frames). Cheap to clone; one per publisher camera.
#[derive(Clone, Default)]
pub struct CameraControlLink {
    shared: Arc<Mutex<Link>>,
}

#[derive(Default)]
struct Link {
    /// What the open camera offers; `None`: no camera open (or not yet asked).
    offered: Option<HardwareControls>,
    /// Grows with every new offer, so the session sees each once.
    offer_generation: u64,
    wanted: Vec<(KnownCameraControl, DeviceValue)>,
    /// Grows with every new `wanted`.
    wanted_generation: u64,
}

impl std::fmt::Debug for CameraControlLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CameraControlLink")
    }
}

impl CameraControlLink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The capture thread: the camera it opened offers these.
    pub fn offer(&self, controls: HardwareControls) {
        let mut l = self.lock();
        l.offered = Some(controls);
        l.offer_generation += 1;
    }

    /// The camera closed for good (another source was chosen): nothing is offered.
    pub fn withdraw(&self) {
        let mut l = self.lock();
        if l.offered.take().is_some() {
            l.offer_generation += 1;
        }
    }

    /// The session: a new offer since generation `seen`, with its generation.
    pub fn offer_since(&self, seen: u64) -> Option<(u64, HardwareControls)> {
        let l = self.lock();
        (l.offer_generation != seen)
            .then(|| (l.offer_generation, l.offered.clone().unwrap_or_default()))
    }

    /// The control state: write these to the camera.
    pub fn want(&self, values: Vec<(KnownCameraControl, DeviceValue)>) {
        let mut l = self.lock();
        if l.wanted != values {
            l.wanted = values;
            l.wanted_generation += 1;
        }
    }

    /// The capture thread: the values to write if they changed since generation `seen`
    /// (0 at open: everything wanted so far).
    pub fn wanted_since(&self, seen: u64) -> Option<(u64, Vec<(KnownCameraControl, DeviceValue)>)> {
        let l = self.lock();
        (l.wanted_generation != seen && !l.wanted.is_empty())
            .then(|| (l.wanted_generation, l.wanted.clone()))
    }
}

/// Made-up control lists for tests (no camera here).
#[cfg(test)]
pub mod fake {
    use super::*;

    pub fn int(
        control: KnownCameraControl,
        min: i64,
        max: i64,
        step: i64,
        default: i64,
    ) -> CameraControl {
        CameraControl::new(
            control,
            format!("{control:?}"),
            ControlValueDescription::IntegerRange {
                min,
                max,
                value: default,
                step,
                default,
            },
            vec![],
            true,
        )
    }

    /// What a typical UVC webcam reports through nokhwa's V4L2 backend.
    pub fn webcam() -> Vec<CameraControl> {
        vec![
            int(KnownCameraControl::Brightness, 0, 255, 1, 128),
            int(KnownCameraControl::Contrast, 0, 95, 1, 32),
            int(KnownCameraControl::Saturation, 0, 100, 1, 64),
            int(KnownCameraControl::Hue, -2000, 2000, 1, 0),
            int(KnownCameraControl::Gain, 0, 100, 1, 0),
            int(KnownCameraControl::Sharpness, 1, 7, 1, 2),
            int(KnownCameraControl::Other(V4L2_EXPOSURE_AUTO), 0, 3, 1, 3),
            int(
                KnownCameraControl::Other(V4L2_EXPOSURE_ABSOLUTE),
                3,
                2047,
                1,
                250,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{int, webcam};
    use super::*;

    #[test]
    fn a_webcams_controls_map_onto_our_settings() {
        let hw = HardwareControls::from_device(&webcam());
        assert_eq!(
            hw.describe(),
            "brightness, contrast, saturation, sharpness, auto_exposure, exposure_time"
        );
        assert_eq!(
            hw.get(HardwareSetting::AutoExposure).unwrap().range,
            DeviceRange::Switch {
                on: DeviceValue::Int(3),
                off: DeviceValue::Int(1),
                default_on: true
            }
        );
        assert_eq!(
            hw.get(HardwareSetting::ExposureTime).unwrap().device,
            KnownCameraControl::Other(V4L2_EXPOSURE_ABSOLUTE)
        );
        // Hue and gain are not ours; nothing at all is nothing.
        assert!(HardwareControls::from_device(&[]).is_empty());
        assert_eq!(HardwareControls::from_device(&[]).describe(), "none");
    }

    #[test]
    fn unusable_controls_are_left_out() {
        let mut read_only = int(KnownCameraControl::Brightness, 0, 255, 1, 128);
        read_only = CameraControl::new(
            read_only.control(),
            "b".into(),
            read_only.description().clone(),
            vec![KnownCameraControlFlag::ReadOnly],
            true,
        );
        let controls = vec![
            read_only,
            int(KnownCameraControl::Contrast, 5, 5, 1, 5), // no range at all
            CameraControl::new(
                KnownCameraControl::Saturation,
                "s".into(),
                ControlValueDescription::String {
                    value: "x".into(),
                    default: None,
                },
                vec![],
                true,
            ),
            // An auto-exposure menu without a manual mode is no switch.
            int(KnownCameraControl::Other(V4L2_EXPOSURE_AUTO), 2, 3, 1, 3),
            // A boolean one is.
            CameraControl::new(
                KnownCameraControl::Other(V4L2_EXPOSURE_AUTO),
                "a".into(),
                ControlValueDescription::Boolean {
                    value: false,
                    default: false,
                },
                vec![],
                true,
            ),
        ];
        let hw = HardwareControls::from_device(&controls);
        assert_eq!(hw.describe(), "auto_exposure");
        assert_eq!(
            hw.get(HardwareSetting::AutoExposure).unwrap().range,
            DeviceRange::Switch {
                on: DeviceValue::Bool(true),
                off: DeviceValue::Bool(false),
                default_on: false
            }
        );
    }

    #[test]
    fn our_scale_maps_around_the_devices_default() {
        let hw = HardwareControls::from_device(&webcam());
        let values =
            |v: serde_json::Value| hw.device_values(&CameraSettings::from_json(&v).unwrap());
        let b = KnownCameraControl::Brightness;
        assert_eq!(
            values(serde_json::json!({"brightness": 0})),
            [(b, DeviceValue::Int(128))]
        );
        assert_eq!(
            values(serde_json::json!({"brightness": 100})),
            [(b, DeviceValue::Int(255))]
        );
        assert_eq!(
            values(serde_json::json!({"brightness": -100})),
            [(b, DeviceValue::Int(0))]
        );
        assert_eq!(
            values(serde_json::json!({"brightness": 50})),
            [(b, DeviceValue::Int(191))]
        );
        assert_eq!(
            values(serde_json::json!({"brightness": -50})),
            [(b, DeviceValue::Int(64))]
        );
        // Sharpness goes up from the default (2) to the device's top (7).
        let s = KnownCameraControl::Sharpness;
        assert_eq!(
            values(serde_json::json!({"sharpness": 0})),
            [(s, DeviceValue::Int(2))]
        );
        assert_eq!(
            values(serde_json::json!({"sharpness": 100})),
            [(s, DeviceValue::Int(7))]
        );
        // A device step is kept.
        assert_eq!(scale(33, -100..=100, 0, 100, 10, 50), 70);
        assert_eq!(scale(-100, -100..=100, 0, 100, 10, 50), 0);
    }

    #[test]
    fn exposure_time_waits_for_manual_exposure() {
        let hw = HardwareControls::from_device(&webcam());
        let auto = KnownCameraControl::Other(V4L2_EXPOSURE_AUTO);
        let time = KnownCameraControl::Other(V4L2_EXPOSURE_ABSOLUTE);
        let values =
            |v: serde_json::Value| hw.device_values(&CameraSettings::from_json(&v).unwrap());
        assert_eq!(
            values(serde_json::json!({"auto_exposure": true, "exposure_time": 100})),
            [(auto, DeviceValue::Int(3))]
        );
        assert_eq!(
            values(serde_json::json!({"auto_exposure": false, "exposure_time": 100})),
            [(auto, DeviceValue::Int(1)), (time, DeviceValue::Int(100))],
            "manual first, then the time"
        );
        assert_eq!(
            values(serde_json::json!({"auto_exposure": false, "exposure_time": 99999})),
            [(auto, DeviceValue::Int(1)), (time, DeviceValue::Int(2047))]
        );
    }

    #[test]
    fn the_link_carries_offers_and_wanted_values_once_each() {
        let link = CameraControlLink::default();
        assert!(link.offer_since(0).is_none(), "nothing offered yet");
        assert!(link.wanted_since(0).is_none(), "nothing wanted yet");
        link.offer(HardwareControls::from_device(&webcam()));
        let (seen, offered) = link.offer_since(0).unwrap();
        assert!(offered.has(HardwareSetting::Brightness));
        assert!(link.offer_since(seen).is_none());
        let v = vec![(KnownCameraControl::Brightness, DeviceValue::Int(10))];
        link.want(v.clone());
        let (g, got) = link.wanted_since(0).unwrap();
        assert_eq!(got, v);
        assert!(link.wanted_since(g).is_none());
        link.want(v.clone());
        assert!(
            link.wanted_since(g).is_none(),
            "the same values again are no news"
        );
        // A camera that opens again (its thread starts at 0) gets everything.
        assert_eq!(link.wanted_since(0).unwrap().1, v);
        link.withdraw();
        let (_, none) = link.offer_since(seen).unwrap();
        assert!(none.is_empty());
    }
}
