//! JPEG → I420 against a reference computed here, independently of the decoder's tables:
//! a known full-range YCbCr picture is encoded with `jpeg-encoder` at several chroma
//! samplings, decoded, and compared (PSNR) with the picture mapped to video range by
//! floating-point arithmetic and 2×2-averaged. Then malformed input: nothing may panic.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::jpeg::{decode_jpeg, JpegDecoder};
use crate::image::I420Frame;

/// A smooth full-range YCbCr picture (JPEG-friendly, so the lossy round trip stays close).
fn picture(w: usize, h: usize) -> Vec<[u8; 3]> {
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let fx = x as f64 / w as f64;
            let fy = y as f64 / h as f64;
            let luma = 30.0 + 190.0 * (0.5 + 0.5 * (fx * 6.0 + fy * 2.0).sin()) * fy.max(0.2);
            let cb = 128.0 + 90.0 * (fx - 0.5);
            let cr = 128.0 - 80.0 * (fy - 0.5);
            px.push([luma as u8, cb as u8, cr as u8]);
        }
    }
    px
}

fn encode(px: &[[u8; 3]], w: usize, h: usize, sampling: SamplingFactor, grey: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 95);
    enc.set_sampling_factor(sampling);
    if grey {
        let luma: Vec<u8> = px.iter().map(|p| p[0]).collect();
        enc.encode(&luma, w as u16, h as u16, ColorType::Luma)
            .unwrap();
    } else {
        let flat: Vec<u8> = px.iter().flatten().copied().collect();
        enc.encode(&flat, w as u16, h as u16, ColorType::Ycbcr)
            .unwrap();
    }
    out
}

/// The expected I420 frame: video range by the BT.601 formulas, chroma = 2×2 mean, cropped
/// to even.
fn reference(px: &[[u8; 3]], w: usize, h: usize, grey: bool) -> I420Frame {
    let (ew, eh) = (w & !1, h & !1);
    let mut f = I420Frame::black(ew as u32, eh as u32);
    for y in 0..eh {
        for x in 0..ew {
            f.y[y * ew + x] = (16.0 + px[y * w + x][0] as f64 * 219.0 / 255.0).round() as u8;
        }
    }
    for cy in 0..eh / 2 {
        for cx in 0..ew / 2 {
            let mean = |c: usize| {
                let s: f64 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(dx, dy)| px[(2 * cy + dy) * w + 2 * cx + dx][c] as f64)
                    .sum();
                s / 4.0
            };
            let video = |c: f64| (128.0 + (c - 128.0) * 224.0 / 255.0).round() as u8;
            let i = cy * (ew / 2) + cx;
            f.u[i] = if grey { 128 } else { video(mean(1)) };
            f.v[i] = if grey { 128 } else { video(mean(2)) };
        }
    }
    f
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn check_against_reference(w: usize, h: usize, sampling: SamplingFactor, grey: bool) {
    let px = picture(w, h);
    let jpeg = encode(&px, w, h, sampling, grey);
    let got = decode_jpeg(&jpeg).unwrap();
    let want = reference(&px, w, h, grey);
    assert_eq!((got.width, got.height), (want.width, want.height));
    let (py, pu, pv) = (
        psnr(&got.y, &want.y),
        psnr(&got.u, &want.u),
        psnr(&got.v, &want.v),
    );
    let label = format!("{w}x{h} grey={grey}");
    assert!(py > 38.0, "{label}: luma PSNR {py:.1} dB");
    assert!(
        pu > 36.0 && pv > 36.0,
        "{label}: chroma PSNR {pu:.1}/{pv:.1}"
    );
    if grey {
        assert!(got.u.iter().chain(&got.v).all(|&c| c == 128), "{label}");
    }
}

#[test]
fn decodes_420_422_444_and_grey_against_the_reference() {
    check_against_reference(64, 48, SamplingFactor::R_4_2_0, false);
    check_against_reference(64, 48, SamplingFactor::R_4_2_2, false);
    check_against_reference(64, 48, SamplingFactor::R_4_4_4, false);
    check_against_reference(64, 48, SamplingFactor::R_4_4_0, false);
    check_against_reference(64, 48, SamplingFactor::R_4_4_4, true);
    check_against_reference(320, 240, SamplingFactor::R_4_2_0, false);
}

#[test]
fn odd_sizes_are_cropped_to_even() {
    check_against_reference(63, 47, SamplingFactor::R_4_2_0, false);
    check_against_reference(101, 33, SamplingFactor::R_4_2_2, false);
    check_against_reference(35, 19, SamplingFactor::R_4_4_4, true);
}

