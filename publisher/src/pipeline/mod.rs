//! The blocking half of publishing: a dedicated thread takes frames from the source
//! [supervisor](crate::source::supervisor), encodes raw ones (or passes browser-safe H.264
//! through) and hands whole access units to the async side. Encoding never runs on the async
//! executor, and nothing the source does ends this thread.
//!
//! [`FrameEncoder`] holds the decisions as plain state, so they are tested without threads:
//! the encoder follows the frames' own size (created from the first frame, re-created with a
//! new IDR and SPS when the size changes), a frame after a loss starts with a keyframe, and
//! passed-through H.264 resumes only at one of the source's keyframes after a gap. While the
//! source is lost the thread sends a [`slate`] once a second instead of nothing.
//! [`live::FramePipeline`] puts the viewers' settings in front of it: frame rate, picture
//! size and image controls on the frames, bitrate and frame rate on the running encoder.
//! [`capture::Capture`] starts and stops the source this thread reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

pub mod capture;
pub mod live;
pub mod motion;
pub mod slate;
pub mod snapshot;
pub mod vp8_lane;

pub use live::{ApplyLog, FramePipeline, FrameReport};
pub use snapshot::SnapshotDesk;
pub use vp8_lane::{Vp8Demand, Vp8Lane};

use crate::control::PipelineSettingsReader;
use crate::h264::encoder::{EncodedFrame, Encoder, EncoderSettings, KeyframeRequest};
use crate::image::I420Frame;
use crate::source::supervisor::{SourceFeed, SourceFrame, SourceHealth};
use crate::source::{H264AccessUnit, Payload};

/// An encoded frame on its way to the WebRTC track.
#[derive(Debug)]
pub struct OutFrame {
    pub encoded: EncodedFrame,
    /// The same picture in VP8, while VP8 viewers watch (see [`vp8_lane`]).
    pub vp8: Option<EncodedFrame>,
    pub index: u32,
    pub capture_us: u64,
}

/// The encode thread's name (under Linux's 15-byte limit, so it shows in `top -H` and
/// `/proc/*/task/*/comm` whole).
pub const ENCODE_THREAD_NAME: &str = "sl-encode";

/// How often the encode thread looks at its stop flag while no frames come.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The configured rates; sizes and frame rate come from the frames and the source.
#[derive(Debug, Clone, Copy)]
pub struct EncodeSettings {
    /// Target bitrate, bits per second.
    pub bitrate: u32,
    /// Periodic IDR interval (a safety net; zero disables it).
    pub keyframe_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    H264,
}

/// Turns supervised source frames into access units every viewer can decode.
pub struct FrameEncoder {
    settings: EncodeSettings,
    /// Set by PLI/FIR from the SFU; survives encoder re-creation.
    keyframes: KeyframeRequest,
    encoder: Option<Encoder>,
    /// A size the encoder refused: its frames are dropped without retrying each one.
    refused: Option<(u32, u32)>,
    last_seq: Option<u64>,
    last_kind: Option<Kind>,
    /// Passthrough lost a reference: drop deltas until the source's next keyframe.
    await_keyframe: bool,
    /// Deltas dropped while waiting for a keyframe, and encode failures (for the logs).
    dropped_deltas: u64,
    encode_errors: u64,
    /// VP8 of the same frames, while wanted; the last one waits in `vp8_out`.
    vp8: Vp8Lane,
    vp8_out: Option<EncodedFrame>,
    /// The last raw picture encoded, kept (by move, no copy) for the slate.
    last_picture: Option<I420Frame>,
    /// A slate went out since the last source frame: the next raw one starts whole.
    slated: bool,
}

impl FrameEncoder {
    pub fn new(settings: EncodeSettings, keyframes: KeyframeRequest, vp8: Vp8Lane) -> Self {
        FrameEncoder {
            settings,
            keyframes,
            vp8,
            vp8_out: None,
            encoder: None,
            last_picture: None,
            slated: false,
            refused: None,
            last_seq: None,
            last_kind: None,
            await_keyframe: false,
            dropped_deltas: 0,
            encode_errors: 0,
        }
    }

    /// New target bitrate and frame rate: set on the running encoder (openh264 changes
    /// both live, no keyframe); a new encoder starts with them. Should openh264 refuse, the
    /// encoder is re-created with them at the next frame (costing one IDR).
    pub fn set_rates(&mut self, bitrate: u32, fps: u32) {
        self.settings.bitrate = bitrate;
        self.vp8.set_bitrate(bitrate);
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let now = (encoder.settings().bitrate, encoder.settings().fps);
        if now == (bitrate, fps.clamp(1, 240)) {
            return;
        }
        match encoder.set_rates(bitrate, fps.clamp(1, 240)) {
            Ok(()) => debug!(bitrate, fps, "encoder rates changed live"),
            Err(e) => {
                warn!("{e:#}; re-creating the encoder at {bitrate} bit/s, {fps} fps");
                self.encoder = None;
                self.refused = None;
            }
        }
    }

