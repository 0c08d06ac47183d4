//! I420 → I420 resizing, so a viewer can pick a smaller (or, rarely, larger) picture than the
//! source gives, whatever the source. The encode pipeline follows the frames' size, so a new
//! target size re-creates the encoder with a fresh IDR by itself.
//!
//! Three paths, all integer arithmetic on each plane separately:
//! - exactly half in both directions (1280×720 → 640×360, the common case): a 2×2 box
//!   average, which the compiler vectorises;
//! - any other reduction: an area average over the source pixels each target pixel covers
//!   (no aliasing, unlike bilinear at large factors);
//! - enlargement (in either direction): bilinear with 8-bit weights on pixel centres.

use anyhow::bail;

use crate::image::I420Frame;

/// Smallest target side: below this the encoder refuses anyway.
pub const MIN_SIDE: u32 = 16;
/// Largest target side (openh264's limit).
pub const MAX_SIDE: u32 = 3840;

/// Resize `src` to `width`×`height` (even, [`MIN_SIDE`]..=[`MAX_SIDE`]). Allocates the result;
/// [`Scaler`] reuses its buffers across frames.
pub fn scale_i420(src: &I420Frame, width: u32, height: u32) -> anyhow::Result<I420Frame> {
    let mut dst = I420Frame::black(width, height);
    Scaler::new().scale_into(src, &mut dst)?;
    Ok(dst)
}

/// Check a target size before using it.
pub fn check_target(width: u32, height: u32) -> anyhow::Result<()> {
    let ok = |v: u32| (MIN_SIDE..=MAX_SIDE).contains(&v) && v.is_multiple_of(2);
    if !ok(width) || !ok(height) {
        bail!(
            "scale: target {width}x{height} must be even and within {MIN_SIDE}..={MAX_SIDE} on each side"
        );
    }
    Ok(())
}

/// A resizer that keeps its scratch buffers between frames (one per encode thread).
#[derive(Debug, Default)]
pub struct Scaler {
    /// Column sums (area path) or vertically blended row (bilinear path).
    row: Vec<u32>,
    /// Per target column: first source column and how many it covers (area path) or the
    /// source column and the next one's weight (bilinear path), keyed by (bilinear?, source
    /// width, target width). Luma and chroma each have theirs; built once per size.
    columns: Vec<ColumnTable>,
}

/// (bilinear?, source width, target width) and its per-column entries.
type ColumnTable = ((bool, usize, usize), Vec<(u32, u32)>);

/// At most this many column tables are kept (luma + chroma, times a size change or two).
const MAX_TABLES: usize = 4;

fn column_table(
    cache: &mut Vec<ColumnTable>,
    bilinear: bool,
    sw: usize,
    dw: usize,
) -> &[(u32, u32)] {
    let key = (bilinear, sw, dw);
    let i = match cache.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            let table = (0..dw)
                .map(|x| {
                    if bilinear {
                        centre_map(x, sw, dw)
                    } else {
                        let (a, b) = (x * sw / dw, (x + 1) * sw / dw);
                        (a as u32, (b - a) as u32)
                    }
                })
                .collect();
            if cache.len() >= MAX_TABLES {
                cache.remove(0);
            }
            cache.push((key, table));
            cache.len() - 1
        }
    };
    &cache[i].1
}

impl Scaler {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new frame of `width`×`height` holding `src` resized.
    pub fn scale(&mut self, src: &I420Frame, width: u32, height: u32) -> anyhow::Result<I420Frame> {
        let mut dst = I420Frame::black(width, height);
        self.scale_into(src, &mut dst)?;
        Ok(dst)
    }

