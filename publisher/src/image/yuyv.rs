//! YUYV (YUY2, packed 4:2:2: `Y0 U Y1 V` per pixel pair) → I420, the raw format of most USB
//! cameras. V4L2 cameras already deliver video-range BT.601 samples, so only the layout
//! changes: luma is copied, chroma of each two rows is averaged to 4:2:0.

use anyhow::{bail, ensure};

use super::chroma::avg2;
use crate::image::I420Frame;

/// Convert one YUYV buffer of `width`×`height` pixels whose rows start `stride` bytes apart
/// (at least `2 * width`). An odd height is cropped to even; the width must be even (YUYV
/// carries pixels in pairs).
pub fn yuyv_to_i420(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> anyhow::Result<I420Frame> {
    let (w, h) = (width as usize, height as usize);
    if w < 2 || h < 2 || !w.is_multiple_of(2) {
        bail!("YUYV frame {width}x{height}: width must be even and both at least 2");
    }
    ensure!(
        stride >= 2 * w,
        "YUYV stride {stride} is shorter than a {width}-pixel row ({} bytes)",
        2 * w
    );
    let needed = stride * (h - 1) + 2 * w;
    ensure!(
        data.len() >= needed,
        "short YUYV frame: {} bytes, {width}x{height} with stride {stride} needs {needed}",
        data.len()
    );
    let h = h & !1;
    let cw = w / 2;
    let mut f = I420Frame {
        width,
        height: h as u32,
        y: vec![0; w * h],
        u: vec![0; cw * (h / 2)],
        v: vec![0; cw * (h / 2)],
    };
    for cy in 0..h / 2 {
        let r0 = &data[2 * cy * stride..][..2 * w];
        let r1 = &data[(2 * cy + 1) * stride..][..2 * w];
        let (y0, y1) = f.y[2 * cy * w..(2 * cy + 2) * w].split_at_mut(w);
        let u = &mut f.u[cy * cw..(cy + 1) * cw];
        let v = &mut f.v[cy * cw..(cy + 1) * cw];
        let luma = y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2));
        let chroma = u.iter_mut().zip(v.iter_mut());
        for (((a, b), (ya, yb)), (u, v)) in r0
            .chunks_exact(4)
            .zip(r1.chunks_exact(4))
            .zip(luma)
            .zip(chroma)
        {
            ya.copy_from_slice(&[a[0], a[2]]);
            yb.copy_from_slice(&[b[0], b[2]]);
            *u = avg2(a[1], b[1]);
            *v = avg2(a[3], b[3]);
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pack per-pixel (y, u, v) samples into YUYV with `pad` extra bytes per row; each pixel
    /// pair takes the chroma of its left pixel (what a 4:2:2 sensor would send).
    fn pack(px: &[(u8, u8, u8)], w: usize, h: usize, pad: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for row in 0..h {
            for pair in 0..w / 2 {
                let a = px[row * w + 2 * pair];
                let b = px[row * w + 2 * pair + 1];
                out.extend_from_slice(&[a.0, a.1, b.0, a.2]);
            }
            out.extend(std::iter::repeat_n(0xee, pad));
        }
        out
    }

    #[test]
    fn a_hand_made_4x2_frame() {
        // Two rows of two pixel pairs: Y0 U Y1 V.
        #[rustfmt::skip]
        let data = [
            10, 100, 20, 200,   30, 50, 40, 60,
            50, 110, 60, 211,   70, 52, 80, 61,
        ];
        let f = yuyv_to_i420(&data, 4, 2, 8).unwrap();
        assert_eq!(f.y, [10, 20, 30, 40, 50, 60, 70, 80]);
        // (100+110)/2, (50+52)/2 ; (200+211)/2 rounded up, (60+61)/2 rounded up.
        assert_eq!(f.u, [105, 51]);
        assert_eq!(f.v, [206, 61]);
    }

    #[test]
    fn matches_an_independent_reference_with_padding_and_odd_height() {
        let (w, h) = (16usize, 7usize);
        let px: Vec<(u8, u8, u8)> = (0..w * h)
            .map(|i| {
                (
                    (i * 7 % 251) as u8,
                    (i * 13 % 241) as u8,
                    (i * 29 % 239) as u8,
                )
            })
            .collect();
        let data = pack(&px, w, h, 6);
        let f = yuyv_to_i420(&data, w as u32, h as u32, 2 * w + 6).unwrap();
        assert_eq!((f.width, f.height), (16, 6));
        for y in 0..6 {
            for x in 0..w {
                assert_eq!(f.y[y * w + x], px[y * w + x].0, "luma {x},{y}");
            }
        }
        for cy in 0..3 {
            for cx in 0..w / 2 {
                let top = px[2 * cy * w + 2 * cx];
                let bottom = px[(2 * cy + 1) * w + 2 * cx];
                let mean = |a: u8, b: u8| ((a as f64 + b as f64) / 2.0).round() as u8;
                assert_eq!(f.u[cy * 8 + cx], mean(top.1, bottom.1), "u {cx},{cy}");
                assert_eq!(f.v[cy * 8 + cx], mean(top.2, bottom.2), "v {cx},{cy}");
            }
        }
    }

    #[test]
    fn bad_geometry_and_short_buffers_are_errors() {
        let data = vec![128u8; 64];
        for (w, h, stride, expect) in [
            (3, 2, 8, "even"),
            (0, 2, 8, "even"),
            (4, 1, 8, "at least 2"),
            (4, 2, 6, "stride"),
            (8, 5, 16, "short YUYV frame"),
            (4, 8, 12, "short YUYV frame"),
        ] {
            let err = yuyv_to_i420(&data, w, h, stride).unwrap_err().to_string();
            assert!(err.contains(expect), "{w}x{h}/{stride}: {err}");
        }
        // Exactly enough: the last row needs no padding after it.
        assert!(yuyv_to_i420(&data[..8 * 3 + 4], 2, 4, 8).is_ok());
    }
}
