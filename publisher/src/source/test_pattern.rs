//! A synthetic moving picture: scrolling colour bars over a scrolling grey ramp, a bouncing
//! box, and the [barcode](crate::barcode) on top. Cheap by construction: the background rows
//! are precomputed once at twice the frame width, so scrolling is a per-row `memcpy` from a
//! moving offset; only the box is drawn per frame.

use std::time::{Duration, Instant};

use super::{CapturedFrame, Source};
use crate::barcode::{self, Stamp};
use crate::image::I420Frame;

/// BT.601 video-range YUV of the classic eight bars.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128), // white
    (210, 16, 146),  // yellow
    (170, 166, 16),  // cyan
    (145, 54, 34),   // green
    (106, 202, 222), // magenta
    (81, 90, 240),   // red
    (41, 240, 110),  // blue
    (16, 128, 128),  // black
];
/// Scroll speed, pixels per frame (even, so chroma scrolls by whole samples).
const SCROLL: usize = 4;

/// One precomputed background line, two frame widths long so any window of `width` pixels
/// starting below `width` is contiguous.
struct Line {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// The test-pattern source. [`TestPattern::render`] makes a frame without waiting;
/// [`Source::next_frame`] also paces to the frame rate.
pub struct TestPattern {
    width: usize,
    height: usize,
    fps: u32,
    tag: u16,
    bars: Line,
    ramp: Line,
    index: u32,
    start: Option<Instant>,
    /// Frame index the pacing schedule counts from (reset after a long stall).
    epoch_index: u32,
}

impl TestPattern {
    /// A pattern of `width`×`height` (even, at least 16×16) at `fps` (1..=240), stamped with
    /// camera tag `tag`.
    pub fn new(width: u32, height: u32, fps: u32, tag: u16) -> anyhow::Result<Self> {
        if width < 16 || height < 16 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            anyhow::bail!("test pattern: {width}x{height} must be even and at least 16x16");
        }
        if width > 7680 || height > 4320 {
            anyhow::bail!("test pattern: {width}x{height} is larger than 7680x4320");
        }
        if !(1..=240).contains(&fps) {
            anyhow::bail!("test pattern: fps {fps} is outside 1..=240");
        }
        let w = width as usize;
        Ok(TestPattern {
            width: w,
            height: height as usize,
            fps,
            tag,
            bars: line(w, |x| BARS[(x * 8 / w).min(7)]),
            ramp: line(w, |x| (16 + (x * 219 / w) as u8, 128, 128)),
            index: 0,
            start: None,
            epoch_index: 0,
        })
    }

    /// Render frame `index` captured at `capture_us` (no pacing; benchmarks and tests use it).
    pub fn render(&self, index: u32, capture_us: u64) -> I420Frame {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w / 2, h / 2);
        let mut f = I420Frame {
            width: w as u32,
            height: h as u32,
            y: vec![0; w * h],
            u: vec![0; cw * ch],
            v: vec![0; cw * ch],
        };
        // Scroll offset: always even so luma and chroma stay aligned.
        let off = ((index as usize * SCROLL) % w) & !1;
        let split = h * 2 / 3;
        for row in 0..h {
            let src = if row < split { &self.bars } else { &self.ramp };
            f.y[row * w..(row + 1) * w].copy_from_slice(&src.y[off..off + w]);
        }
        for row in 0..ch {
            let src = if row * 2 < split {
                &self.bars
            } else {
                &self.ramp
            };
            let o = off / 2;
            f.u[row * cw..(row + 1) * cw].copy_from_slice(&src.u[o..o + cw]);
            f.v[row * cw..(row + 1) * cw].copy_from_slice(&src.v[o..o + cw]);
        }
        self.draw_box(&mut f, index);
        barcode::burn(
            &mut f,
            &Stamp {
                frame: index,
                capture_us,
                tag: self.tag,
            },
        );
        f
    }

    /// A bouncing orange box (about a tenth of the height) below the barcode strip.
    fn draw_box(&self, f: &mut I420Frame, index: u32) {
        let (w, h) = (self.width, self.height);
        let size = (h / 10).max(8) & !1;
        let top = barcode::strip_height(w).min(h);
        if size >= w || top + size >= h {
            return;
        }
        let x = bounce(index as usize * 6, w - size) & !1;
        let y = top + (bounce(index as usize * 3, h - top - size) & !1);
        for row in y..y + size {
            f.y[row * w + x..row * w + x + size].fill(180);
        }
        let cw = w / 2;
        for row in y / 2..(y + size) / 2 {
            f.u[row * cw + x / 2..row * cw + (x + size) / 2].fill(40);
            f.v[row * cw + x / 2..row * cw + (x + size) / 2].fill(200);
        }
    }
}

impl Source for TestPattern {
    fn dimensions(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let period = Duration::from_secs(1) / self.fps;
        let due = start + period * (self.index - self.epoch_index);
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > period * 2 {
            // We stalled (machine busy, debugger): restart the schedule instead of bursting
            // out the missed frames.
            self.start = Some(now);
            self.epoch_index = self.index;
        }
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        let capture_us = barcode::now_us();
        Ok(CapturedFrame::raw(
            self.render(index, capture_us),
            capture_us,
            index,
        ))
    }
}

/// Triangle wave: 0..=max..0 as `t` grows.
fn bounce(t: usize, max: usize) -> usize {
    if max == 0 {
        return 0;
    }
    let p = t % (2 * max);
    if p <= max {
        p
    } else {
        2 * max - p
    }
}

/// A background line of `2 * w` pixels whose colour at `x` is `colour(x % w)`.
fn line(w: usize, colour: impl Fn(usize) -> (u8, u8, u8)) -> Line {
    let y = (0..2 * w).map(|x| colour(x % w).0).collect();
    let u = (0..w).map(|cx| colour((cx * 2) % w).1).collect();
    let v = (0..w).map(|cx| colour((cx * 2) % w).2).collect();
    Line { y, u, v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_stamp_and_move() {
        let tp = TestPattern::new(640, 360, 30, 0xabcd).unwrap();
        let a = tp.render(0, 111);
        let b = tp.render(1, 222);
        assert_ne!(a.y, b.y, "the picture must move");
        let s = barcode::read(&b.y, 640, 640, 360).unwrap();
        assert_eq!((s.frame, s.capture_us, s.tag), (1, 222, 0xabcd));
        assert_eq!(a.u.len(), 320 * 180);
    }

    #[test]
    fn odd_or_tiny_sizes_and_bad_fps_are_errors() {
        assert!(TestPattern::new(641, 360, 30, 0).is_err());
        assert!(TestPattern::new(8, 8, 30, 0).is_err());
        assert!(TestPattern::new(640, 360, 0, 0).is_err());
        // Small but valid: renders without a barcode strip overflowing.
        let tp = TestPattern::new(16, 16, 30, 0).unwrap();
        assert_eq!(tp.render(5, 0).y.len(), 256);
    }

    #[test]
    fn every_scroll_offset_renders() {
        let tp = TestPattern::new(320, 240, 30, 1).unwrap();
        for i in 0..200 {
            let f = tp.render(i, i as u64);
            assert_eq!(barcode::read(&f.y, 320, 320, 240).unwrap().frame, i);
        }
    }

    #[test]
    fn next_frame_is_paced() {
        let mut tp = TestPattern::new(64, 64, 50, 1).unwrap();
        let t0 = Instant::now();
        for i in 0..6 {
            assert_eq!(tp.next_frame().unwrap().index, i);
        }
        // Frames 0..5 are due at 0, 20, ..., 100 ms.
        assert!(
            t0.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t0.elapsed()
        );
    }
}
