//! Decoding a camera's H.264 for re-encoding, with openh264. Its decoder takes what cameras
//! send beyond Baseline: CABAC, 8x8 transforms (High) and B slices, which it reorders into
//! display order when not flushed after every access unit (so pictures come out a few
//! frames late on streams with B-frames, on time otherwise).

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::image::I420Frame;

pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> anyhow::Result<Self> {
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| anyhow::anyhow!("starting the H.264 decoder: {e}"))?;
        Ok(H264Decoder { decoder })
    }

    /// Decode one Annex-B access unit. `Ok(None)`: no picture out yet (parameter sets only,
    /// or a B-frame stream's reorder delay).
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<I420Frame>, String> {
        match self.decoder.decode(annex_b) {
            Ok(Some(yuv)) => Ok(to_i420(&yuv)),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Copy a decoded picture into a tight I420 frame. An odd width or height loses its last
/// column or row (the encoder takes even sizes only).
fn to_i420(yuv: &DecodedYUV) -> Option<I420Frame> {
    let (w, h) = yuv.dimensions();
    let (w, h) = (w & !1, h & !1);
    if w == 0 || h == 0 {
        return None;
    }
    let (ys, us, vs) = yuv.strides();
    let plane = |src: &[u8], stride: usize, w: usize, h: usize| -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(w * h);
        for row in 0..h {
            out.extend_from_slice(src.get(row * stride..row * stride + w)?);
        }
        Some(out)
    };
    Some(I420Frame {
        width: w as u32,
        height: h as u32,
        y: plane(yuv.y(), ys, w, h)?,
        u: plane(yuv.u(), us, w / 2, h / 2)?,
        v: plane(yuv.v(), vs, w / 2, h / 2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::encoder::{Encoder, EncoderSettings};
    use crate::source::TestPattern;

    #[test]
    fn decodes_our_own_encoder_back_to_the_same_size_and_picture() {
        let pattern = TestPattern::new(320, 240, 30, 9).unwrap();
        let mut enc = Encoder::new(EncoderSettings {
            width: 320,
            height: 240,
            fps: 30,
            bitrate: 1_000_000,
            keyframe_interval: std::time::Duration::from_secs(10),
        })
        .unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for i in 0..10 {
            let au = enc
                .encode(&pattern.render(i, 1000 + i as u64))
                .unwrap()
                .unwrap();
            if let Some(f) = dec.decode(&au.data).unwrap() {
                assert_eq!((f.width, f.height), (320, 240));
                assert_eq!(f.u.len(), 160 * 120);
                // The barcode survives the round trip: these are the right pixels.
                let stamp = crate::barcode::read(&f.y, 320, 320, 240).unwrap();
                assert_eq!(stamp.frame, i);
                decoded += 1;
            }
        }
        assert_eq!(decoded, 10, "no reorder delay without B-frames");
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut dec = H264Decoder::new().unwrap();
        for junk in [&[][..], &[0, 0, 0, 1, 0x65, 1, 2, 3][..], &[0xff; 100][..]] {
            let _ = dec.decode(junk);
        }
    }
}
