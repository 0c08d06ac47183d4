//! The slate: what viewers see while the camera's source is lost. Rather than a black box
//! (or, for a viewer who joins meanwhile, nothing at all), the encode thread sends once a
//! second the last picture, dimmed, with a band that says "CAMERA LOST, RETRYING"; with no
//! last picture, the band on grey. Sending keeps going so the SFU's keyframe logic still
//! works: a viewer who joins asks for a keyframe and gets the slate within a second.
//!
//! Dimming also hides the test pattern's barcode (its white blocks fall into the reader's
//! ambiguous range), so a slate is never taken for a frame of the camera.

use std::time::Duration;

use crate::image::I420Frame;

/// How often a slate frame goes out while the source is lost.
pub const SLATE_PERIOD: Duration = Duration::from_secs(1);

/// The slate's size when there is no picture to dim (the source was never seen).
pub const FALLBACK_SIZE: (u32, u32) = (640, 360);

/// What the band says.
pub const SLATE_TEXT: &str = "CAMERA LOST, RETRYING";

/// Video-range luma: the band's background, the text, and the grey with no picture.
const BAND_LUMA: u8 = 16;
const TEXT_LUMA: u8 = 235;
const GREY_LUMA: u8 = 80;

/// Glyph cells: 5×7 pixels and a column of space, scaled up as the frame allows.
const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;
const CELL_W: usize = GLYPH_W + 1;

/// The slate for a picture of `last` (dimmed), or a grey one of `size` when there is none.
pub fn render(last: Option<&I420Frame>, size: (u32, u32)) -> I420Frame {
    let mut frame = match last {
        Some(picture) => dimmed(picture),
        None => {
            let mut grey = I420Frame::black(size.0, size.1);
            grey.y.fill(GREY_LUMA);
            grey
        }
    };
    draw_band(&mut frame, SLATE_TEXT);
    frame
}

/// Half the brightness and half the colour: plainly not live, still recognisable.
fn dimmed(picture: &I420Frame) -> I420Frame {
    let half = |p: &u8, centre: u8| centre + (p.saturating_sub(centre) / 2);
    let mut out = picture.clone();
    out.y.iter_mut().for_each(|p| *p = half(p, 16));
    for plane in [&mut out.u, &mut out.v] {
        // Chroma moves halfway to neutral from either side.
        plane
            .iter_mut()
            .for_each(|p| *p = ((*p as u16 + 128) / 2) as u8);
    }
    out
}

/// A dark band across the middle with `text` centred in it, as large as fits in three
/// quarters of the width. Clipped, never out of bounds, on frames too small to hold it.
fn draw_band(frame: &mut I420Frame, text: &str) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let chars = text.chars().count().max(1);
    let scale = ((w * 3 / 4) / (chars * CELL_W)).max(1);
    let pad = scale * 2;
    let band_h = (GLYPH_H * scale + 2 * pad).min(h) & !1;
    let band_top = ((h - band_h) / 2) & !1;
    for row in band_top..band_top + band_h {
        frame.y[row * w..(row + 1) * w].fill(BAND_LUMA);
    }
    let cw = w / 2;
    for row in band_top / 2..(band_top + band_h) / 2 {
        frame.u[row * cw..(row + 1) * cw].fill(128);
        frame.v[row * cw..(row + 1) * cw].fill(128);
    }
    let text_w = chars * CELL_W * scale - scale;
    let left = w.saturating_sub(text_w) / 2;
    let top = band_top + pad;
    for (i, c) in text.chars().enumerate() {
        let x0 = left + i * CELL_W * scale;
        for (gy, bits) in glyph(c).iter().enumerate() {
            for gx in 0..GLYPH_W {
                if bits & (1 << (GLYPH_W - 1 - gx)) == 0 {
                    continue;
                }
                for y in top + gy * scale..(top + (gy + 1) * scale).min(h) {
                    let x_start = (x0 + gx * scale).min(w);
                    let x_end = (x0 + (gx + 1) * scale).min(w);
                    frame.y[y * w + x_start..y * w + x_end].fill(TEXT_LUMA);
                }
            }
        }
    }
}

/// Rows of a 5×7 glyph, high bit on the left: the letters the slate needs (others blank).
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'Y' => [0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x08],
        _ => [0; GLYPH_H],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barcode::{self, Stamp};
    use crate::source::TestPattern;

    fn mean(plane: &[u8]) -> f64 {
        plane.iter().map(|&p| p as f64).sum::<f64>() / plane.len() as f64
    }

    /// Pixels of text luma in the band rows (the text is drawn, and only there).
    fn text_pixels(f: &I420Frame) -> (usize, usize) {
        let w = f.width as usize;
        let rows: Vec<&[u8]> = f.y.chunks(w).collect();
        let lit = |r: &&[u8]| r.iter().filter(|&&p| p == TEXT_LUMA).count();
        let mid = rows.len() / 2;
        let band: usize = rows[mid - 8..mid + 8].iter().map(lit).sum();
        (band, rows.iter().map(lit).sum())
    }

    #[test]
    fn the_last_picture_is_dimmed_with_the_band_and_no_readable_barcode() {
        let pattern = TestPattern::new(320, 240, 30, 7).unwrap();
        let picture = pattern.render(5, 1_000_000);
        let stamp = barcode::read(&picture.y, 320, 320, 240).expect("the pattern's barcode");
        assert_eq!(stamp.tag, 7);

        let slate = render(Some(&picture), (0, 0));
        assert_eq!((slate.width, slate.height), (320, 240));
        assert!(mean(&slate.y) < mean(&picture.y) * 0.75, "dimmed");
        assert!(mean(&slate.y) > 20.0, "not black");
        let (band, all) = text_pixels(&slate);
        assert!(band > 100, "the text is drawn in the middle: {band}");
        assert_eq!(band, all, "text luma only in the band");
        assert_eq!(barcode::read(&slate.y, 320, 320, 240), None::<Stamp>);
        // The colour is halved towards neutral.
        let spread = |p: &[u8]| p.iter().map(|&c| (c as i32 - 128).abs()).max().unwrap();
        assert!(spread(&slate.u) <= spread(&picture.u) / 2 + 1);
    }

    #[test]
    fn with_no_picture_the_slate_is_grey_at_the_given_size() {
        let slate = render(None, FALLBACK_SIZE);
        assert_eq!((slate.width, slate.height), FALLBACK_SIZE);
        let (band, _) = text_pixels(&slate);
        assert!(band > 500, "{band}");
        assert_eq!(slate.y[0], GREY_LUMA);
        assert!(slate.u.iter().chain(&slate.v).all(|&c| c == 128));
    }

    #[test]
    fn tiny_and_narrow_frames_are_clipped_not_a_panic() {
        for (w, h) in [(2, 2), (16, 16), (64, 8), (8, 64), (1920, 1080)] {
            let slate = render(Some(&I420Frame::black(w, h)), (0, 0));
            assert_eq!((slate.width, slate.height), (w, h));
            assert_eq!(slate.y.len(), (w * h) as usize);
        }
    }

    #[test]
    fn every_letter_of_the_text_has_a_glyph() {
        for c in SLATE_TEXT.chars().filter(|c| *c != ' ') {
            assert_ne!(glyph(c), [0; GLYPH_H], "{c:?}");
        }
    }
}