    /// Resize `src` into `dst`, whose `width`/`height` say the target size (its planes are
    /// resized to fit if needed).
    pub fn scale_into(&mut self, src: &I420Frame, dst: &mut I420Frame) -> anyhow::Result<()> {
        check_target(dst.width, dst.height)?;
        let (sw, sh) = (src.width as usize, src.height as usize);
        if sw < 2 || sh < 2 || !sw.is_multiple_of(2) || !sh.is_multiple_of(2) {
            bail!("scale: source frame {sw}x{sh} must be even and at least 2x2");
        }
        let (scw, sch) = (sw / 2, sh / 2);
        if src.y.len() < sw * sh || src.u.len() < scw * sch || src.v.len() < scw * sch {
            bail!("scale: source frame {sw}x{sh} has short planes");
        }
        let (dw, dh) = (dst.width as usize, dst.height as usize);
        let (dcw, dch) = (dw / 2, dh / 2);
        dst.y.resize(dw * dh, 0);
        dst.u.resize(dcw * dch, 128);
        dst.v.resize(dcw * dch, 128);
        self.plane(&src.y[..sw * sh], sw, sh, &mut dst.y, dw, dh);
        self.plane(&src.u[..scw * sch], scw, sch, &mut dst.u, dcw, dch);
        self.plane(&src.v[..scw * sch], scw, sch, &mut dst.v, dcw, dch);
        Ok(())
    }

    fn plane(&mut self, src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
        if (sw, sh) == (dw, dh) {
            dst.copy_from_slice(src);
        } else if sw == 2 * dw && sh == 2 * dh {
            halve(src, sw, dst, dw);
        } else if dw <= sw && dh <= sh {
            self.area(src, sw, sh, dst, dw, dh);
        } else {
            self.bilinear(src, sw, sh, dst, dw, dh);
        }
    }

    /// Area average: target pixel (x, y) is the mean of source columns
    /// `x*sw/dw .. (x+1)*sw/dw` and rows `y*sh/dh .. (y+1)*sh/dh` (each span ≥ 1 pixel as the
    /// target is no larger), rounded to nearest.
    fn area(&mut self, src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
        let columns = column_table(&mut self.columns, false, sw, dw);
        self.row.resize(sw, 0);
        for (y, out) in dst.chunks_exact_mut(dw).enumerate().take(dh) {
            let (r0, r1) = (y * sh / dh, (y + 1) * sh / dh);
            let rows = r1 - r0;
            self.row.fill(0);
            for r in r0..r1 {
                for (acc, &p) in self.row.iter_mut().zip(&src[r * sw..(r + 1) * sw]) {
                    *acc += u32::from(p);
                }
            }
            for (o, &(first, n)) in out.iter_mut().zip(columns) {
                let (first, n) = (first as usize, n as usize);
                let sum: u32 = self.row[first..first + n].iter().sum();
                let count = n * rows;
                *o = match RECIPROCALS.get(count) {
                    // sum/count as a multiply: exact to well under half a step for these
                    // counts (error ≤ 255·count/2²⁵ < 1/(2·count) when count < 256).
                    Some(&r) => ((u64::from(sum) * u64::from(r) + (1 << 23)) >> 24) as u8,
                    None => ((sum + count as u32 / 2) / count as u32) as u8,
                };
            }
        }
    }

    /// Bilinear on pixel centres: target x maps to source `(x + 0.5) * sw / dw - 0.5`, clamped
    /// to the edge pixels; 8-bit fractional weights.
    fn bilinear(&mut self, src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
        let columns = column_table(&mut self.columns, true, sw, dw);
        self.row.resize(sw, 0);
        for (y, out) in dst.chunks_exact_mut(dw).enumerate().take(dh) {
            let (sy, fy) = centre_map(y, sh, dh);
            let (sy, fy) = (sy as usize, fy);
            let r0 = &src[sy * sw..(sy + 1) * sw];
            let r1 = &src[(sy + 1).min(sh - 1) * sw..][..sw];
            for ((acc, &a), &b) in self.row.iter_mut().zip(r0).zip(r1) {
                *acc = u32::from(a) * (256 - fy) + u32::from(b) * fy;
            }
            for (o, &(sx, fx)) in out.iter_mut().zip(columns) {
                let sx = sx as usize;
                let (a, b) = (self.row[sx], self.row[(sx + 1).min(sw - 1)]);
                *o = ((a * (256 - fx) + b * fx + (1 << 15)) >> 16) as u8;
            }
        }
    }
}

/// `round(2²⁴ / count)` for the pixel counts of an area average (0 unused): a multiply per
/// target pixel instead of a division.
static RECIPROCALS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 1;
    while c < 256 {
        t[c] = ((1u32 << 24) + c as u32 / 2) / c as u32;
        c += 1;
    }
    t
};

