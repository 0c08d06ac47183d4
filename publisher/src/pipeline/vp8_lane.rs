//! VP8 beside H.264, for viewers whose browsers cannot decode H.264 (Debian's Firefox ESR,
//! hardened Firefox installs without Cisco's plugin). The SFU forwards without transcoding,
//! so such viewers need a VP8 stream from us.
//!
//! The encoder costs a core's worth of work at 720p, so it runs only while the server says
//! some viewer is sent VP8 ([`Vp8Demand`], from `demand`'s `vp8_viewers`); H.264 viewers
//! never pay for it. Raw frames are encoded twice, from the same picture. Passed-through
//! H.264 (an RTSP camera) is decoded first, and only while VP8 is wanted: the decoder
//! starts at the camera's next keyframe.
//!
//! Without VP8 in the build (the `vp8` cargo feature off, or not Linux: see `build.rs`) the
//! lane never produces anything and the SFU connection offers no VP8 track ([`AVAILABLE`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::h264::encoder::{EncodedFrame, KeyframeRequest};
use crate::image::I420Frame;

/// Whether this build can send VP8.
pub const AVAILABLE: bool = cfg!(sightline_vp8);

/// Whether some viewer is sent VP8 now: set by the session, read by the encode thread for
/// each frame.
#[derive(Debug, Clone, Default)]
pub struct Vp8Demand(Arc<AtomicBool>);

impl Vp8Demand {
    pub fn set(&self, wanted: bool) {
        self.0.store(wanted, Ordering::Relaxed);
    }

