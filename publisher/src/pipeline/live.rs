//! The encode thread's per-frame work with live settings, as plain state: read the control
//! snapshot (one atomic load when nothing changed), keep the encoder's rates in step, drop,
//! scale and adjust raw frames ([`FrameTransform`]), encode ([`FrameEncoder`], which follows
//! the frame size: a new picture size is a new encoder and an IDR, with no reconnect).
//!
//! It also says what it sees ([`FrameReport`]: the source's own size and rate, the size being
//! sent) so the session can update the capabilities, and times how long each change took to
//! reach an encoded frame ([`ApplyLog`]), and serves snapshot orders from the frames going by
//! ([`super::snapshot`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::motion::{MotionDetector, MotionOutbox};
use super::slate::{self, FALLBACK_SIZE};
use super::snapshot::{decode_last, KeptGop, Picture, SnapshotDesk};
use super::FrameEncoder;
use crate::control::{FrameTransform, PipelineSettingsReader};
use crate::h264::encoder::EncodedFrame;
use crate::image::I420Frame;
use crate::source::supervisor::SourceFrame;
use crate::source::{CapturedFrame, Payload};

/// What the encode thread has seen of the source and its own output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameReport {
    /// The source's raw frame size (before scaling); `None` before the first raw frame or
    /// for H.264 passthrough (not decoded here).
    pub source_size: Option<(u32, u32)>,
    /// The source's nominal frame rate.
    pub source_fps: u32,
    /// The source gives H.264 that is passed through (nothing about the picture can change).
    pub passthrough: bool,
    /// The size of the last frame encoded.
    pub sent_size: Option<(u32, u32)>,
}

/// The frame rate to encode at: the one asked for (0: the source's), never above the
/// source's own.
pub fn effective_fps(wanted: u32, source_fps: u32) -> u32 {
    let source_fps = source_fps.max(1);
    if wanted == 0 {
        source_fps
    } else {
        wanted.min(source_fps)
    }
}

/// Frames in, access units out, following the live settings.
pub struct FramePipeline {
    encoder: FrameEncoder,
    transform: FrameTransform,
    settings: PipelineSettingsReader,
    /// The encoder's rates as last set: (bitrate, fps).
    rates: Option<(u32, u32)>,
    /// The frame-rate limiter dropped a frame that followed a loss: the next frame sent
    /// starts with the keyframe that one would have had.
    pending_resume: bool,
    report: FrameReport,
    applied: ApplyLog,
    snapshots: SnapshotDesk,
    /// Passed-through H.264 since its last keyframe, for snapshots and the slate.
    gop: KeptGop,
    /// The slate of the current loss, rendered once (see [`super::slate`]).
    slate: Option<I420Frame>,
    /// Motion detection on the frames sent, while `ai_enabled` asks for it.
    motion: MotionDetector,
    motion_out: Option<MotionOutbox>,
}

impl FramePipeline {
    pub fn new(encoder: FrameEncoder, settings: PipelineSettingsReader, applied: ApplyLog) -> Self {
        FramePipeline {
            encoder,
            transform: FrameTransform::new(),
            settings,
            rates: None,
            pending_resume: false,
            report: FrameReport::default(),
            applied,
            snapshots: SnapshotDesk::default(),
            gop: KeptGop::default(),
            slate: None,
            motion: MotionDetector::default(),
            motion_out: None,
        }
    }

    /// Serve `desk`'s snapshot orders from the frames going by.
    pub fn serving_snapshots(mut self, desk: SnapshotDesk) -> Self {
        self.snapshots = desk;
        self
    }

    /// Send motion events to `outbox`.
    pub fn reporting_motion(mut self, outbox: MotionOutbox) -> Self {
        self.motion_out = Some(outbox);
        self
    }

    /// Run the motion detector on `frame` (turned off: end any motion in progress).
    fn detect_motion(&mut self, frame: &I420Frame, capture_us: u64, threshold: Option<u16>) {
        let ts = capture_us / 1000;
        let event = match threshold {
            Some(t) => self.motion.observe(frame, ts, f64::from(t) / 1000.0),
            None => self.motion.reset(ts),
        };
        if let (Some(event), Some(out)) = (event, &self.motion_out) {
            let _ = out.send(event); // the session is gone: nobody to tell
        }
    }

    pub fn report(&self) -> FrameReport {
        self.report
    }

    /// The VP8 frame made with the last access unit (see [`FrameEncoder::take_vp8`]).
    pub fn take_vp8(&mut self) -> Option<EncodedFrame> {
        self.encoder.take_vp8()
    }

