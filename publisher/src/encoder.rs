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

use crate::frame::I420Frame;
use crate::nal::{self, NAL_IDR, NAL_PPS, NAL_SPS};

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
    pub data: Vec<u8>,
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

    fn take(&self) -> bool {
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
    frames: u64,
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
        let idr_every = (settings.keyframe_interval.as_secs_f64() * fps as f64).round() as u64;
        Ok(Encoder {
            inner,
            settings,
            idr_every,
            since_idr: 0,
            frames: 0,
            requests: KeyframeRequest::default(),
            sps: None,
            pps: None,
        })
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
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
        let ts = Timestamp::from_millis(self.frames * 1000 / self.settings.fps as u64);
        self.frames += 1;
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
            return EncodedFrame { data, keyframe };
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
        EncodedFrame { data, keyframe }
    }
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
