//! I420 → JPEG, for snapshots. The frame's video-range BT.601 samples are stretched to
//! JPEG's full range and written as YCbCr 4:2:0 (no RGB on the way); the encoder subsamples
//! the chroma we repeat back to 4:2:0, so the picture keeps the detail it had.

use anyhow::Context;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::chroma::{C_VIDEO_TO_FULL, Y_VIDEO_TO_FULL};
use super::I420Frame;

/// JPEG quality when the caller has no preference (libjpeg's usual default), and the
/// `quality` setting's start value.
pub const DEFAULT_QUALITY: u8 = 80;
/// The `quality` setting's range (libjpeg's scale).
pub const MIN_JPEG_QUALITY: u8 = 1;
pub const MAX_JPEG_QUALITY: u8 = 100;

/// `frame` as a baseline JPEG of quality `quality` (1–100).
pub fn encode_jpeg(frame: &I420Frame, quality: u8) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let width = u16::try_from(w).context("picture too wide for JPEG")?;
    let height = u16::try_from(h).context("picture too tall for JPEG")?;
    anyhow::ensure!(
        w > 0 && h > 0 && frame.y.len() == w * h && frame.u.len() == (w / 2) * (h / 2),
        "not a whole {w}x{h} I420 frame"
    );
    // Interleaved full-range YCbCr, each chroma sample repeated over its 2×2 block.
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let c_row = (row / 2) * (w / 2);
        for col in 0..w {
            let c = c_row + (col / 2).min(w / 2 - 1);
            ycbcr.push(Y_VIDEO_TO_FULL[frame.y[row * w + col] as usize]);
            ycbcr.push(C_VIDEO_TO_FULL[frame.u[c] as usize]);
            ycbcr.push(C_VIDEO_TO_FULL[frame.v[c] as usize]);
        }
    }
    let mut out = Vec::with_capacity(w * h / 4);
    let mut encoder = Encoder::new(&mut out, quality.clamp(1, 100));
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder
        .encode(&ycbcr, width, height, ColorType::Ycbcr)
        .context("encoding the JPEG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::decode_jpeg;

    /// A picture with a bright left half and a dark right half, reddish at the top.
    fn two_halves(w: u32, h: u32) -> I420Frame {
        let mut f = I420Frame::black(w, h);
        for row in 0..h as usize {
            for col in 0..w as usize {
                f.y[row * w as usize + col] = if col < w as usize / 2 { 200 } else { 40 };
            }
        }
        for row in 0..(h / 4) as usize {
            for col in 0..(w / 2) as usize {
                f.v[row * (w / 2) as usize + col] = 200;
            }
        }
        f
    }

    #[test]
    fn a_snapshot_decodes_back_to_the_same_picture() {
        let frame = two_halves(64, 48);
        let jpeg = encode_jpeg(&frame, 90).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "starts with SOI");
        let back = decode_jpeg(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (64, 48));
        // Away from the edge between the halves, luma comes back within a few steps.
        for (col, want) in [(8, 200), (56, 40)] {
            let got = back.y[24 * 64 + col] as i32;
            assert!(
                (got - want).abs() <= 4,
                "column {col}: {got}, wanted {want}"
            );
        }
        // The red top stays red, the rest neutral.
        assert!(back.v[2 * 32 + 8] > 180, "{}", back.v[2 * 32 + 8]);
        assert!((back.v[20 * 32 + 8] as i32 - 128).abs() <= 4);
    }

    #[test]
    fn lower_quality_makes_a_smaller_file() {
        let mut frame = two_halves(160, 120);
        // Noise, so quality matters.
        for (i, y) in frame.y.iter_mut().enumerate() {
            *y = 16 + ((i * 7919) % 219) as u8;
        }
        let good = encode_jpeg(&frame, 95).unwrap();
        let poor = encode_jpeg(&frame, 20).unwrap();
        assert!(
            poor.len() < good.len() / 2,
            "{} vs {}",
            poor.len(),
            good.len()
        );
    }

    #[test]
    fn a_broken_frame_is_an_error() {
        let mut frame = I420Frame::black(32, 32);
        frame.y.truncate(10);
        assert!(encode_jpeg(&frame, 80).is_err());
        assert!(encode_jpeg(&I420Frame::black(0, 0), 80).is_err());
    }
}
