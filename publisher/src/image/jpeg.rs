//! JPEG → I420, for every MJPEG-speaking source (V4L2 MJPEG, ESP32-CAM, HTTP MJPEG, files).
//!
//! The decoder works in YCbCr all the way: it never converts to RGB. JPEG's full-range
//! samples are mapped to the video range the encoder expects, chroma is brought to 4:2:0 by
//! averaging, and an odd width or height is cropped to even. Corrupt, truncated or non-JPEG
//! input is an error (the decoder runs in strict mode, so a frame cut short is refused rather
//! than shown half grey), never a panic.

use anyhow::{bail, Context};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::chroma::{avg4, C_FULL_TO_VIDEO, Y_FULL_TO_VIDEO};
use crate::image::I420Frame;

/// Largest picture accepted (a corrupt header must not make us allocate gigabytes).
pub const MAX_WIDTH: usize = 7680;
pub const MAX_HEIGHT: usize = 4320;

/// Decode one JPEG to I420. Allocates its scratch space each call; a source decoding a
/// stream should keep a [`JpegDecoder`] instead.
pub fn decode_jpeg(data: &[u8]) -> anyhow::Result<I420Frame> {
    JpegDecoder::new().decode(data)
}

/// A JPEG → I420 decoder that keeps its scratch buffer between frames.
#[derive(Default)]
pub struct JpegDecoder {
    /// Full-resolution decoder output (interleaved YCbCr, or luma for greyscale JPEGs).
    scratch: Vec<u8>,
}

impl JpegDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one JPEG to a video-range I420 frame of the JPEG's size rounded down to even.
    pub fn decode(&mut self, data: &[u8]) -> anyhow::Result<I420Frame> {
        check_signature(data)?;
        check_complete(data)?;
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(MAX_WIDTH)
            .set_max_height(MAX_HEIGHT);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
        decoder
            .decode_headers()
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .context("bad JPEG header")?;
        let info = decoder.info().context("JPEG header has no frame size")?;
        let (width, height) = (info.width as usize, info.height as usize);
        let (out_w, out_h) = (width & !1, height & !1);
        if out_w < 2 || out_h < 2 {
            bail!("JPEG is {width}x{height}: too small to carry a picture");
        }
        let grey = match decoder.input_colorspace() {
            Some(ColorSpace::Luma) => true,
            Some(ColorSpace::YCbCr) => false,
            other => {
                bail!("JPEG colour space {other:?} is not supported (YCbCr or greyscale only)")
            }
        };
        let out_space = if grey {
            ColorSpace::Luma
        } else {
            ColorSpace::YCbCr
        };
        decoder.set_options(options.jpeg_set_out_colorspace(out_space));
        let size = decoder
            .output_buffer_size()
            .context("JPEG frame size overflows")?;
        self.scratch.resize(size, 0);
        decoder
            .decode_into(&mut self.scratch)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .context("corrupt or truncated JPEG data")?;
        let mut frame = I420Frame {
            width: out_w as u32,
            height: out_h as u32,
            y: vec![0; out_w * out_h],
            u: vec![0; (out_w / 2) * (out_h / 2)],
            v: vec![0; (out_w / 2) * (out_h / 2)],
        };
        if grey {
            luma_to_i420(&self.scratch, width, &mut frame);
        } else {
            ycbcr444_to_i420(&self.scratch, width, &mut frame);
        }
        Ok(frame)
    }
}

/// A JPEG starts with SOI (FF D8) followed by another marker.
fn check_signature(data: &[u8]) -> anyhow::Result<()> {
    match data {
        [0xff, 0xd8, 0xff, ..] => Ok(()),
        [] => bail!("empty JPEG (0 bytes)"),
        _ => {
            let head: Vec<String> = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
            bail!(
                "not a JPEG: {} bytes starting {} (expected ff d8 ff)",
                data.len(),
                head.join(" ")
            )
        }
    }
}

/// A frame cut short (a stalled stream, a closed connection) has no end-of-image marker.
/// The decoder alone does not notice when the cut falls in the last row of blocks, so look
/// for FF D9 at the end, past any padding some cameras and multipart bodies leave behind.
fn check_complete(data: &[u8]) -> anyhow::Result<()> {
    let end = data
        .iter()
        .rposition(|b| !matches!(b, 0x00 | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    if end >= 4 && data[end - 2..end] == [0xff, 0xd9] {
        return Ok(());
    }
    bail!(
        "truncated JPEG: {} bytes with no end-of-image marker (ff d9) at the end",
        data.len()
    )
}

/// Interleaved full-range YCbCr 4:4:4 rows of `width` pixels → video-range I420 (cropping to
/// the frame's even size). Chroma is the rounded mean of each 2×2 block.
fn ycbcr444_to_i420(src: &[u8], width: usize, f: &mut I420Frame) {
    let (w, h) = (f.width as usize, f.height as usize);
    let cw = w / 2;
    let stride = width * 3;
    for cy in 0..h / 2 {
        let r0 = &src[2 * cy * stride..][..w * 3];
        let r1 = &src[(2 * cy + 1) * stride..][..w * 3];
        let (y0, y1) = f.y[2 * cy * w..(2 * cy + 2) * w].split_at_mut(w);
        let u = &mut f.u[cy * cw..(cy + 1) * cw];
        let v = &mut f.v[cy * cw..(cy + 1) * cw];
        let luma = y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2));
        let chroma = u.iter_mut().zip(v.iter_mut());
        // Zipped chunks, no indexing: the compiler drops the bounds checks.
        for (((a, b), (ya, yb)), (u, v)) in r0
            .chunks_exact(6)
            .zip(r1.chunks_exact(6))
            .zip(luma)
            .zip(chroma)
        {
            ya[0] = Y_FULL_TO_VIDEO[a[0] as usize];
            ya[1] = Y_FULL_TO_VIDEO[a[3] as usize];
            yb[0] = Y_FULL_TO_VIDEO[b[0] as usize];
            yb[1] = Y_FULL_TO_VIDEO[b[3] as usize];
            *u = C_FULL_TO_VIDEO[avg4(a[1], a[4], b[1], b[4]) as usize];
            *v = C_FULL_TO_VIDEO[avg4(a[2], a[5], b[2], b[5]) as usize];
        }
    }
}

/// Greyscale rows of `width` pixels → video-range I420 with neutral chroma.
fn luma_to_i420(src: &[u8], width: usize, f: &mut I420Frame) {
    let (w, h) = (f.width as usize, f.height as usize);
    for row in 0..h {
        let s = &src[row * width..][..w];
        for (d, s) in f.y[row * w..(row + 1) * w].iter_mut().zip(s) {
            *d = Y_FULL_TO_VIDEO[*s as usize];
        }
    }
    f.u.fill(128);
    f.v.fill(128);
}