#[test]
fn output_is_video_range() {
    // Pure black and pure white full-range pictures land on 16 and 235.
    for (level, want) in [(0u8, 16u8), (255, 235)] {
        let px = vec![[level, 128, 128]; 32 * 32];
        let f = decode_jpeg(&encode(&px, 32, 32, SamplingFactor::R_4_2_0, false)).unwrap();
        assert!(f.y.iter().all(|&y| y.abs_diff(want) <= 1), "level {level}");
        assert!(f.u.iter().chain(&f.v).all(|&c| c.abs_diff(128) <= 1));
    }
}

#[test]
fn a_reused_decoder_follows_size_changes() {
    let mut dec = JpegDecoder::new();
    for (w, h) in [(64, 48), (32, 32), (96, 64)] {
        let jpeg = encode(&picture(w, h), w, h, SamplingFactor::R_4_2_0, false);
        let f = dec.decode(&jpeg).unwrap();
        assert_eq!((f.width, f.height), (w as u32, h as u32));
        assert_eq!(f.y.len(), w * h);
        assert_eq!(f.u.len(), w * h / 4);
    }
}

#[test]
fn non_jpeg_input_says_so() {
    for (data, expect) in [
        (&b""[..], "empty"),
        (b"\x89PNG\r\n\x1a\n....", "not a JPEG"),
        (b"--boundary\r\nContent-Type: image/jpeg", "not a JPEG"),
        (b"\xff\xd8", "not a JPEG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"\xff\xd8\xff\xd9", "JPEG"),
    ] {
        let err = format!("{:#}", decode_jpeg(data).unwrap_err());
        assert!(err.contains(expect), "{data:?}: {err}");
    }
}

#[test]
fn a_one_pixel_jpeg_is_refused() {
    let jpeg = encode(&[[100, 128, 128]], 1, 1, SamplingFactor::R_4_4_4, false);
    let err = format!("{:#}", decode_jpeg(&jpeg).unwrap_err());
    assert!(err.contains("too small"), "{err}");
}

/// A frame cut short anywhere before its last entropy bytes is refused, never shown half
/// grey, never a panic.
#[test]
fn truncated_jpegs_are_errors() {
    for sampling in [SamplingFactor::R_4_2_0, SamplingFactor::R_4_2_2] {
        let jpeg = encode(&picture(96, 64), 96, 64, sampling, false);
        for cut in 0..jpeg.len() {
            let r = decode_jpeg(&jpeg[..cut]);
            assert!(r.is_err(), "cut at {cut} of {} decoded", jpeg.len());
        }
        // Cut inside the last row of blocks, the case the decoder alone misses.
        let err = format!("{:#}", decode_jpeg(&jpeg[..jpeg.len() - 10]).unwrap_err());
        assert!(err.contains("truncated"), "{err}");
    }
}

/// Padding after the end-of-image marker (ESP32 frame buffers, multipart CRLF) is fine.
#[test]
fn padding_after_the_end_marker_is_accepted() {
    let mut jpeg = encode(&picture(32, 32), 32, 32, SamplingFactor::R_4_2_0, false);
    jpeg.extend_from_slice(&[0, 0, 0, b'\r', b'\n']);
    assert_eq!(decode_jpeg(&jpeg).unwrap().width, 32);
}

/// Random byte flips and garbage: an error or a frame of the right shape, never a panic.
#[test]
fn corrupt_jpegs_never_panic() {
    let jpeg = encode(&picture(80, 48), 80, 48, SamplingFactor::R_4_2_0, false);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for round in 0..2000 {
        let mut data = jpeg.clone();
        let flips = 1 + round % 8;
        for _ in 0..flips {
            let i = (next() as usize) % data.len();
            data[i] = next() as u8;
        }
        match decode_jpeg(&data) {
            Ok(f) => {
                assert_eq!(f.y.len(), (f.width * f.height) as usize);
                assert_eq!(f.u.len(), f.y.len() / 4);
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors > 0, "2000 corrupted JPEGs all decoded");
    for len in [3usize, 10, 100, 1000, 10_000] {
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        junk[..3.min(len)].copy_from_slice(&[0xff, 0xd8, 0xff][..3.min(len)]);
        assert!(decode_jpeg(&junk).is_err(), "{len} random bytes decoded");
    }
}