    pub fn wanted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The VP8 side of the encode thread. Plain state: the decisions (start and stop with the
/// demand, a keyframe first and on request, a new encoder when the size changes) are
/// tested without threads.
pub struct Vp8Lane {
    demand: Vp8Demand,
    /// PLI/FIR on the SFU's VP8 track.
    #[cfg_attr(not(sightline_vp8), allow(dead_code))]
    keyframes: KeyframeRequest,
    bitrate: u32,
    #[cfg(sightline_vp8)]
    encoder: Option<crate::vp8::Vp8Encoder>,
    /// For passed-through H.264 only.
    #[cfg(sightline_vp8)]
    decoder: Option<openh264::decoder::Decoder>,
    /// A size the encoder refused: not retried for each frame.
    #[cfg(sightline_vp8)]
    refused: Option<(u32, u32)>,
    #[cfg_attr(not(sightline_vp8), allow(dead_code))]
    failures: u64,
}

impl Vp8Lane {
    pub fn new(demand: Vp8Demand, keyframes: KeyframeRequest, bitrate: u32) -> Self {
        Vp8Lane {
            demand,
            keyframes,
            bitrate,
            #[cfg(sightline_vp8)]
            encoder: None,
            #[cfg(sightline_vp8)]
            decoder: None,
            #[cfg(sightline_vp8)]
            refused: None,
            failures: 0,
        }
    }

    /// Whether the encoder runs now.
    pub fn running(&self) -> bool {
        #[cfg(sightline_vp8)]
        return self.encoder.is_some();
        #[cfg(not(sightline_vp8))]
        false
    }

    /// The target bitrate, as H.264's: a VP8 viewer gets the picture quality the camera's
    /// settings ask for.
    pub fn set_bitrate(&mut self, bitrate: u32) {
        if self.bitrate == bitrate {
            return;
        }
        self.bitrate = bitrate;
        #[cfg(sightline_vp8)]
        if let Some(encoder) = self.encoder.as_mut() {
            if let Err(e) = encoder.set_bitrate(bitrate) {
                tracing::warn!("{e:#}; re-creating the VP8 encoder at {bitrate} bit/s");
                self.encoder = None;
            }
        }
    }

    /// `frame`, in VP8, if VP8 is wanted. `keyframe`: the H.264 side starts afresh too
    /// (after a loss), so VP8 viewers' pictures are replaced at once as well.
    #[cfg_attr(not(sightline_vp8), allow(unused_variables))]
    pub fn raw(&mut self, frame: &I420Frame, fps: u32, keyframe: bool) -> Option<EncodedFrame> {
        if !self.demand.wanted() {
            self.stop();
            return None;
        }
        #[cfg(sightline_vp8)]
        return self.encode(frame, fps, keyframe);
        #[cfg(not(sightline_vp8))]
        None
    }

    /// A passed-through H.264 access unit, decoded and encoded again in VP8, if VP8 is
    /// wanted.
    #[cfg_attr(not(sightline_vp8), allow(unused_variables))]
    pub fn h264(&mut self, access_unit: &[u8], fps: u32) -> Option<EncodedFrame> {
        if !self.demand.wanted() {
            self.stop();
            return None;
        }
        #[cfg(sightline_vp8)]
        {
            let picture = self.decode(access_unit)?;
            self.encode(&picture, fps, false)
        }
        #[cfg(not(sightline_vp8))]
        None
    }

    /// Nobody is sent VP8 any more: free the encoder (and decoder). The next start begins
    /// with a keyframe.
    fn stop(&mut self) {
        #[cfg(sightline_vp8)]
        if self.encoder.take().is_some() {
            tracing::info!("no VP8 viewers: VP8 encoder stopped");
            self.decoder = None;
        }
    }

    #[cfg(sightline_vp8)]
    fn encode(&mut self, frame: &I420Frame, fps: u32, keyframe: bool) -> Option<EncodedFrame> {
        use crate::vp8::{Vp8Encoder, Vp8Settings};
        let size = (frame.width, frame.height);
        let current = self
            .encoder
            .as_ref()
            .map(|e| (e.settings().width, e.settings().height));
        if current != Some(size) {
            if self.refused == Some(size) {
                return None;
            }
            let settings = Vp8Settings {
                width: frame.width,
                height: frame.height,
                fps: fps.clamp(1, 240),
                bitrate: self.bitrate,
            };
            match Vp8Encoder::new(settings) {
                // A new encoder opens with a keyframe.
                Ok(e) => {
                    tracing::info!("VP8 viewers watch: encoding VP8 at {}x{}", size.0, size.1);
                    self.encoder = Some(e);
                    self.refused = None;
                }
                Err(e) => {
                    tracing::warn!("cannot encode VP8: {e:#}; VP8 viewers get nothing");
                    self.refused = Some(size);
                    return None;
                }
            }
        }
        let encoder = self.encoder.as_mut()?;
        if self.keyframes.take() || keyframe {
            encoder.force_keyframe();
        }
        match encoder.encode(frame) {
            Ok(out) => out,
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(100) {
                    tracing::warn!(failures = self.failures, "VP8 encoding failed: {e:#}");
                }
                None
            }
        }
    }

    /// Decode passed-through H.264 to a picture for the VP8 encoder.
    #[cfg(sightline_vp8)]
    fn decode(&mut self, access_unit: &[u8]) -> Option<I420Frame> {
        use openh264::formats::YUVSource;
        if self.decoder.is_none() {
            match openh264::decoder::Decoder::new() {
                Ok(d) => self.decoder = Some(d),
                Err(e) => {
                    tracing::warn!("cannot decode the camera's H.264 for VP8 viewers: {e}");
                    return None;
                }
            }
        }
        let yuv = match self.decoder.as_mut()?.decode(access_unit) {
            Ok(Some(yuv)) => yuv,
            // Parameter sets only, or a delta before the first keyframe: nothing to show.
            Ok(None) => return None,
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(100) {
                    tracing::debug!(failures = self.failures, "decoding for VP8: {e}");
                }
                return None;
            }
        };
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        // Even sizes only (the VP8 encoder, like every 4:2:0 consumer here, wants them).
        let (w, h) = (w & !1, h & !1);
        let plane = |data: &[u8], stride: usize, width: usize, rows: usize| {
            let mut out = Vec::with_capacity(width * rows);
            for r in 0..rows {
                out.extend_from_slice(&data[r * stride..r * stride + width]);
            }
            out
        };
        Some(I420Frame {
            width: w as u32,
            height: h as u32,
            y: plane(yuv.y(), ys, w, h),
            u: plane(yuv.u(), us, w / 2, h / 2),
            v: plane(yuv.v(), vs, w / 2, h / 2),
        })
    }
}

