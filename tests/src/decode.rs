//! Decode whole H.264 access units (what str0m's frame mode hands out) with openh264, or VP8
//! frames with libvpx (the publisher's binding), and read back the barcode the test-pattern
//! source burned into each frame.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use sightline_publisher::barcode::{self, Stamp};

/// One picture a headless viewer decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFrame {
    /// The barcode, if the picture carried a readable one.
    pub stamp: Option<Stamp>,
    pub width: u32,
    pub height: u32,
    /// Wall clock at decode (same clock as `Stamp::capture_us`): glass-to-glass latency is
    /// `received_at_us - stamp.capture_us`.
    pub received_at_us: u64,
    /// The access unit held an IDR slice.
    pub keyframe: bool,
    /// Which subscription (1, 2, ... counting reconnects) of the viewer received it.
    pub session: u32,
    /// Size of the access unit it was decoded from (H.264 payload bytes).
    pub bytes: usize,
    /// Mean luma on a sparse grid (16: black; tells a picture from a black box).
    pub mean_luma: u8,
}

/// Why an access unit produced no picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("openh264 refused the access unit: {0}")]
    Corrupt(String),
    #[error("openh264 could not start: {0}")]
    Init(String),
}

/// A decoder for one stream. Make a new one for each new peer connection.
pub enum FrameDecoder {
    H264(Decoder),
    Vp8(sightline_publisher::vp8::Vp8Decoder),
}

impl FrameDecoder {
    /// For H.264 (openh264).
    pub fn new() -> Result<Self, DecodeError> {
        let decoder = Decoder::new().map_err(|e| DecodeError::Init(e.to_string()))?;
        Ok(FrameDecoder::H264(decoder))
    }

    /// For VP8 (libvpx).
    pub fn vp8() -> Result<Self, DecodeError> {
        let decoder = sightline_publisher::vp8::Vp8Decoder::new()
            .map_err(|e| DecodeError::Init(format!("{e:#}")))?;
        Ok(FrameDecoder::Vp8(decoder))
    }

    /// Whether decoding may start at this frame: an IDR, or a VP8 keyframe (the frame
    /// tag's inverted key-frame bit is clear).
    pub fn is_keyframe(&self, frame: &[u8]) -> bool {
        match self {
            FrameDecoder::H264(_) => has_idr(frame),
            FrameDecoder::Vp8(_) => frame.first().is_some_and(|b| b & 1 == 0),
        }
    }

    /// Decode one frame (for H.264 an Annex-B access unit). `Ok(None)`: accepted but no
    /// picture yet (e.g. only parameter sets). The returned frame has `session` 0 and
    /// `received_at_us` set now.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<DecodedFrame>, DecodeError> {
        let keyframe = self.is_keyframe(access_unit);
        let (stamp, mean_luma, w, h) = match self {
            FrameDecoder::H264(decoder) => {
                let picture = decoder
                    .decode(access_unit)
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                let Some(yuv) = picture else {
                    return Ok(None);
                };
                let (w, h) = yuv.dimensions();
                let (y_stride, _, _) = yuv.strides();
                let stamp = barcode::read(yuv.y(), y_stride, w, h);
                (stamp, mean_luma(yuv.y(), y_stride, w, h), w, h)
            }
            FrameDecoder::Vp8(decoder) => {
                let picture = decoder
                    .decode(access_unit)
                    .map_err(|e| DecodeError::Corrupt(format!("{e:#}")))?;
                let Some(f) = picture else {
                    return Ok(None);
                };
                let (w, h) = (f.width as usize, f.height as usize);
                (barcode::read(&f.y, w, w, h), mean_luma(&f.y, w, w, h), w, h)
            }
        };
        Ok(Some(DecodedFrame {
            stamp,
            width: w as u32,
            height: h as u32,
            received_at_us: barcode::now_us(),
            keyframe,
            session: 0,
            bytes: access_unit.len(),
            mean_luma,
        }))
    }
}

/// The mean of every 8th pixel of every 8th row (cheap beside the decode).
fn mean_luma(y: &[u8], stride: usize, width: usize, height: usize) -> u8 {
    let (mut sum, mut n) = (0u64, 0u64);
    for row in (0..height).step_by(8) {
        let Some(line) = y.get(row * stride..row * stride + width) else {
            break;
        };
        for &p in line.iter().step_by(8) {
            sum += u64::from(p);
            n += 1;
        }
    }
    sum.checked_div(n).unwrap_or(0) as u8
}

/// Does this Annex-B buffer hold an IDR slice (NAL type 5)?
pub fn has_idr(annexb: &[u8]) -> bool {
    nal_types(annexb).any(|t| t == 5)
}

/// NAL unit types in an Annex-B buffer (after each 00 00 01 start code; the 4-byte form
/// ends in the same three bytes).
pub fn nal_types(annexb: &[u8]) -> impl Iterator<Item = u8> + '_ {
    annexb
        .windows(4)
        .filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1)
        .map(|w| w[3] & 0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticEncoder;

    #[test]
    fn decodes_frames_and_reads_their_barcodes() {
        let mut enc = SyntheticEncoder::new(320, 240, "cam-unit").unwrap();
        let frames: Vec<_> = (0..10).map(|_| enc.encode_next().unwrap()).collect();
        assert!(frames[0].keyframe, "the first frame is an IDR");
        assert!(!frames[1].keyframe);
        let mut dec = FrameDecoder::new().unwrap();
        for (i, f) in frames.iter().enumerate() {
            let got = dec
                .decode(&f.data)
                .unwrap()
                .expect("one picture per access unit");
            assert_eq!((got.width, got.height), (320, 240));
            assert_eq!(got.keyframe, f.keyframe, "frame {i}");
            assert_eq!(got.stamp, Some(f.stamp), "frame {i}");
            assert_eq!(got.stamp.unwrap().tag, barcode::tag_for("cam-unit"));
        }
    }

    #[test]
    fn a_p_frame_without_its_keyframe_gives_no_stamp() {
        let mut enc = SyntheticEncoder::new(320, 240, "cam-unit").unwrap();
        let frames: Vec<_> = (0..3).map(|_| enc.encode_next().unwrap()).collect();
        let mut dec = FrameDecoder::new().unwrap();
        // Without SPS/PPS/IDR the decoder must fail or produce nothing readable: never a
        // wrong stamp.
        if let Ok(Some(f)) = dec.decode(&frames[2].data) {
            assert_ne!(f.stamp, Some(frames[2].stamp));
        }
    }

    #[test]
    fn garbage_is_an_error_or_nothing_not_a_panic() {
        let mut dec = FrameDecoder::new().unwrap();
        for junk in [&[][..], &[0, 0, 0, 1, 0x65, 1, 2, 3][..], &[0xff; 64][..]] {
            if let Ok(Some(f)) = dec.decode(junk) {
                assert_eq!(f.stamp, None);
            }
        }
    }

    #[test]
    fn finds_idr_nal_units() {
        assert!(has_idr(&[
            0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x68, 0, 0, 1, 0x65, 9
        ]));
        assert!(!has_idr(&[0, 0, 0, 1, 0x41, 1, 2]));
        assert!(!has_idr(&[]));
    }
}
