//! Brightness, contrast, saturation and sharpness in software, on I420 frames, for sources
//! whose device has no such controls (test pattern, MJPEG streams and files, RTSP when
//! re-encoding).
//!
//! Each setting is a whole number with 0 meaning "as captured":
//! - brightness −100..=100 adds that much to luma;
//! - contrast −100..=100 scales luma around mid-grey (128) by `1 + contrast/100`;
//! - saturation −100..=100 scales both chroma planes around 128 by `1 + saturation/100`
//!   (−100 gives grey);
//! - sharpness 0..=100 adds `sharpness/50` × the 4-neighbour Laplacian / 4 to luma (an
//!   unsharp mask; the one-pixel border is left as is).
//!
//! Brightness and contrast are one 256-entry table on luma, saturation one on chroma; the
//! tables are rebuilt only when the settings change. All-zero settings touch nothing.

use std::ops::RangeInclusive;

use crate::image::I420Frame;

pub const BRIGHTNESS: RangeInclusive<i32> = -100..=100;
pub const CONTRAST: RangeInclusive<i32> = -100..=100;
pub const SATURATION: RangeInclusive<i32> = -100..=100;
pub const SHARPNESS: RangeInclusive<i32> = 0..=100;

/// The four image controls (see the module doc for their meaning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageAdjust {
    pub brightness: i32,
    pub contrast: i32,
    pub saturation: i32,
    pub sharpness: i32,
}

impl ImageAdjust {
    /// Nothing changed.
    pub const IDENTITY: ImageAdjust = ImageAdjust {
        brightness: 0,
        contrast: 0,
        saturation: 0,
        sharpness: 0,
    };

    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }

    /// Each value forced into its range (settings are validated before they get here; this
    /// keeps a bad value from doing harm anyway).
    pub fn clamped(self) -> Self {
        let c = |v: i32, r: RangeInclusive<i32>| v.clamp(*r.start(), *r.end());
        ImageAdjust {
            brightness: c(self.brightness, BRIGHTNESS),
            contrast: c(self.contrast, CONTRAST),
            saturation: c(self.saturation, SATURATION),
            sharpness: c(self.sharpness, SHARPNESS),
        }
    }
}

/// Applies [`ImageAdjust`] to frames, keeping its tables and scratch row between frames (one
/// per encode thread).
#[derive(Debug)]
pub struct Adjuster {
    built_for: Option<ImageAdjust>,
    luma: [u8; 256],
    chroma: [u8; 256],
    /// A copy of the luma plane for sharpening (which reads the unsharpened neighbours).
    scratch: Vec<u8>,
}

impl Default for Adjuster {
    fn default() -> Self {
        Self::new()
    }
}

impl Adjuster {
    pub fn new() -> Self {
        Adjuster {
            built_for: None,
            luma: [0; 256],
            chroma: [0; 256],
            scratch: Vec::new(),
        }
    }

