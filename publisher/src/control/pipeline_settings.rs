//! The handoff from control to the encode thread: an immutable [`PipelineSettings`] snapshot
//! the control side replaces on every change, and the encode thread reads once per frame.
//!
//! The hot path is one atomic load: a reader keeps its own `Arc` of the last snapshot and
//! looks at the mutex only when the generation counter says a new one was published (a few
//! times per viewer's click, never per frame).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sightline_protocol::control::CameraSettings;

use crate::image::ImageAdjust;
use crate::pipeline::motion::MODEL as MOTION_MODEL;
use crate::source::camera_controls::{HardwareControls, HardwareSetting};

/// What the encode pipeline needs to know about the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSettings {
    /// The control state's version this snapshot was made from.
    pub version: u64,
    /// Scale raw frames to this size; `None`: send them at the source's own size.
    pub target_size: Option<(u32, u32)>,
    /// Frames per second to send at most (frames beyond are dropped before encoding) and
    /// the encoder's rate-control frame rate.
    pub fps: u32,
    /// Encoder target, bits per second.
    pub bitrate: u32,
    /// Software image controls, applied after scaling.
    pub adjust: ImageAdjust,
    /// Motion detection's threshold in thousandths (`ai_confidence`), while it is on.
    pub motion: Option<u16>,
}

impl PipelineSettings {
    /// The snapshot for `settings` on a source whose frames are `native`-sized. Absent
    /// settings (the source cannot change them) mean "as the source gives it".
    pub fn from_settings(
        settings: &CameraSettings,
        native: (u32, u32),
        default_bitrate: u32,
        version: u64,
    ) -> Self {
        let target_size = match (settings.width, settings.height) {
            (Some(w), Some(h)) if (w, h) != native => Some((w, h)),
            _ => None,
        };
        let bitrate = settings
            .bitrate
            .and_then(|b| u32::try_from(b).ok())
            .unwrap_or(default_bitrate);
        PipelineSettings {
            version,
            target_size,
            fps: settings.fps.unwrap_or(0),
            bitrate,
            adjust: ImageAdjust {
                brightness: settings.brightness.unwrap_or(0),
                contrast: settings.contrast.unwrap_or(0),
                saturation: settings.saturation.unwrap_or(0),
                sharpness: settings.sharpness.unwrap_or(0),
            },
            motion: motion_threshold(settings),
        }
    }

    /// The camera carries out the picture controls it has: no software adjustment for those.
    pub fn leaving_to_camera(mut self, hardware: &HardwareControls) -> Self {
        let a = &mut self.adjust;
        for (setting, value) in [
            (HardwareSetting::Brightness, &mut a.brightness),
            (HardwareSetting::Contrast, &mut a.contrast),
            (HardwareSetting::Saturation, &mut a.saturation),
            (HardwareSetting::Sharpness, &mut a.sharpness),
        ] {
            if hardware.has(setting) {
                *value = 0;
            }
        }
        self
    }

    /// Nothing to do to raw frames but encode them.
    pub fn is_passthrough_of_pixels(&self) -> bool {
        self.target_size.is_none() && self.adjust.is_identity()
    }
}

/// The detector's threshold when `ai_enabled` is on with the built-in `"motion"` model.
fn motion_threshold(settings: &CameraSettings) -> Option<u16> {
    let model = settings.ai_model.as_deref().unwrap_or(MOTION_MODEL);
    (settings.ai_enabled == Some(true) && model == MOTION_MODEL).then(|| {
        let confidence = settings.ai_confidence.unwrap_or(DEFAULT_MOTION_CONFIDENCE);
        (confidence.clamp(0.0, 1.0) * 1000.0).round() as u16
    })
}

/// `ai_confidence` when none is set: about a quarter of a percent of the picture moving.
pub const DEFAULT_MOTION_CONFIDENCE: f64 = 0.5;

struct Shared {
    generation: AtomicU64,
    current: Mutex<Arc<PipelineSettings>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Arc<PipelineSettings>> {
        // A panic elsewhere while holding it cannot leave a half-written Arc: keep going.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writing side (held by the control state) and a factory of readers. Cheap to clone.
#[derive(Clone)]
pub struct PipelineSettingsHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PipelineSettingsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PipelineSettingsHandle")
            .field(&*self.current())
            .finish()
    }
}

impl PipelineSettingsHandle {
    pub fn new(initial: PipelineSettings) -> Self {
        PipelineSettingsHandle {
            shared: Arc::new(Shared {
                generation: AtomicU64::new(0),
                current: Mutex::new(Arc::new(initial)),
            }),
        }
    }

