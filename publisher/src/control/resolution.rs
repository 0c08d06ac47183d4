//! Which picture sizes a source offers viewers, and picking the nearest one for a preset.
//!
//! Sizes come from software scaling, so any source can offer them; only sizes no larger than
//! the source's own and of (nearly) its shape are offered: enlarging adds bits, not detail,
//! and another shape would stretch the picture.

/// Common sizes, offered when they fit the source.
pub const STANDARD_SIZES: &[(u32, u32)] = &[
    (320, 180),
    (320, 240),
    (640, 360),
    (640, 480),
    (960, 540),
    (1280, 720),
    (1920, 1080),
];

/// Smallest side offered (the encoder's minimum).
const MIN_SIDE: u32 = 16;

/// How far a size's aspect ratio may be from the source's and still be offered (3 %).
const ASPECT_TOLERANCE: f64 = 0.03;

/// `v` rounded down to even (I420 needs even sides).
pub fn even_floor(v: u32) -> u32 {
    v & !1
}

/// The sizes offered for a source whose frames are `native`: the standard sizes that fit
/// and have its shape, its half and quarter, and itself; smallest first, no duplicates.
pub fn offered_sizes(native: (u32, u32)) -> Vec<(u32, u32)> {
    let (nw, nh) = (even_floor(native.0), even_floor(native.1));
    if nw < MIN_SIDE || nh < MIN_SIDE {
        // Too small to scale down: only as it is (and the encoder will say if it cannot).
        return vec![(nw.max(2), nh.max(2))];
    }
    let aspect = nw as f64 / nh as f64;
    let same_shape =
        |(w, h): (u32, u32)| ((w as f64 / h as f64) - aspect).abs() / aspect <= ASPECT_TOLERANCE;
    let mut sizes: Vec<(u32, u32)> = STANDARD_SIZES
        .iter()
        .copied()
        .filter(|&(w, h)| w <= nw && h <= nh && same_shape((w, h)))
        .collect();
    for div in [2, 4] {
        let s = (even_floor(nw / div), even_floor(nh / div));
        if s.0 >= MIN_SIDE && s.1 >= MIN_SIDE {
            sizes.push(s);
        }
    }
    sizes.push((nw, nh));
    sizes.sort_by_key(|&(w, h)| (w * h, w));
    sizes.dedup();
    sizes
}

/// The offered size closest to `wanted` in area (on a log scale, so 2× too big and 2× too
/// small count the same); on a tie the smaller. `None` only if `offered` is empty.
pub fn nearest(offered: &[(u32, u32)], wanted: (u32, u32)) -> Option<(u32, u32)> {
    let target = u128::from(wanted.0.max(1)) * u128::from(wanted.1.max(1));
    // The distance as the fraction larger/smaller ≥ 1, compared exactly by cross-multiplying.
    let ratio = |s: &(u32, u32)| {
        let area = u128::from(s.0) * u128::from(s.1);
        (area.max(target), area.min(target).max(1))
    };
    offered.iter().copied().min_by(|a, b| {
        let ((an, ad), (bn, bd)) = (ratio(a), ratio(b));
        (an * bd)
            .cmp(&(bn * ad))
            .then((a.0 * a.1).cmp(&(b.0 * b.1)))
    })
}

/// `320x180, 640x360, ...` for messages.
pub fn format_sizes(sizes: &[(u32, u32)]) -> String {
    sizes
        .iter()
        .map(|(w, h)| format!("{w}x{h}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_720p_source_offers_16_9_sizes_up_to_its_own() {
        assert_eq!(
            offered_sizes((1280, 720)),
            vec![(320, 180), (640, 360), (960, 540), (1280, 720)]
        );
        assert_eq!(
            offered_sizes((1920, 1080)),
            vec![
                (320, 180),
                (480, 270),
                (640, 360),
                (960, 540),
                (1280, 720),
                (1920, 1080)
            ]
        );
    }

    #[test]
    fn a_4_3_source_offers_4_3_sizes() {
        assert_eq!(
            offered_sizes((640, 480)),
            vec![(160, 120), (320, 240), (640, 480)]
        );
        // 800x600 (an ESP32-CAM SVGA): its halves plus the standard 4:3 sizes below it.
        assert_eq!(
            offered_sizes((800, 600)),
            vec![(200, 150), (320, 240), (400, 300), (640, 480), (800, 600)]
        );
    }

    #[test]
    fn odd_and_tiny_sources() {
        // Odd sides are rounded down to even; halves too.
        assert_eq!(
            offered_sizes((641, 361)),
            vec![(160, 90), (320, 180), (640, 360)]
        );
        assert_eq!(offered_sizes((20, 10)), vec![(20, 10)]);
        // Halves below the encoder's minimum are not offered.
        assert_eq!(offered_sizes((40, 32)), vec![(20, 16), (40, 32)]);
    }

    #[test]
    fn nearest_by_area() {
        let hd = offered_sizes((1920, 1080));
        assert_eq!(nearest(&hd, (640, 360)), Some((640, 360)));
        assert_eq!(nearest(&hd, (3840, 2160)), Some((1920, 1080)));
        let vga = offered_sizes((640, 480));
        // 640x360 on a 4:3 source: 640x480 (1.33× the area) beats 320x240 (1/3 of it).
        assert_eq!(nearest(&vga, (640, 360)), Some((640, 480)));
        assert_eq!(nearest(&vga, (1920, 1080)), Some((640, 480)));
        // Equal distance either way: the smaller.
        assert_eq!(
            nearest(&[(100, 100), (400, 100)], (200, 100)),
            Some((100, 100))
        );
        assert_eq!(nearest(&[], (1, 1)), None);
        assert_eq!(format_sizes(&vga), "160x120, 320x240, 640x480");
    }
}