    /// Adjust `frame` in place. Identity settings return at once.
    pub fn apply(&mut self, frame: &mut I420Frame, adjust: &ImageAdjust) {
        if adjust.is_identity() {
            return;
        }
        let adjust = adjust.clamped();
        if self.built_for != Some(adjust) {
            self.luma = luma_table(adjust.brightness, adjust.contrast);
            self.chroma = chroma_table(adjust.saturation);
            self.built_for = Some(adjust);
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        let y_len = (w * h).min(frame.y.len());
        if adjust.brightness != 0 || adjust.contrast != 0 {
            map(&mut frame.y[..y_len], &self.luma);
        }
        if adjust.saturation != 0 {
            map(&mut frame.u, &self.chroma);
            map(&mut frame.v, &self.chroma);
        }
        if adjust.sharpness != 0 && y_len == w * h {
            self.sharpen(&mut frame.y[..y_len], w, h, adjust.sharpness);
        }
    }

    fn sharpen(&mut self, y: &mut [u8], w: usize, h: usize, sharpness: i32) {
        if w < 3 || h < 3 {
            return;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(y);
        let src = &self.scratch;
        // delta = round(sharpness/50 * lap/4) = (lap * sharpness + 100) div 200, rounding
        // half up (floor division, valid for negative numerators too).
        let k = sharpness;
        for row in 1..h - 1 {
            let up = &src[(row - 1) * w..row * w];
            let mid = &src[row * w..(row + 1) * w];
            let down = &src[(row + 1) * w..(row + 2) * w];
            let out = &mut y[row * w..(row + 1) * w];
            for x in 1..w - 1 {
                let c = i32::from(mid[x]);
                let lap = 4 * c
                    - i32::from(up[x])
                    - i32::from(down[x])
                    - i32::from(mid[x - 1])
                    - i32::from(mid[x + 1]);
                let delta = (lap * k + 100).div_euclid(200);
                out[x] = (c + delta).clamp(0, 255) as u8;
            }
        }
    }
}

fn map(plane: &mut [u8], table: &[u8; 256]) {
    for p in plane {
        *p = table[*p as usize];
    }
}

/// `(y − 128) · (1 + contrast/100) + 128 + brightness`, rounded half up, clamped to 0..=255.
/// Integer arithmetic: the exact halves (y = 78 at contrast 37) round the same every time.
fn luma_table(brightness: i32, contrast: i32) -> [u8; 256] {
    std::array::from_fn(|y| {
        let num = (y as i32 - 128) * (100 + contrast) + (128 + brightness) * 100;
        (num + 50).div_euclid(100).clamp(0, 255) as u8
    })
}

/// `(c − 128) · (1 + saturation/100) + 128`, rounded half up, clamped to 0..=255.
fn chroma_table(saturation: i32) -> [u8; 256] {
    std::array::from_fn(|c| {
        let num = (c as i32 - 128) * (100 + saturation) + 128 * 100;
        (num + 50).div_euclid(100).clamp(0, 255) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(usize, usize) -> u8) -> I420Frame {
        let (wu, hu) = (w as usize, h as usize);
        I420Frame {
            width: w,
            height: h,
            y: (0..wu * hu).map(|i| f(i % wu, i / wu)).collect(),
            u: (0..wu * hu / 4).map(|i| (i * 37 % 256) as u8).collect(),
            v: (0..wu * hu / 4)
                .map(|i| (255 - i * 53 % 256) as u8)
                .collect(),
        }
    }

    fn adjust(b: i32, c: i32, s: i32, k: i32) -> ImageAdjust {
        ImageAdjust {
            brightness: b,
            contrast: c,
            saturation: s,
            sharpness: k,
        }
    }

    fn applied(f: &I420Frame, a: ImageAdjust) -> I420Frame {
        let mut out = f.clone();
        Adjuster::new().apply(&mut out, &a);
        out
    }

    #[test]
    fn identity_changes_nothing() {
        let f = frame(32, 16, |x, y| (x * 7 + y * 13) as u8);
        assert_eq!(applied(&f, ImageAdjust::IDENTITY), f);
        assert!(ImageAdjust::default().is_identity());
    }

    #[test]
    fn brightness_and_contrast_hand_checked_values() {
        let f = frame(4, 2, |x, _| [100, 138, 200, 10][x]);
        // Brightness +20: each luma + 20.
        assert_eq!(applied(&f, adjust(20, 0, 0, 0)).y[..4], [120, 158, 220, 30]);
        // Brightness −20 clamps at 0 (10 − 20).
        assert_eq!(applied(&f, adjust(-20, 0, 0, 0)).y[..4], [80, 118, 180, 0]);
        // Contrast +100 doubles the distance from 128: 100→72, 138→148, 200→272 (255),
        // 10→−108 (0).
        assert_eq!(applied(&f, adjust(0, 100, 0, 0)).y[..4], [72, 148, 255, 0]);
        // Contrast −100 flattens everything to 128; brightness then moves it.
        assert_eq!(applied(&f, adjust(-10, -100, 0, 0)).y[..4], [118; 4]);
        // Contrast −50 halves the distance: 100→114, 138→133, 200→164, 10→69.
        assert_eq!(
            applied(&f, adjust(0, -50, 0, 0)).y[..4],
            [114, 133, 164, 69]
        );
        // Chroma untouched by luma controls.
        let g = applied(&f, adjust(30, 40, 0, 0));
        assert_eq!((g.u.clone(), g.v.clone()), (f.u.clone(), f.v.clone()));
    }

    #[test]
    fn luma_table_matches_a_per_pixel_formula() {
        // Every luma value, several settings (37 has exact halves at y = 78 and 178), against
        // a reference in exact rational form: round-half-up of the fraction n/100.
        let f = frame(256, 2, |x, _| x as u8);
        for (b, c) in [
            (0, 37),
            (-63, 0),
            (55, -29),
            (100, 100),
            (-100, -100),
            (7, 3),
        ] {
            let out = applied(&f, adjust(b, c, 0, 0));
            for y in 0..256i64 {
                let num = (y - 128) * (100 + c as i64) + (128 + b as i64) * 100;
                let want = (num + 50).div_euclid(100).clamp(0, 255);
                assert_eq!(out.y[y as usize] as i64, want, "b={b} c={c} y={y}");
            }
        }
    }

    #[test]
    fn saturation_scales_chroma_around_grey() {
        let mut f = frame(4, 4, |_, _| 50);
        f.u = vec![138, 118, 128, 250];
        f.v = vec![0, 128, 200, 129];
        let grey = applied(&f, adjust(0, 0, -100, 0));
        assert_eq!(
            (grey.u.clone(), grey.v.clone()),
            (vec![128; 4], vec![128; 4])
        );
        assert_eq!(grey.y, f.y, "saturation leaves luma alone");
        let vivid = applied(&f, adjust(0, 0, 100, 0));
        assert_eq!(vivid.u, vec![148, 108, 128, 255]);
        assert_eq!(vivid.v, vec![0, 128, 255, 130]);
        let half = applied(&f, adjust(0, 0, -50, 0));
        assert_eq!(half.u, vec![133, 123, 128, 189]);
    }

    #[test]
    fn sharpening_a_dot_hand_checked() {
        // A bright dot of 140 on 100. At sharpness 50 (amount 1): centre lap = 4·140 − 400
        // = 160 → +40 = 180; each neighbour lap = 400 − 440 = −40 → −10 = 90; diagonal and
        // far pixels unchanged.
        let f = frame(6, 6, |x, y| if (x, y) == (2, 2) { 140 } else { 100 });
        let out = applied(&f, adjust(0, 0, 0, 50));
        let at = |x: usize, y: usize| out.y[y * 6 + x];
        assert_eq!(at(2, 2), 180);
        assert_eq!((at(1, 2), at(3, 2), at(2, 1), at(2, 3)), (90, 90, 90, 90));
        assert_eq!((at(1, 1), at(4, 4), at(3, 3)), (100, 100, 100));
        // Sharpness 100 (amount 2) doubles the change, clamped at 255 / 0 when large.
        let out = applied(&f, adjust(0, 0, 0, 100));
        assert_eq!((out.y[2 * 6 + 2], out.y[2 * 6 + 1]), (220, 80));
    }

    #[test]
    fn sharpening_leaves_flat_areas_and_the_border_alone() {
        let f = frame(16, 8, |x, y| if x == 0 || y == 0 { 250 } else { 60 });
        let out = applied(&f, adjust(0, 0, 0, 100));
        // The border rows/columns are copied as they were.
        for x in 0..16 {
            assert_eq!((out.y[x], out.y[7 * 16 + x]), (f.y[x], f.y[7 * 16 + x]));
        }
        // Far from the bright edge the plane is flat: unchanged.
        for y in 2..7 {
            for x in 2..15 {
                assert_eq!(out.y[y * 16 + x], 60, "({x},{y})");
            }
        }
        // Next to the bright edge the dark side gets darker (an edge made crisper).
        assert!(out.y[16 + 1] < 60);
    }

    #[test]
    fn sharpening_matches_a_floating_point_reference() {
        let f = frame(20, 12, |x, y| ((x * 31 + y * 17) % 97 + (x * y) % 50) as u8);
        for k in [1, 13, 50, 77, 100] {
            let out = applied(&f, adjust(0, 0, 0, k));
            for y in 1..11 {
                for x in 1..19 {
                    let p = |x: usize, y: usize| f.y[y * 20 + x] as f64;
                    let lap = 4.0 * p(x, y) - p(x - 1, y) - p(x + 1, y) - p(x, y - 1) - p(x, y + 1);
                    let want = (p(x, y) + k as f64 / 50.0 * lap / 4.0).clamp(0.0, 255.0);
                    let got = out.y[y * 20 + x] as f64;
                    assert!(
                        (got - want).abs() <= 0.5 + 1e-9,
                        "k={k} ({x},{y}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn settings_changes_rebuild_the_tables_and_bad_values_are_clamped() {
        let f = frame(4, 2, |x, _| [100, 138, 200, 10][x]);
        let mut a = Adjuster::new();
        let mut g = f.clone();
        a.apply(&mut g, &adjust(20, 0, 0, 0));
        assert_eq!(g.y[..4], [120, 158, 220, 30]);
        let mut g = f.clone();
        a.apply(&mut g, &adjust(-20, 0, 0, 0));
        assert_eq!(g.y[..4], [80, 118, 180, 0]);
        // Out of range: treated as the range's end, never a panic.
        let mut g = f.clone();
        a.apply(&mut g, &adjust(1000, 0, -1000, -5));
        assert_eq!(g.y[..4], applied(&f, adjust(100, 0, -100, 0)).y[..4]);
        // A frame whose planes are short for its size is left partly alone, not a panic.
        let mut short = f.clone();
        short.y.truncate(3);
        a.apply(&mut short, &adjust(5, 5, 5, 5));
    }
}
