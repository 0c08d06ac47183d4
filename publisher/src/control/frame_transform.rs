//! What the encode thread does to each raw frame before encoding it, following the current
//! [`PipelineSettings`]: drop it (frame rate), scale it (picture size), adjust it (image
//! controls). With default settings it is handed back untouched at the cost of one compare.
//!
//! Frames carrying the test pattern's barcode get it burned again after the change: scaling
//! would shrink its blocks below what a reader expects and contrast could push them into the
//! ambiguous band, and the barcode is how tests and benchmarks follow frames end to end.

use tracing::warn;

use crate::barcode;
use crate::image::I420Frame;
use crate::image::{Adjuster, Scaler};

use super::frame_rate::FrameRateLimiter;
use super::pipeline_settings::PipelineSettings;

/// Scratch state for transforming frames; one per encode thread.
#[derive(Debug, Default)]
pub struct FrameTransform {
    limiter: FrameRateLimiter,
    scaler: Scaler,
    adjuster: Adjuster,
    /// Scaling failed for this target size: logged once, frames sent unscaled.
    failed_target: Option<(u32, u32)>,
}

impl FrameTransform {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame to encode, or `None` to drop this one (the frame rate is being lowered).
    /// `source_fps` is the source's nominal rate.
    pub fn apply(
        &mut self,
        frame: I420Frame,
        capture_us: u64,
        source_fps: u32,
        settings: &PipelineSettings,
    ) -> Option<I420Frame> {
        if !self.limiter.admit(capture_us, settings.fps, source_fps) {
            return None;
        }
        if settings.is_passthrough_of_pixels() {
            return Some(frame);
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        let stamp = barcode::read(&frame.y, w, w, h);
        let mut frame = match settings.target_size {
            Some((tw, th)) if (tw, th) != (frame.width, frame.height) => {
                match self.scaler.scale(&frame, tw, th) {
                    Ok(scaled) => {
                        self.failed_target = None;
                        scaled
                    }
                    Err(e) => {
                        if self.failed_target != Some((tw, th)) {
                            warn!(
                                "cannot scale frames to {tw}x{th}: {e:#}; sending them as they are"
                            );
                            self.failed_target = Some((tw, th));
                        }
                        frame
                    }
                }
            }
            _ => frame,
        };
        self.adjuster.apply(&mut frame, &settings.adjust);
        if let Some(stamp) = stamp {
            barcode::burn(&mut frame, &stamp);
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageAdjust;

    fn settings(target: Option<(u32, u32)>, fps: u32, adjust: ImageAdjust) -> PipelineSettings {
        PipelineSettings {
            version: 1,
            target_size: target,
            fps,
            bitrate: 1_000_000,
            adjust,
            motion: None,
        }
    }

    fn stamped(w: u32, h: u32, n: u32) -> (I420Frame, barcode::Stamp) {
        let mut f = I420Frame::black(w, h);
        // Some picture below the barcode strip.
        for (i, p) in f.y.iter_mut().enumerate() {
            *p = (i % 200) as u8 + 20;
        }
        let stamp = barcode::Stamp {
            frame: n,
            capture_us: 1_700_000_000_000_000 + u64::from(n),
            tag: 0xbeef,
        };
        barcode::burn(&mut f, &stamp);
        (f, stamp)
    }

    fn read(f: &I420Frame) -> Option<barcode::Stamp> {
        let w = f.width as usize;
        barcode::read(&f.y, w, w, f.height as usize)
    }

    #[test]
    fn default_settings_hand_the_frame_back_untouched() {
        let (f, _) = stamped(320, 240, 1);
        let mut t = FrameTransform::new();
        let out = t.apply(f.clone(), 0, 30, &settings(None, 0, ImageAdjust::IDENTITY));
        assert_eq!(out, Some(f));
    }

    #[test]
    fn scaled_and_adjusted_frames_keep_a_readable_barcode() {
        let (f, stamp) = stamped(1280, 720, 42);
        let adjust = ImageAdjust {
            brightness: 40,
            contrast: -60,
            saturation: -100,
            sharpness: 80,
        };
        let mut t = FrameTransform::new();
        let out = t
            .apply(f, 0, 30, &settings(Some((640, 360)), 0, adjust))
            .unwrap();
        assert_eq!((out.width, out.height), (640, 360));
        assert_eq!(out.y.len(), 640 * 360);
        assert_eq!(read(&out), Some(stamp));
        // The image controls were applied: saturation −100 makes chroma grey, and the
        // picture below the strip differs from the scaled-only one.
        assert!(out.u.iter().chain(&out.v).all(|&c| c == 128));
        let plain = crate::image::scale_i420(&stamped(1280, 720, 42).0, 640, 360).unwrap();
        let strip = barcode::strip_height(640) * 640;
        assert_ne!(out.y[strip..], plain.y[strip..]);
    }

    #[test]
    fn frames_without_a_barcode_get_none() {
        let mut f = I420Frame::black(320, 240);
        f.y.iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = (i * 7 % 256) as u8);
        let plain = crate::image::scale_i420(&f, 160, 120).unwrap();
        let mut t = FrameTransform::new();
        let out = t
            .apply(
                f,
                0,
                30,
                &settings(Some((160, 120)), 0, ImageAdjust::IDENTITY),
            )
            .unwrap();
        assert_eq!(out, plain, "scaled, and nothing burned in");
        assert_eq!(read(&out), None);
    }

    #[test]
    fn lowered_frame_rate_drops_frames() {
        let mut t = FrameTransform::new();
        let s = settings(None, 10, ImageAdjust::IDENTITY);
        let sent = (0..30u64)
            .filter(|i| {
                let (f, _) = stamped(64, 128, *i as u32);
                t.apply(f, i * 33_333, 30, &s).is_some()
            })
            .count();
        assert_eq!(sent, 10);
    }

    #[test]
    fn an_impossible_target_sends_frames_unscaled() {
        let (f, _) = stamped(320, 240, 3);
        let mut t = FrameTransform::new();
        let out = t
            .apply(
                f.clone(),
                0,
                30,
                &settings(Some((7, 7)), 0, ImageAdjust::IDENTITY),
            )
            .unwrap();
        assert_eq!(out, f);
    }
}