    /// Replace the snapshot; readers see it at their next frame.
    pub fn publish(&self, settings: PipelineSettings) {
        let mut current = self.shared.lock();
        *current = Arc::new(settings);
        // Bumped under the lock: a reader that sees the new generation and then locks
        // cannot get an older snapshot.
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// The snapshot now.
    pub fn current(&self) -> Arc<PipelineSettings> {
        Arc::clone(&self.shared.lock())
    }

    /// A reader for the encode thread (one per thread; it caches).
    pub fn reader(&self) -> PipelineSettingsReader {
        let current = self.shared.lock();
        PipelineSettingsReader {
            seen: self.shared.generation.load(Ordering::Acquire),
            cached: Arc::clone(&current),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The encode thread's view: [`Self::get`] once per frame.
pub struct PipelineSettingsReader {
    shared: Arc<Shared>,
    seen: u64,
    cached: Arc<PipelineSettings>,
}

impl PipelineSettingsReader {
    /// The latest snapshot, and whether it changed since the previous call.
    pub fn get(&mut self) -> (&PipelineSettings, bool) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        let changed = generation != self.seen;
        if changed {
            self.cached = Arc::clone(&self.shared.lock());
            self.seen = generation;
        }
        (&self.cached, changed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn snapshot(version: u64, bitrate: u32) -> PipelineSettings {
        PipelineSettings {
            version,
            target_size: None,
            fps: 30,
            bitrate,
            adjust: ImageAdjust::IDENTITY,
            motion: None,
        }
    }

    #[test]
    fn from_settings_maps_every_field() {
        let s = CameraSettings::from_json(&json!({
            "width": 640, "height": 360, "fps": 15, "bitrate": 300000,
            "brightness": 5, "contrast": -5, "saturation": 10, "sharpness": 20
        }))
        .unwrap();
        let p = PipelineSettings::from_settings(&s, (1280, 720), 2_000_000, 7);
        assert_eq!(
            p,
            PipelineSettings {
                version: 7,
                target_size: Some((640, 360)),
                fps: 15,
                bitrate: 300_000,
                adjust: ImageAdjust {
                    brightness: 5,
                    contrast: -5,
                    saturation: 10,
                    sharpness: 20
                },
                motion: None,
            }
        );
        assert!(!p.is_passthrough_of_pixels());
        // The source's own size is no scaling; absent settings take the defaults.
        let s = CameraSettings::from_json(&json!({"width": 1280, "height": 720})).unwrap();
        let p = PipelineSettings::from_settings(&s, (1280, 720), 2_000_000, 1);
        assert_eq!((p.target_size, p.bitrate, p.fps), (None, 2_000_000, 0));
        assert!(p.is_passthrough_of_pixels());
    }

    #[test]
    fn motion_is_on_with_the_motion_model_only() {
        let motion = |v: serde_json::Value| {
            let s = CameraSettings::from_json(&v).unwrap();
            PipelineSettings::from_settings(&s, (640, 360), 1_000_000, 1).motion
        };
        assert_eq!(motion(json!({})), None);
        assert_eq!(
            motion(json!({"ai_enabled": false, "ai_confidence": 0.3})),
            None
        );
        assert_eq!(motion(json!({"ai_enabled": true})), Some(500));
        assert_eq!(
            motion(json!({"ai_enabled": true, "ai_model": "motion", "ai_confidence": 0.3})),
            Some(300)
        );
        assert_eq!(
            motion(json!({"ai_enabled": true, "ai_model": "faces"})),
            None
        );
    }

    #[test]
    fn readers_see_each_publish_once() {
        let handle = PipelineSettingsHandle::new(snapshot(0, 1_000_000));
        let mut reader = handle.reader();
        let (s, changed) = reader.get();
        assert_eq!((s.bitrate, changed), (1_000_000, false));
        handle.publish(snapshot(1, 500_000));
        let (s, changed) = reader.get();
        assert_eq!((s.version, s.bitrate, changed), (1, 500_000, true));
        assert!(!reader.get().1);
        // Two publishes between frames: the reader gets the last.
        handle.publish(snapshot(2, 400_000));
        handle.publish(snapshot(3, 300_000));
        assert_eq!(reader.get().0.version, 3);
        // A reader made later starts at the current one.
        let mut late = handle.reader();
        assert_eq!(late.get(), (&snapshot(3, 300_000), false));
        assert_eq!(handle.current().version, 3);
    }

    #[test]
    fn a_reader_on_another_thread_converges_on_the_last_publish() {
        let handle = PipelineSettingsHandle::new(snapshot(0, 100_000));
        let mut reader = handle.reader();
        let writer = handle.clone();
        let t = std::thread::spawn(move || {
            for v in 1..=1000 {
                writer.publish(snapshot(v, 100_000 + v as u32));
            }
        });
        let mut last = 0;
        loop {
            let (s, _) = reader.get();
            // Versions never go backwards, and each snapshot is whole.
            assert!(s.version >= last);
            assert_eq!(s.bitrate, 100_000 + s.version as u32);
            last = s.version;
            if last == 1000 {
                break;
            }
            std::hint::spin_loop();
        }
        t.join().unwrap();
    }

    #[test]
    fn controls_the_camera_has_are_left_to_it() {
        let s =
            CameraSettings::from_json(&json!({"brightness": 30, "contrast": -20, "sharpness": 10}))
                .unwrap();
        let p = PipelineSettings::from_settings(&s, (640, 480), 1_000_000, 1);
        let only_brightness =
            HardwareControls::from_device(&[crate::source::camera_controls::fake::int(
                nokhwa::utils::KnownCameraControl::Brightness,
                0,
                255,
                1,
                128,
            )]);
        let left = p.clone().leaving_to_camera(&only_brightness).adjust;
        assert_eq!(
            (left.brightness, left.contrast, left.sharpness),
            (0, -20, 10)
        );
        assert_eq!(p.clone().leaving_to_camera(&HardwareControls::default()), p);
    }
}