    /// The access unit to send for `frame`, if any. `source_fps`: the source's nominal rate.
    pub fn process(&mut self, frame: SourceFrame, source_fps: u32) -> Option<EncodedFrame> {
        let (settings, _) = self.settings.get();
        let (version, motion) = (settings.version, settings.motion);
        let fps = effective_fps(settings.fps, source_fps);
        if self.rates != Some((settings.bitrate, fps)) {
            self.encoder.set_rates(settings.bitrate, fps);
            self.rates = Some((settings.bitrate, fps));
        }
        self.report.source_fps = source_fps.max(1);
        self.slate = None;
        let SourceFrame {
            captured,
            seq,
            resumed,
        } = frame;
        let CapturedFrame {
            payload,
            capture_us,
            index,
        } = captured;
        let (payload, resumed) = match payload {
            Payload::Raw(raw) => {
                self.report.source_size = Some((raw.width, raw.height));
                self.report.passthrough = false;
                self.gop.clear();
                match self.transform.apply(raw, capture_us, source_fps, settings) {
                    Some(out) => {
                        self.snapshots.serve(|| Picture::Raw(out.clone()));
                        self.detect_motion(&out, capture_us, motion);
                        let resumed = resumed || std::mem::take(&mut self.pending_resume);
                        (Payload::Raw(out), resumed)
                    }
                    None => {
                        self.pending_resume |= resumed;
                        return None;
                    }
                }
            }
            Payload::H264(au) => {
                self.report.source_size = None;
                self.report.passthrough = true;
                self.gop.push(&au.data, au.keyframe);
                self.snapshots.serve(|| self.gop.picture());
                (Payload::H264(au), resumed)
            }
        };
        let sent_size = match &payload {
            Payload::Raw(f) => Some((f.width, f.height)),
            Payload::H264(_) => None,
        };
        let frame = SourceFrame {
            captured: CapturedFrame {
                payload,
                capture_us,
                index,
            },
            seq,
            resumed,
        };
        let out = self.encoder.process(frame, fps)?;
        if sent_size.is_some() {
            self.report.sent_size = sent_size;
        }
        self.applied.frame_out(version);
        Some(out)
    }

    /// The next slate frame while the source is lost (see [`super::slate`]): the last
    /// picture sent, dimmed, or for passthrough the last one decoded from the kept H.264;
    /// grey at the size last sent when there is neither. It goes to the encoder as it is
    /// (it was scaled and adjusted already), and never into a snapshot.
    pub fn slate(&mut self) -> Option<EncodedFrame> {
        let fps = self.rates.map_or(1, |(_, fps)| fps);
        if self.slate.is_none() {
            let decoded = match (self.encoder.last_picture(), self.gop.picture()) {
                (None, Picture::H264(units)) => decode_last(&units).ok(),
                _ => None,
            };
            let last = self.encoder.last_picture().or(decoded.as_ref());
            let size = self.report.sent_size.unwrap_or(FALLBACK_SIZE);
            self.slate = Some(slate::render(last, size));
        }
        let picture = self.slate.as_ref()?;
        self.encoder.slate(picture, fps)
    }
}

/// Changes the session is waiting to see in an encoded frame, and since when. Shared between
/// the session (which marks) and the encode thread (which checks off); the lock is taken
/// once per frame, never contended for long.
#[derive(Debug, Clone, Default)]
pub struct ApplyLog(Arc<Mutex<Vec<Pending>>>);

#[derive(Debug)]
struct Pending {
    what: String,
    /// The settings version the frame must have been encoded with (`None`: any frame).
    version: Option<u64>,
    since: Instant,
}

impl ApplyLog {
    /// Log how long until the first frame encoded with settings `version` (or any frame).
    pub fn expect(&self, what: impl Into<String>, version: Option<u64>) {
        self.lock().push(Pending {
            what: what.into(),
            version,
            since: Instant::now(),
        });
    }

    /// Forget every wait (the stream stopped: no frame will come for them).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// A frame encoded with settings `version` is out: report every wait it ends.
    pub fn frame_out(&self, version: u64) -> Vec<(String, Duration)> {
        let mut pending = self.lock();
        if pending.is_empty() {
            return Vec::new();
        }
        let mut done = Vec::new();
        pending.retain(|p| {
            if p.version.is_none_or(|v| v <= version) {
                let took = p.since.elapsed();
                info!(
                    "{}: first frame out after {:.1} ms",
                    p.what,
                    took.as_secs_f64() * 1e3
                );
                done.push((p.what.clone(), took));
                false
            } else {
                true
            }
        });
        done
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.0.lock().unwrap_or_else(|e| {
            warn!("apply log lock was poisoned; carrying on");
            e.into_inner()
        })
    }
}

#[cfg(test)]
mod tests {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    use super::*;
    use crate::control::{PipelineSettings, PipelineSettingsHandle};
    use crate::h264::encoder::KeyframeRequest;
    use crate::image::ImageAdjust;
    use crate::pipeline::EncodeSettings;
    use crate::source::TestPattern;

    fn snapshot(
        version: u64,
        target: Option<(u32, u32)>,
        fps: u32,
        bitrate: u32,
    ) -> PipelineSettings {
        PipelineSettings {
            version,
            target_size: target,
            fps,
            bitrate,
            adjust: ImageAdjust::IDENTITY,
            motion: None,
        }
    }

    fn pipeline(handle: &PipelineSettingsHandle, applied: ApplyLog) -> FramePipeline {
        let settings = EncodeSettings {
            bitrate: 500_000,
            keyframe_interval: Duration::from_secs(60),
        };
        FramePipeline::new(
            FrameEncoder::new(
                settings,
                KeyframeRequest::default(),
                crate::pipeline::Vp8Lane::new(Default::default(), KeyframeRequest::default(), 0),
            ),
            handle.reader(),
            applied,
        )
    }

