//! Shared sample arithmetic for the raw-format converters: JPEG's full-range YCbCr (JFIF,
//! 0..=255) to the video-range BT.601 I420 the encoder and the test pattern use (Y 16..=235,
//! Cb/Cr 16..=240), through lookup tables built at compile time.

/// Full-range luma → video-range luma: `16 + y * 219 / 255`, rounded.
pub(crate) static Y_FULL_TO_VIDEO: [u8; 256] = build_lut(219, 16);
/// Full-range chroma → video-range chroma: `128 + (c - 128) * 224 / 255`, rounded.
pub(crate) static C_FULL_TO_VIDEO: [u8; 256] = build_chroma_lut();

/// Video-range luma → full-range luma (clamped): `(y - 16) * 255 / 219`, rounded.
pub(crate) static Y_VIDEO_TO_FULL: [u8; 256] = build_expand_lut(16, 0, 219);
/// Video-range chroma → full-range chroma (clamped): `128 + (c - 128) * 255 / 224`, rounded.
pub(crate) static C_VIDEO_TO_FULL: [u8; 256] = build_expand_lut(128, 128, 224);

/// `to + (i - from) * 255 / span`, rounded half away from zero and clamped to 0..=255:
/// `from` (video black, or chroma's centre) maps to `to`, and `span` steps to 255.
const fn build_expand_lut(from: i32, to: i32, span: i32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let d = (i as i32 - from) * 255;
        let q = if d >= 0 {
            (d + span / 2) / span
        } else {
            (d - span / 2) / span
        };
        let v = to + q;
        lut[i] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        i += 1;
    }
    lut
}

const fn build_lut(span: i32, offset: i32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        lut[i] = (offset + (i as i32 * span + 127) / 255) as u8;
        i += 1;
    }
    lut
}

const fn build_chroma_lut() -> [u8; 256] {
    let mut lut = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let d = (i as i32 - 128) * 224;
        // Round half away from zero so the table is symmetric around 128.
        let q = if d >= 0 {
            (d + 127) / 255
        } else {
            (d - 127) / 255
        };
        lut[i] = (128 + q) as u8;
        i += 1;
    }
    lut
}

/// Mean of four samples, rounded.
#[inline(always)]
pub(crate) fn avg4(a: u8, b: u8, c: u8, d: u8) -> u8 {
    ((a as u16 + b as u16 + c as u16 + d as u16 + 2) >> 2) as u8
}

/// Mean of two samples, rounded.
#[inline(always)]
pub(crate) fn avg2(a: u8, b: u8) -> u8 {
    ((a as u16 + b as u16 + 1) >> 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_tables_hit_the_video_range_ends() {
        assert_eq!(Y_FULL_TO_VIDEO[0], 16);
        assert_eq!(Y_FULL_TO_VIDEO[255], 235);
        assert_eq!(C_FULL_TO_VIDEO[0], 16);
        assert_eq!(C_FULL_TO_VIDEO[128], 128);
        assert_eq!(C_FULL_TO_VIDEO[255], 240);
        // Monotonic: no sample ever swaps order.
        for i in 1..256 {
            assert!(Y_FULL_TO_VIDEO[i] >= Y_FULL_TO_VIDEO[i - 1]);
            assert!(C_FULL_TO_VIDEO[i] >= C_FULL_TO_VIDEO[i - 1]);
        }
        // Symmetric chroma around the neutral value.
        for d in 1..128 {
            assert_eq!(
                C_FULL_TO_VIDEO[128 + d] as i32 - 128,
                128 - C_FULL_TO_VIDEO[128 - d] as i32
            );
        }
    }

    #[test]
    fn expanding_undoes_the_video_range() {
        assert_eq!(Y_VIDEO_TO_FULL[16], 0);
        assert_eq!(Y_VIDEO_TO_FULL[235], 255);
        assert_eq!(Y_VIDEO_TO_FULL[0], 0);
        assert_eq!(Y_VIDEO_TO_FULL[255], 255);
        assert_eq!(C_VIDEO_TO_FULL[16], 0);
        assert_eq!(C_VIDEO_TO_FULL[128], 128);
        assert_eq!(C_VIDEO_TO_FULL[240], 255);
        // There and back moves no sample by more than one step.
        for i in 0..256 {
            let y = Y_VIDEO_TO_FULL[Y_FULL_TO_VIDEO[i] as usize] as i32;
            let c = C_VIDEO_TO_FULL[C_FULL_TO_VIDEO[i] as usize] as i32;
            assert!((y - i as i32).abs() <= 1, "luma {i} → {y}");
            assert!((c - i as i32).abs() <= 1, "chroma {i} → {c}");
        }
    }

    #[test]
    fn averages_round() {
        assert_eq!(avg4(0, 0, 0, 1), 0);
        assert_eq!(avg4(0, 0, 1, 1), 1);
        assert_eq!(avg4(255, 255, 255, 255), 255);
        assert_eq!(avg2(0, 1), 1);
        assert_eq!(avg2(255, 255), 255);
    }
}