    /// The VP8 frame made with the last access unit, if VP8 is wanted.
    pub fn take_vp8(&mut self) -> Option<EncodedFrame> {
        self.vp8_out.take()
    }

    /// The access unit to send for `frame`, if any. `fps`: the rate frames arrive at (a new
    /// encoder is made for it).
    pub fn process(&mut self, frame: SourceFrame, fps: u32) -> Option<EncodedFrame> {
        self.vp8_out = None;
        // Frames dropped before us, or a reopened source: references are broken.
        let gap = self.last_seq.is_none_or(|l| frame.seq != l.wrapping_add(1));
        self.last_seq = Some(frame.seq);
        let kind = match frame.captured.payload {
            Payload::Raw(_) => Kind::Raw,
            Payload::H264(_) => Kind::H264,
        };
        // Raw after passthrough (or the reverse): viewers' decoders hold the other stream's
        // pictures, so the new one must start whole.
        let switched = self.last_kind.is_some_and(|k| k != kind);
        self.last_kind = Some(kind);
        match frame.captured.payload {
            // A raw gap needs no keyframe: the encoder predicts from its own last output,
            // which viewers have. After a loss we send one anyway, so the picture viewers
            // held is replaced at once and anyone who joined meanwhile gets video.
            Payload::Raw(raw) => {
                let keyframe = frame.resumed || switched || std::mem::take(&mut self.slated);
                let out = self.encode_raw(&raw, fps, keyframe);
                self.vp8_out = self.vp8.raw(&raw, fps, keyframe);
                self.last_picture = Some(raw);
                out
            }
            Payload::H264(au) => {
                self.last_picture = None;
                // After a slate the source's stream must restart at one of its keyframes.
                let broken = gap || switched || std::mem::take(&mut self.slated);
                let out = self.pass_through(au, broken)?;
                self.vp8_out = self.vp8.h264(&out.data, fps);
                Some(out)
            }
        }
    }

    /// The last raw picture encoded (`None` after passthrough), for the slate.
    pub fn last_picture(&self) -> Option<&I420Frame> {
        self.last_picture.as_ref()
    }

    /// Encode a slate picture: the first of a loss is a keyframe (every viewer's picture
    /// changes at once), the rest are deltas unless a viewer asks for a keyframe. The
    /// source's next frame starts whole again.
    pub fn slate(&mut self, picture: &I420Frame, fps: u32) -> Option<EncodedFrame> {
        self.vp8_out = None;
        let keyframe = !self.slated;
        self.slated = true;
        self.last_kind = Some(Kind::Raw);
        let out = self.encode_raw(picture, fps, keyframe);
        self.vp8_out = self.vp8.raw(picture, fps, keyframe);
        out
    }

    fn encode_raw(&mut self, raw: &I420Frame, fps: u32, keyframe: bool) -> Option<EncodedFrame> {
        let size = (raw.width, raw.height);
        let current = self
            .encoder
            .as_ref()
            .map(|e| (e.settings().width, e.settings().height));
        if current != Some(size) {
            if self.refused == Some(size) {
                return None;
            }
            let settings = EncoderSettings {
                width: raw.width,
                height: raw.height,
                fps: fps.clamp(1, 240),
                bitrate: self.settings.bitrate,
                keyframe_interval: self.settings.keyframe_interval,
            };
            match Encoder::new(settings) {
                // A fresh encoder opens with an IDR carrying the new SPS/PPS.
                Ok(e) => {
                    match current {
                        Some((w, h)) => info!(
                            "source frames changed from {w}x{h} to {}x{}: new encoder",
                            size.0, size.1
                        ),
                        None => info!("encoding {}x{} frames", size.0, size.1),
                    }
                    self.encoder = Some(e);
                    self.refused = None;
                }
                Err(e) => {
                    warn!("cannot encode the source's frames: {e:#}; dropping them");
                    self.encoder = None;
                    self.refused = Some(size);
                    return None;
                }
            }
        }
        let encoder = self.encoder.as_mut()?;
        if self.keyframes.take() || keyframe {
            encoder.force_keyframe();
        }
        match encoder.encode(raw) {
            Ok(out) => out,
            Err(e) => {
                self.encode_errors += 1;
                // The first and then every 100th, not 30 lines a second.
                if self.encode_errors == 1 || self.encode_errors.is_multiple_of(100) {
                    warn!(
                        failures = self.encode_errors,
                        "encoding a frame failed: {e:#}"
                    );
                }
                None
            }
        }
    }