    /// Frame `seq` of a 30 fps test pattern of `w`x`h`.
    fn frame(w: u32, h: u32, seq: u64, resumed: bool) -> SourceFrame {
        let tp = TestPattern::new(w, h, 30, 1).unwrap();
        let capture_us = 1_000_000 + seq * 33_333;
        SourceFrame {
            captured: CapturedFrame::raw(tp.render(seq as u32, capture_us), capture_us, seq as u32),
            seq,
            resumed,
        }
    }

    fn rates(p: &FramePipeline) -> (u32, u32) {
        let e = p.encoder.encoder.as_ref().expect("an encoder").settings();
        (e.bitrate, e.fps)
    }

    #[test]
    fn a_new_picture_size_starts_with_a_keyframe_at_that_size() {
        let handle = PipelineSettingsHandle::new(snapshot(1, None, 0, 500_000));
        let applied = ApplyLog::default();
        let mut p = pipeline(&handle, applied.clone());
        assert!(p.process(frame(320, 240, 0, false), 30).unwrap().keyframe);
        let delta = p.process(frame(320, 240, 1, false), 30).unwrap();
        assert!(!delta.keyframe);
        assert_eq!(p.report().sent_size, Some((320, 240)));

        handle.publish(snapshot(2, Some((160, 120)), 0, 500_000));
        applied.expect("resize", Some(2));
        let first = p.process(frame(320, 240, 3, false), 30).unwrap();
        assert!(first.keyframe, "the new size opens with an IDR");
        let mut fresh = Decoder::new().unwrap();
        let pic = fresh.decode(&first.data).unwrap().unwrap();
        assert_eq!(pic.dimensions(), (160, 120));
        assert!(!p.process(frame(320, 240, 4, false), 30).unwrap().keyframe);
        let report = p.report();
        assert_eq!(
            report.source_size,
            Some((320, 240)),
            "the source is unchanged"
        );
        assert_eq!(report.sent_size, Some((160, 120)));
        assert!(
            applied.frame_out(2).is_empty(),
            "the wait was checked off already"
        );
    }

    #[test]
    fn bitrate_and_frame_rate_reach_the_running_encoder() {
        let handle = PipelineSettingsHandle::new(snapshot(1, None, 0, 500_000));
        let mut p = pipeline(&handle, ApplyLog::default());
        assert!(p.process(frame(160, 120, 0, false), 30).unwrap().keyframe);
        assert_eq!(rates(&p), (500_000, 30));
        handle.publish(snapshot(2, None, 0, 200_000));
        assert!(!p.process(frame(160, 120, 1, false), 30).unwrap().keyframe);
        assert_eq!(rates(&p), (200_000, 30), "bitrate changed live, no IDR");
        // Frame rate 10 out of 30: two frames in three are dropped, the encoder plans for 10.
        handle.publish(snapshot(3, None, 10, 200_000));
        let sent = (2..32)
            .filter(|&i| p.process(frame(160, 120, i, false), 30).is_some())
            .count();
        assert_eq!(sent, 10);
        assert_eq!(rates(&p), (200_000, 10));
        // Asking for more than the source gives encodes at the source's rate.
        handle.publish(snapshot(4, None, 60, 200_000));
        assert!(p.process(frame(160, 120, 32, false), 30).is_some());
        assert_eq!(rates(&p), (200_000, 30));
    }

    #[test]
    fn a_dropped_frame_after_a_loss_passes_its_keyframe_on() {
        let handle = PipelineSettingsHandle::new(snapshot(1, None, 10, 500_000));
        let mut p = pipeline(&handle, ApplyLog::default());
        assert!(p.process(frame(160, 120, 0, false), 30).is_some());
        // Frame 1 resumes after a loss but falls between two 10 fps slots.
        assert!(p.process(frame(160, 120, 1, true), 30).is_none());
        assert!(p.process(frame(160, 120, 2, false), 30).is_none());
        let next = p.process(frame(160, 120, 3, false), 30).unwrap();
        assert!(next.keyframe, "the resume's keyframe was carried over");
        assert!(p
            .process(frame(160, 120, 6, false), 30)
            .is_some_and(|f| !f.keyframe));
    }

    #[test]
    fn effective_fps_never_exceeds_the_source() {
        assert_eq!(effective_fps(0, 30), 30);
        assert_eq!(effective_fps(15, 30), 15);
        assert_eq!(effective_fps(60, 30), 30);
        assert_eq!(effective_fps(0, 0), 1);
    }

    #[test]
    fn the_apply_log_waits_for_the_right_version() {
        let log = ApplyLog::default();
        log.expect("bitrate", Some(5));
        log.expect("start", None);
        let done = log.frame_out(4);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "start");
        assert!(log.frame_out(4).is_empty());
        assert_eq!(log.frame_out(6).len(), 1);
        assert!(log.frame_out(7).is_empty());
    }
}