#[cfg(all(test, sightline_vp8))]
mod tests {
    use super::*;
    use crate::h264::encoder::{Encoder, EncoderSettings};
    use std::time::Duration;

    fn picture(n: u32, width: u32, height: u32) -> I420Frame {
        let mut f = I420Frame::black(width, height);
        for (i, p) in f.y.iter_mut().enumerate() {
            *p = ((i as u32 % width + n * 4) % 220 + 16) as u8;
        }
        f
    }

    fn lane() -> (Vp8Lane, Vp8Demand, KeyframeRequest) {
        let demand = Vp8Demand::default();
        let keyframes = KeyframeRequest::default();
        let lane = Vp8Lane::new(demand.clone(), keyframes.clone(), 500_000);
        (lane, demand, keyframes)
    }

    #[test]
    fn runs_only_while_wanted_and_restarts_with_a_keyframe() {
        let (mut lane, demand, keyframes) = lane();
        assert!(lane.raw(&picture(0, 320, 240), 30, false).is_none());
        assert!(!lane.running(), "nobody asked");
        demand.set(true);
        let first = lane.raw(&picture(1, 320, 240), 30, false).unwrap();
        assert!(first.keyframe, "starts with a keyframe");
        let next = lane.raw(&picture(2, 320, 240), 30, false).unwrap();
        assert!(!next.keyframe);
        keyframes.request();
        assert!(lane.raw(&picture(3, 320, 240), 30, false).unwrap().keyframe);
        assert!(lane.raw(&picture(4, 320, 240), 30, true).unwrap().keyframe);
        demand.set(false);
        assert!(lane.raw(&picture(5, 320, 240), 30, false).is_none());
        assert!(!lane.running(), "stopped");
        demand.set(true);
        assert!(lane.raw(&picture(6, 320, 240), 30, false).unwrap().keyframe);
        // A new size: a new encoder, from a keyframe.
        assert!(lane.raw(&picture(7, 640, 480), 30, false).unwrap().keyframe);
    }

    #[test]
    fn passed_through_h264_is_reencoded_from_its_keyframe_on() {
        let mut h264 = Encoder::new(EncoderSettings {
            width: 320,
            height: 240,
            fps: 30,
            bitrate: 500_000,
            keyframe_interval: Duration::ZERO,
        })
        .unwrap();
        let aus: Vec<_> = (0..5)
            .filter_map(|n| h264.encode(&picture(n, 320, 240)).unwrap())
            .collect();
        let (mut lane, demand, _) = lane();
        assert!(lane.h264(&aus[0].data, 30).is_none(), "not wanted");
        demand.set(true);
        // Joined mid-stream: a delta cannot be decoded.
        assert!(lane.h264(&aus[1].data, 30).is_none());
        let mut lane = Vp8Lane::new(demand.clone(), KeyframeRequest::default(), 500_000);
        let out = lane.h264(&aus[0].data, 30).unwrap();
        assert!(out.keyframe);
        assert!(lane.h264(&aus[1].data, 30).is_some());
        let mut decoder = crate::vp8::Vp8Decoder::new().unwrap();
        let decoded = decoder.decode(&out.data).unwrap().unwrap();
        assert_eq!((decoded.width, decoded.height), (320, 240));
        assert!(
            lane.h264(b"\x00\x00\x00\x01garbage", 30).is_none(),
            "no panic"
        );
    }
}
