//! H.264 encoding with openh264: Constrained Baseline level 3.1 (SDP `profile-level-id=42e01f`),
//! bitrate rate control, no skipped frames, whole Annex-B access units with SPS/PPS in front of
//! every IDR, periodic IDR as a safety net and keyframes on request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openh264::encoder::{
    BitRate, Complexity, EncoderConfig, FrameRate, FrameType, Level, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use crate::h264::nal::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::image::I420Frame;

/// Largest frame openh264 encodes.
const MAX_DIM: u32 = 3840;

/// What the encoder is asked to produce.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
    /// Periodic IDR interval (a safety net). Zero disables periodic IDRs.
    pub keyframe_interval: Duration,
}

/// One encoded access unit: Annex-B NAL units with start codes, SPS and PPS first if it is a
/// keyframe.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Shared, so a passed-through access unit reaches the track without a copy.
    pub data: bytes::Bytes,
    pub keyframe: bool,
}

/// A handle other threads use to ask for a keyframe (on PLI/FIR). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct KeyframeRequest(Arc<AtomicBool>);

impl KeyframeRequest {
    /// The next encoded frame will be an IDR.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a keyframe was requested since the last call (and clear the request).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The publisher's H.264 encoder. Usable standalone (benchmarks encode with it directly).
pub struct Encoder {
    inner: openh264::encoder::Encoder,
    settings: EncoderSettings,
    /// Frames between periodic IDRs (0 = never).
    idr_every: u64,
    since_idr: u64,
    /// The next frame's timestamp for openh264: one frame period after the previous one, so
    /// it keeps growing when the frame rate changes.
    next_ts_ms: u64,
    requests: KeyframeRequest,
    /// The last SPS/PPS seen, put in front of an IDR should openh264 ever leave them out.
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl Encoder {
    pub fn new(settings: EncoderSettings) -> anyhow::Result<Self> {
        let EncoderSettings {
            width,
            height,
            fps,
            bitrate,
            ..
        } = settings;
        if width < 16 || height < 16 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            anyhow::bail!("encoder: {width}x{height} must be even and at least 16x16");
        }
        if width.max(height) > MAX_DIM || width.min(height) > 2160 {
            anyhow::bail!("encoder: {width}x{height} is larger than openh264's 3840x2160");
        }
        if !(1..=240).contains(&fps) {
            anyhow::bail!("encoder: fps {fps} is outside 1..=240");
        }
        if !(10_000..=100_000_000).contains(&bitrate) {
            anyhow::bail!("encoder: bitrate {bitrate} bit/s is outside 10k..100M");
        }
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            // A skipped frame is a frame viewers never get; bitrate overshoot is the lesser evil.
            .skip_frames(false)
            .complexity(Complexity::Medium)
            // Single slice per frame, one thread: predictable CPU on a small shared machine.
            .num_threads(1);
        let inner = openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), config)
            .context("creating the openh264 encoder")?;
        let idr_every = idr_every(settings.keyframe_interval, fps);
        Ok(Encoder {
            inner,
            settings,
            idr_every,
            since_idr: 0,
            next_ts_ms: 0,
            requests: KeyframeRequest::default(),
            sps: None,
            pps: None,
        })
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Change the target bitrate and the frame rate while encoding, without a new encoder or
    /// a keyframe: openh264's `SetOption` (`ENCODER_OPTION_MAX_BITRATE` and
    /// `ENCODER_OPTION_BITRATE` for the one spatial layer, `ENCODER_OPTION_FRAME_RATE`); its
    /// rate control notices the change at the next frame and re-plans its per-frame budget.
    /// The frame rate must be the rate frames really arrive at, or the bitrate misses by the
    /// same factor (the budget per frame is bitrate / fps).
    pub fn set_rates(&mut self, bitrate: u32, fps: u32) -> anyhow::Result<()> {
        if !(1..=240).contains(&fps) {
            anyhow::bail!("encoder: fps {fps} is outside 1..=240");
        }
        if !(10_000..=100_000_000).contains(&bitrate) {
            anyhow::bail!("encoder: bitrate {bitrate} bit/s is outside 10k..100M");
        }
        use openh264_sys2::{
            SBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_FRAME_RATE,
            ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
        };
        fn check(what: &str, rc: std::os::raw::c_int) -> anyhow::Result<()> {
            if rc == 0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!("openh264 refused {what} (error {rc})"))
            }
        }
        // SAFETY: only rate options are set, which openh264 documents as changeable while
        // encoding; nothing the crate relies on (size, format, threads) is touched.
        let api = unsafe { self.inner.raw_api() };
        if fps != self.settings.fps {
            let mut rate = fps as f32;
            // SAFETY: the encoder is initialised (created in `new`); the option takes a
            // pointer to an f32 that lives across the call.
            let rc = unsafe {
                api.set_option(
                    ENCODER_OPTION_FRAME_RATE,
                    std::ptr::addr_of_mut!(rate).cast(),
                )
            };
            check("the frame rate", rc)?;
        }
        if bitrate != self.settings.bitrate {
            let bits = i32::try_from(bitrate)?;
            // The target (for all layers, which openh264 spreads over our one layer) and the
            // layer's ceiling, set equal as at creation. openh264 refuses a ceiling below the
            // target, so going up the ceiling moves first and going down the target does.
            let max = (
                ENCODER_OPTION_MAX_BITRATE,
                SPATIAL_LAYER_0,
                "the maximum bitrate",
            );
            let target = (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, "the bitrate");
            let order = if bitrate > self.settings.bitrate {
                [max, target]
            } else {
                [target, max]
            };
            for (option, layer, what) in order {
                let mut info = SBitrateInfo {
                    iLayer: layer,
                    iBitrate: bits,
                };
                // SAFETY: as above; the option takes a pointer to an SBitrateInfo.
                let rc = unsafe { api.set_option(option, std::ptr::addr_of_mut!(info).cast()) };
                check(what, rc)?;
            }
        }
        self.settings.bitrate = bitrate;
        self.settings.fps = fps;
        self.idr_every = idr_every(self.settings.keyframe_interval, fps);
        Ok(())
    }

    /// A handle to request keyframes from other threads.
    pub fn keyframe_request(&self) -> KeyframeRequest {
        self.requests.clone()
    }

    /// Make the next encoded frame an IDR.
    pub fn force_keyframe(&mut self) {
        self.requests.request();
    }

    /// Encode one frame. `Ok(None)` when the encoder produced nothing to send (a skip).
    pub fn encode(&mut self, frame: &I420Frame) -> anyhow::Result<Option<EncodedFrame>> {
        let (w, h) = (self.settings.width, self.settings.height);
        if (frame.width, frame.height) != (w, h) {
            anyhow::bail!(
                "encoder: frame is {}x{}, encoder is {w}x{h}",
                frame.width,
                frame.height
            );
        }
        // openh264 reads through raw pointers: the planes must really be this big.
        let (wu, hu) = (w as usize, h as usize);
        if frame.y.len() < wu * hu
            || frame.u.len() < wu / 2 * (hu / 2)
            || frame.v.len() < wu / 2 * (hu / 2)
        {
            anyhow::bail!("encoder: frame planes are shorter than {w}x{h} I420");
        }
        let periodic = self.idr_every > 0 && self.since_idr >= self.idr_every;
        let requested = self.requests.take();
        let want_idr = periodic || requested;
        if want_idr {
            self.inner.force_intra_frame();
        }
        let ts = Timestamp::from_millis(self.next_ts_ms);
        self.next_ts_ms += 1000 / u64::from(self.settings.fps.max(1));
        let bs = self
            .inner
            .encode_at(&Planes(frame), ts)
            .context("openh264 encode")?;
        if matches!(bs.frame_type(), FrameType::Skip | FrameType::Invalid) {
            if requested {
                self.requests.request(); // keep the request for the next frame
            }
            return Ok(None);
        }
        let data = bs.to_vec();
        if data.is_empty() {
            if requested {
                self.requests.request();
            }
            return Ok(None);
        }
        Ok(Some(self.finish(data)))
    }

    /// Classify the access unit and make sure an IDR carries SPS and PPS.
    fn finish(&mut self, data: Vec<u8>) -> EncodedFrame {
        let nals = nal::split_annex_b(&data);
        let types: Vec<u8> = nals.iter().filter_map(|n| nal::nal_type(n)).collect();
        for n in &nals {
            match nal::nal_type(n) {
                Some(NAL_SPS) => self.sps = Some(n.to_vec()),
                Some(NAL_PPS) => self.pps = Some(n.to_vec()),
                _ => {}
            }
        }
        let keyframe = types.contains(&NAL_IDR);
        if !keyframe {
            self.since_idr += 1;
            return EncodedFrame {
                data: data.into(),
                keyframe,
            };
        }
        self.since_idr = 1;
        let has_ps = types.contains(&NAL_SPS) && types.contains(&NAL_PPS);
        let data = match (has_ps, &self.sps, &self.pps) {
            (false, Some(sps), Some(pps)) => {
                let mut out = Vec::with_capacity(data.len() + sps.len() + pps.len() + 8);
                for ps in [sps, pps] {
                    out.extend_from_slice(&[0, 0, 0, 1]);
                    out.extend_from_slice(ps);
                }
                out.extend_from_slice(&data);
                out
            }
            _ => data,
        };
        EncodedFrame {
            data: data.into(),
            keyframe,
        }
    }
}

/// Frames between periodic IDRs for an interval at `fps` (0: never).
fn idr_every(interval: Duration, fps: u32) -> u64 {
    (interval.as_secs_f64() * f64::from(fps)).round() as u64
}

/// Lets openh264 read an [`I420Frame`] in place.
struct Planes<'a>(&'a I420Frame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

#[cfg(test)]
mod tests;
