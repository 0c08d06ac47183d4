//! JPEGs for source tests: pictures whose pixels carry the publisher's frame barcode, so a
//! headless viewer at the far end can tell which JPEG it is looking at after JPEG decode,
//! H.264 encode, the SFU and H.264 decode.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use sightline_publisher::barcode::{self, Stamp};
use sightline_publisher::image::I420Frame;

/// JPEG quality of fixtures: high enough that the barcode blocks stay clean.
const QUALITY: u8 = 90;

/// A `width`×`height` (even) 4:2:0 JPEG showing a picture that changes with `frame`, with
/// the barcode of (`frame`, now, `tag`) in its top rows.
pub fn barcode_jpeg(width: u32, height: u32, frame: u32, tag: u16) -> Vec<u8> {
    let mut picture = picture(width, height, frame);
    let stamp = Stamp {
        frame,
        capture_us: barcode::now_us(),
        tag,
    };
    barcode::burn(&mut picture, &stamp);
    encode_i420(&picture)
}

/// A JPEG of one flat colour (video-range Y, U, V), for colour checks.
pub fn solid_jpeg(width: u32, height: u32, (y, u, v): (u8, u8, u8)) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    encode_i420(&I420Frame {
        width,
        height,
        y: vec![y; w * h],
        u: vec![u; (w / 2) * (h / 2)],
        v: vec![v; (w / 2) * (h / 2)],
    })
}

/// JPEG-encode a (video-range) I420 frame: YCbCr in, 4:2:0 out, no RGB round trip. JPEG
/// samples are full range, as cameras send them, so the levels are stretched on the way in
/// and the publisher's decoder maps them back: a pixel decodes to (nearly) what it was here.
pub fn encode_i420(f: &I420Frame) -> Vec<u8> {
    let (w, h) = (f.width as usize, f.height as usize);
    let mut ycbcr = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * (w / 2) + col / 2;
            ycbcr.extend_from_slice(&[
                full_range(f.y[row * w + col], 16, 219),
                full_range(f.u[c], 128, 224),
                full_range(f.v[c], 128, 224),
            ]);
        }
    }
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, QUALITY);
    enc.set_sampling_factor(SamplingFactor::R_4_2_0);
    enc.encode(&ycbcr, f.width as u16, f.height as u16, ColorType::Ycbcr)
        .expect("encoding a fixture JPEG");
    out
}

/// Video range → full range: `(v - zero) * 255 / span`, centred on 128 for chroma.
fn full_range(v: u8, zero: i32, span: i32) -> u8 {
    let centre = if zero == 128 { 128 } else { 0 };
    let x = (v as i32 - zero) * 255 / span + centre;
    x.clamp(0, 255) as u8
}

/// A moving gradient with a square whose position follows the frame number: something for
/// the encoders to do, and visibly different frame to frame.
fn picture(width: u32, height: u32, frame: u32) -> I420Frame {
    let (w, h) = (width as usize, height as usize);
    let mut f = I420Frame::black(width, height);
    for row in 0..h {
        for col in 0..w {
            f.y[row * w + col] = (40 + (col + row + frame as usize * 4) % 160) as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let side = (ch / 3).max(2);
    let x0 = (frame as usize * 3) % cw.saturating_sub(side).max(1);
    let y0 = ch / 2 - side / 2;
    for row in y0..(y0 + side).min(ch) {
        for col in x0..(x0 + side).min(cw) {
            f.u[row * cw + col] = 60;
            f.v[row * cw + col] = 200;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_jpegs_of_the_right_size() {
        let jpg = barcode_jpeg(320, 240, 7, 0x1234);
        assert_eq!(&jpg[..2], &[0xff, 0xd8]);
        assert_eq!(&jpg[jpg.len() - 2..], &[0xff, 0xd9]);
        // SOF0 carries height then width.
        let sof = jpg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        let height = u16::from_be_bytes([jpg[sof + 5], jpg[sof + 6]]);
        let width = u16::from_be_bytes([jpg[sof + 7], jpg[sof + 8]]);
        assert_eq!((width, height), (320, 240));
        assert_ne!(barcode_jpeg(320, 240, 8, 0x1234), jpg);
        assert!(solid_jpeg(64, 48, (81, 90, 240)).len() > 100);
    }

    #[test]
    fn colours_come_back_through_the_publishers_decoder() {
        let (y, u, v) = (81, 90, 240);
        let f = sightline_publisher::image::decode_jpeg(&solid_jpeg(64, 48, (y, u, v))).unwrap();
        for (got, want) in [(f.y[100], y), (f.u[50], u), (f.v[50], v)] {
            assert!(got.abs_diff(want) <= 2, "got {got}, want {want}");
        }
    }
}