/// Source position of target index `i` (of `dn`) on a side of `sn` pixels, as the integer
/// pixel and the 1/256 weight of the next one.
fn centre_map(i: usize, sn: usize, dn: usize) -> (u32, u32) {
    // In 1/256 pixel: ((2i + 1) * sn * 256 / (2 dn)) - 128, clamped to [0, (sn-1)*256].
    let pos = ((2 * i + 1) * sn * 256 / (2 * dn)) as i64 - 128;
    let pos = pos.clamp(0, (sn as i64 - 1) * 256) as u32;
    (pos >> 8, pos & 0xff)
}

/// Exactly half each way: the rounded mean of each 2×2 block.
fn halve(src: &[u8], sw: usize, dst: &mut [u8], dw: usize) {
    for (y, out) in dst.chunks_exact_mut(dw).enumerate() {
        let r0 = &src[2 * y * sw..][..sw];
        let r1 = &src[(2 * y + 1) * sw..][..sw];
        for ((o, a), b) in out
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            let sum = u16::from(a[0]) + u16::from(a[1]) + u16::from(b[0]) + u16::from(b[1]);
            *o = ((sum + 2) >> 2) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose pixels are a function of position, different in each plane.
    fn pattern(w: u32, h: u32, f: impl Fn(usize, usize, usize) -> u8) -> I420Frame {
        let (w, h) = (w as usize, h as usize);
        let plane = |pw: usize, ph: usize, k: usize| -> Vec<u8> {
            (0..pw * ph).map(|i| f(k, i % pw, i / pw)).collect()
        };
        I420Frame {
            width: w as u32,
            height: h as u32,
            y: plane(w, h, 0),
            u: plane(w / 2, h / 2, 1),
            v: plane(w / 2, h / 2, 2),
        }
    }

    fn noise(k: usize, x: usize, y: usize) -> u8 {
        // A cheap hash: every pixel different, no structure the scaler could get lucky on.
        let mut h = (x as u32).wrapping_mul(0x9e37_79b1) ^ (y as u32).wrapping_mul(0x85eb_ca77);
        h ^= (k as u32).wrapping_mul(0xc2b2_ae3d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2c1b_3c6d);
        (h >> 24) as u8
    }

    /// The exact mean over the source rectangle a target pixel covers, in floating point.
    fn area_expected(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for y in 0..dh {
            for x in 0..dw {
                let (x0, x1) = (x * sw / dw, (x + 1) * sw / dw);
                let (y0, y1) = (y * sh / dh, (y + 1) * sh / dh);
                let mut sum = 0.0;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        sum += src[yy * sw + xx] as f64;
                    }
                }
                out.push(sum / ((x1 - x0) * (y1 - y0)) as f64);
            }
        }
        out
    }

    fn assert_close(got: &[u8], want: &[f64], tolerance: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: plane size");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tolerance,
                "{what}: pixel {i} is {g}, expected {w:.2}"
            );
        }
    }

    #[test]
    fn halving_is_the_rounded_mean_of_each_2x2_block() {
        let src = pattern(64, 32, noise);
        let out = scale_i420(&src, 32, 16).unwrap();
        assert_eq!((out.width, out.height), (32, 16));
        assert_eq!((out.y.len(), out.u.len(), out.v.len()), (512, 128, 128));
        // Hand-computed on one block: (a+b+c+d+2)/4.
        let s = &src.y;
        let want = (s[0] as u32 + s[1] as u32 + s[64] as u32 + s[65] as u32 + 2) / 4;
        assert_eq!(out.y[0] as u32, want);
        assert_close(&out.y, &area_expected(&src.y, 64, 32, 32, 16), 0.5, "y");
        assert_close(&out.u, &area_expected(&src.u, 32, 16, 16, 8), 0.5, "u");
        assert_close(&out.v, &area_expected(&src.v, 32, 16, 16, 8), 0.5, "v");
    }

    #[test]
    fn other_reductions_average_the_covered_area() {
        // 3:2 (1920→1280 style), 4:1 and a ragged ratio.
        // The last divides 20x20 blocks: counts past the reciprocal table.
        for (sw, sh, dw, dh) in [
            (96, 54, 64, 36),
            (128, 64, 32, 16),
            (100, 60, 38, 22),
            (640, 320, 32, 16),
        ] {
            let src = pattern(sw, sh, noise);
            let out = scale_i420(&src, dw, dh).unwrap();
            let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
            assert_close(&out.y, &area_expected(&src.y, sw, sh, dw, dh), 0.5, "y");
            assert_close(
                &out.u,
                &area_expected(&src.u, sw / 2, sh / 2, dw / 2, dh / 2),
                0.5,
                "u",
            );
        }
    }

    #[test]
    fn flat_planes_stay_flat_at_any_size() {
        let src = pattern(80, 60, |k, _, _| [90, 60, 200][k]);
        for (w, h) in [(80, 60), (40, 30), (16, 16), (160, 120), (122, 34)] {
            let out = scale_i420(&src, w, h).unwrap();
            assert!(out.y.iter().all(|&p| p == 90), "{w}x{h}");
            assert!(out.u.iter().all(|&p| p == 60), "{w}x{h}");
            assert!(out.v.iter().all(|&p| p == 200), "{w}x{h}");
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let src = pattern(48, 32, noise);
        assert_eq!(scale_i420(&src, 48, 32).unwrap(), src);
    }

    #[test]
    fn enlarging_interpolates_between_pixel_centres() {
        // A horizontal ramp 0, 8, 16, ...: doubling puts target pixels at source positions
        // -0.25 (clamped to 0), 0.25, 0.75, 1.25, ... so values 0, 2, 6, 10, ...
        let src = pattern(32, 16, |_, x, _| (x * 8) as u8);
        let out = scale_i420(&src, 64, 32).unwrap();
        let row: Vec<u8> = out.y[..8].to_vec();
        assert_eq!(row, vec![0, 2, 6, 10, 14, 18, 22, 26]);
        // The last pixel is clamped to the source's last one.
        assert_eq!(out.y[63], 31 * 8);
        // Every row is the same (the ramp is horizontal).
        assert!(out.y.chunks(64).all(|r| r == &out.y[..64]));
    }

    #[test]
    fn enlarging_one_way_and_shrinking_the_other_works() {
        let src = pattern(40, 40, |_, x, y| (x * 3 + y) as u8);
        let out = scale_i420(&src, 80, 20).unwrap();
        assert_eq!((out.width, out.height, out.y.len()), (80, 20, 1600));
        // Monotone in x and in y like the source.
        for y in 0..20 {
            for x in 1..80 {
                assert!(out.y[y * 80 + x] >= out.y[y * 80 + x - 1]);
            }
        }
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        let src = pattern(64, 32, noise);
        for (w, h) in [(33, 16), (32, 15), (0, 16), (8, 8), (4000, 16)] {
            let e = scale_i420(&src, w, h).unwrap_err().to_string();
            assert!(e.contains(&format!("{w}x{h}")), "{e}");
        }
        let mut short = src.clone();
        short.u.truncate(10);
        assert!(scale_i420(&short, 32, 16)
            .unwrap_err()
            .to_string()
            .contains("short planes"));
        let odd = I420Frame {
            width: 3,
            ..src.clone()
        };
        assert!(scale_i420(&odd, 32, 16).is_err());
    }

    #[test]
    fn a_scaler_reused_across_sizes_gives_fresh_results() {
        let mut s = Scaler::new();
        let a = pattern(96, 54, noise);
        let b = pattern(100, 60, |k, x, y| noise(k + 3, y, x));
        for _ in 0..2 {
            assert_eq!(
                s.scale(&a, 64, 36).unwrap(),
                scale_i420(&a, 64, 36).unwrap()
            );
            assert_eq!(
                s.scale(&b, 64, 36).unwrap(),
                scale_i420(&b, 64, 36).unwrap()
            );
            assert_eq!(
                s.scale(&a, 192, 108).unwrap(),
                scale_i420(&a, 192, 108).unwrap()
            );
        }
    }
}
