//! Barcoded H.264 frames made right here, for testing the viewer's media path without a
//! publisher (the publisher crate's test-pattern source does the same for real runs).

use openh264::encoder::{Encoder, EncoderConfig, FrameType};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;
use sightline_publisher::barcode::{self, Stamp};
use sightline_publisher::image::I420Frame;

/// One encoded access unit.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Annex-B access unit (SPS/PPS included with every IDR).
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub stamp: Stamp,
}

/// Encodes a moving pattern with a barcode, frame after frame.
pub struct SyntheticEncoder {
    encoder: Encoder,
    width: u32,
    height: u32,
    tag: u16,
    next: u32,
}

impl SyntheticEncoder {
    pub fn new(width: u32, height: u32, camera_id: &str) -> anyhow::Result<Self> {
        // Skipped frames would leave holes in the frame numbers.
        let config = EncoderConfig::new().skip_frames(false);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(SyntheticEncoder {
            encoder,
            width,
            height,
            tag: barcode::tag_for(camera_id),
            next: 0,
        })
    }

    /// Make the next frame an IDR.
    pub fn force_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    pub fn encode_next(&mut self) -> anyhow::Result<EncodedFrame> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut f = I420Frame::black(self.width, self.height);
        // Diagonal stripes that move each frame, so P-frames carry real data.
        let strip = barcode::strip_height(w).min(h);
        let shift = self.next as usize * 3;
        for row in strip..h {
            for col in 0..w {
                f.y[row * w + col] = (((row + col + shift) / 8 % 2) * 160 + 40) as u8;
            }
        }
        let stamp = Stamp {
            frame: self.next,
            capture_us: barcode::now_us(),
            tag: self.tag,
        };
        barcode::burn(&mut f, &stamp);
        self.next += 1;
        let mut buf = f.y;
        buf.extend_from_slice(&f.u);
        buf.extend_from_slice(&f.v);
        let yuv = YUVBuffer::from_vec(buf, w, h);
        let bs = self.encoder.encode(&yuv)?;
        Ok(EncodedFrame {
            keyframe: matches!(bs.frame_type(), FrameType::IDR),
            data: bs.to_vec(),
            stamp,
        })
    }
}