    fn pass_through(&mut self, au: H264AccessUnit, broken: bool) -> Option<EncodedFrame> {
        if broken && !self.await_keyframe {
            debug!("passthrough: references broken; waiting for the source's next keyframe");
            self.await_keyframe = true;
        }
        if self.await_keyframe {
            if !au.keyframe {
                self.dropped_deltas += 1;
                return None;
            }
            debug!(
                dropped = self.dropped_deltas,
                "passthrough resumes at a keyframe"
            );
            self.await_keyframe = false;
            self.dropped_deltas = 0;
        }
        Some(EncodedFrame {
            data: au.data,
            keyframe: au.keyframe,
        })
    }
}

/// What an encode thread works with besides its frames.
pub struct EncodeContext {
    /// Periodic IDR interval (a safety net; zero disables it).
    pub keyframe_interval: Duration,
    pub keyframes: KeyframeRequest,
    /// Whether VP8 is wanted, and PLI/FIR on the VP8 track.
    pub vp8: Vp8Demand,
    pub vp8_keyframes: KeyframeRequest,
    /// The viewers' settings, read once per frame; the encoder's start bitrate is theirs
    /// (the command line's `--bitrate` until saved or viewers' settings say otherwise).
    pub live: PipelineSettingsReader,
    /// Where the thread says what it sees (changes only).
    pub report: watch::Sender<FrameReport>,
    pub applied: ApplyLog,
    /// Snapshot orders, served from the next frame.
    pub snapshots: SnapshotDesk,
    /// Where motion events go (see [`motion`]).
    pub motion: motion::MotionOutbox,
}

/// A running encode thread. Stop it with [`EncodeThread::stop`].
pub struct EncodeThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EncodeThread {
    /// Start reading `feed` (from now on) and encoding. Frames go to `out`; PLI/FIR handed
    /// to `ctx.keyframes` make the next raw frame an IDR. The first frame sent is a keyframe.
    pub fn start(
        feed: SourceFeed,
        ctx: EncodeContext,
        out: mpsc::Sender<OutFrame>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let reader = feed.reader();
        let handle = std::thread::Builder::new()
            .name(ENCODE_THREAD_NAME.into())
            .spawn(move || {
                let EncodeContext {
                    keyframe_interval,
                    keyframes,
                    vp8,
                    vp8_keyframes,
                    mut live,
                    report,
                    applied,
                    snapshots,
                    motion,
                } = ctx;
                let settings = EncodeSettings {
                    bitrate: live.get().0.bitrate,
                    keyframe_interval,
                };
                let vp8 = Vp8Lane::new(vp8, vp8_keyframes, settings.bitrate);
                let encoder = FrameEncoder::new(settings, keyframes, vp8);
                let mut pipeline = FramePipeline::new(encoder, live, applied)
                    .serving_snapshots(snapshots)
                    .reporting_motion(motion);
                let (mut index, mut last_out) = (0, None::<Instant>);
                while !stop_flag.load(Ordering::Relaxed) {
                    let (encoded, capture_us) = match reader.next(IDLE_POLL) {
                        Some(frame) => {
                            index = frame.captured.index;
                            let capture_us = frame.captured.capture_us;
                            let encoded = pipeline.process(frame, feed.fps());
                            let seen = pipeline.report();
                            report.send_if_modified(|r| {
                                let news = *r != seen;
                                *r = seen;
                                news
                            });
                            (encoded, capture_us)
                        }
                        // Nothing comes while the source is lost: a slate, once a second
                        // (tried once a second even if the encoder gives nothing).
                        None => {
                            let due = last_out.is_none_or(|t| t.elapsed() >= slate::SLATE_PERIOD);
                            if !due || !matches!(feed.health(), SourceHealth::Lost { .. }) {
                                continue;
                            }
                            last_out = Some(Instant::now());
                            (pipeline.slate(), crate::barcode::now_us())
                        }
                    };
                    let Some(encoded) = encoded else {
                        continue;
                    };
                    last_out = Some(Instant::now());
                    let frame = OutFrame {
                        encoded,
                        vp8: pipeline.take_vp8(),
                        index,
                        capture_us,
                    };
                    // Blocking: a briefly slow network side slows us down (the supervisor's
                    // queue absorbs it) rather than dropping a frame later ones reference.
                    if out.blocking_send(frame).is_err() {
                        break; // receiver gone: the session is over
                    }
                }
            })?;
        Ok(EncodeThread {
            stop,
            handle: Some(handle),
        })
    }

    /// True once the thread has ended by itself (receiver gone) or panicked.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Ask the thread to stop without waiting (it ends after its current frame).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Ask the thread to stop and wait for it (at most about one poll interval plus one
    /// encode). An error means it panicked.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.request_stop();
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(anyhow::anyhow!("encode thread panicked")),
            Err(e) => Err(anyhow::anyhow!("joining the encode thread: {e}")),
        }
    }
}

impl Drop for EncodeThread {
    fn drop(&mut self) {
        // Dropped without `stop` (session aborted): the thread still ends by itself.
        self.request_stop();
    }
}

#[cfg(test)]
mod tests;
