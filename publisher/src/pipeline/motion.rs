//! Motion detection, the built-in `"motion"` model of the `ai_*` settings: a cheap detector
//! on the frames being sent, as plain state (frames and times in, events out).
//!
//! How: the luma plane is reduced to 8×8-pixel cells (the mean of 16 samples each, so
//! sensor noise averages out), and each cell is compared with a slowly updated background
//! (a running mean, an eighth of the way per frame). A cell whose mean differs from the
//! background by more than [`CELL_CHANGE`] has changed. The frame's score is
//! √(changed share of the picture / [`FULL_SCALE`]), at most 1: 1 % of the picture
//! changed scores 1.0, 0.25 % scores 0.5, one cell of a 720p picture about 0.08. The
//! running background makes a moving thing count with its whole area, not only its edges,
//! and lets slow light changes fade in without events.
//!
//! Events: `start` when two frames in a row score at least the threshold (`ai_confidence`),
//! with the changed cells' bounding box; `end` once no frame has reached it for
//! [`END_AFTER_MS`], with the bounding box of all the motion and the peak score. Regions are
//! in pixels of the picture as sent.

use sightline_protocol::control::{MotionEvent, MotionPhase};
use tokio::sync::mpsc;

use crate::image::I420Frame;

/// Where the encode thread's events go: the session, which tells every viewer.
pub type MotionOutbox = mpsc::UnboundedSender<MotionEvent>;

/// The model's name in `ai_model`.
pub const MODEL: &str = "motion";
/// Cell side in pixels.
const CELL: usize = 8;
/// A cell's mean luma must move this far from the background to count as changed.
const CELL_CHANGE: u16 = 10;
/// The changed share of the picture that scores 1.0.
pub const FULL_SCALE: f64 = 0.01;
/// Frames in a row at or above the threshold before motion starts.
const START_FRAMES: u32 = 2;
/// Quiet time before motion ends.
pub const END_AFTER_MS: u64 = 1000;
/// Background weight: it moves 1/2^BACKGROUND_SHIFT of the way to each frame.
const BACKGROUND_SHIFT: u32 = 3;

/// The detector for one stream. Cheap when idle: nothing is kept until the first frame.
#[derive(Debug, Default)]
pub struct MotionDetector {
    /// The picture size the cells were made for.
    size: (u32, u32),
    /// Background cell means in 1/16 luma steps (fixed point, so the running mean moves
    /// by fractions).
    background: Vec<u16>,
    /// This frame's cell means, kept to avoid an allocation per frame.
    cells: Vec<u16>,
    /// Consecutive frames at or above the threshold.
    above: u32,
    active: Option<Active>,
}

#[derive(Debug)]
struct Active {
    /// Union of the changed cells' boxes, in cells: (x0, y0, x1, y1), exclusive ends.
    bounds: (usize, usize, usize, usize),
    peak: f64,
    last_above_ms: u64,
}

impl MotionDetector {
    /// Look at `frame` (captured at `ts` ms since the Unix epoch) with `threshold` 0..=1; an
    /// event when motion starts or ends.
    pub fn observe(&mut self, frame: &I420Frame, ts: u64, threshold: f64) -> Option<MotionEvent> {
        let size = (frame.width, frame.height);
        let (gw, gh) = (frame.width as usize / CELL, frame.height as usize / CELL);
        if gw == 0 || gh == 0 || frame.y.len() < (frame.width * frame.height) as usize {
            return None;
        }
        if self.size != size {
            // A new picture size: start over (motion in progress ends with the old size).
            let ended = self.end(ts);
            self.size = size;
            self.measure(frame);
            self.background = self.cells.clone();
            self.above = 0;
            return ended;
        }
        self.measure(frame);
        let threshold = threshold.clamp(0.0, 1.0);
        let (changed, bounds) = self.compare();
        let score = (changed as f64 / (gw * gh) as f64 / FULL_SCALE)
            .sqrt()
            .min(1.0);
        let hit = changed > 0 && score >= threshold;
        self.above = if hit { self.above + 1 } else { 0 };
        match &mut self.active {
            Some(a) => {
                if hit {
                    a.last_above_ms = ts;
                    a.peak = a.peak.max(score);
                    a.bounds = union(a.bounds, bounds);
                } else if ts.saturating_sub(a.last_above_ms) >= END_AFTER_MS {
                    return self.end(ts);
                }
                None
            }
            None if self.above >= START_FRAMES => {
                self.active = Some(Active {
                    bounds,
                    peak: score,
                    last_above_ms: ts,
                });
                Some(self.event(MotionPhase::Start, bounds, score, ts))
            }
            None => None,
        }
    }

    /// End any motion in progress (detection turned off, the stream stops) and forget the
    /// background.
    pub fn reset(&mut self, ts: u64) -> Option<MotionEvent> {
        let ended = self.end(ts);
        *self = MotionDetector::default();
        ended
    }

    fn end(&mut self, ts: u64) -> Option<MotionEvent> {
        let a = self.active.take()?;
        self.above = 0;
        Some(self.event(MotionPhase::End, a.bounds, a.peak, ts))
    }

    fn event(
        &self,
        phase: MotionPhase,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
        score: f64,
        ts: u64,
    ) -> MotionEvent {
        let px = |c: usize| (c * CELL) as u32;
        MotionEvent {
            phase,
            region: [px(x0), px(y0), px(x1 - x0), px(y1 - y0)],
            score: (score * 1000.0).round() / 1000.0,
            ts,
        }
    }

    /// Cells across and down.
    fn grid(&self) -> (usize, usize) {
        (self.size.0 as usize / CELL, self.size.1 as usize / CELL)
    }

    /// Cell means of `frame` into `self.cells`, in 1/16 steps: 16 samples per cell (every
    /// other pixel of every other row), so the sum is already the fixed-point mean.
    fn measure(&mut self, frame: &I420Frame) {
        let (gw, gh) = self.grid();
        let w = frame.width as usize;
        self.cells.clear();
        self.cells.resize(gw * gh, 0);
        for cy in 0..gh {
            let row_cells = &mut self.cells[cy * gw..(cy + 1) * gw];
            for r in (0..CELL).step_by(2) {
                let line = &frame.y[(cy * CELL + r) * w..(cy * CELL + r) * w + gw * CELL];
                for (cell, px) in row_cells.iter_mut().zip(line.chunks_exact(CELL)) {
                    *cell += px[0] as u16 + px[2] as u16 + px[4] as u16 + px[6] as u16;
                }
            }
        }
    }

    /// Count the cells that differ from the background and their bounding box; then move
    /// the background towards this frame.
    fn compare(&mut self) -> (usize, (usize, usize, usize, usize)) {
        let gw = self.grid().0;
        let mut changed = 0;
        let mut bounds = (usize::MAX, usize::MAX, 0, 0);
        for (i, (bg, &now)) in self.background.iter_mut().zip(&self.cells).enumerate() {
            if bg.abs_diff(now) > CELL_CHANGE * 16 {
                changed += 1;
                let (x, y) = (i % gw, i / gw);
                bounds = (
                    bounds.0.min(x),
                    bounds.1.min(y),
                    bounds.2.max(x + 1),
                    bounds.3.max(y + 1),
                );
            }
            // Signed step, so the background moves both ways by at least one 1/16 step.
            let diff = i32::from(now) - i32::from(*bg);
            let step = diff >> BACKGROUND_SHIFT;
            let step = if step == 0 { diff.signum() } else { step };
            *bg = (i32::from(*bg) + step) as u16;
        }
        if changed == 0 {
            bounds = (0, 0, 0, 0);
        }
        (changed, bounds)
    }
}

fn union(
    a: (usize, usize, usize, usize),
    b: (usize, usize, usize, usize),
) -> (usize, usize, usize, usize) {
    (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A still grey picture with sensor noise (±`noise` luma per pixel, a new draw every
    /// frame) and, optionally, a bright `side`-pixel box at `at`.
    fn picture(
        w: u32,
        h: u32,
        seed: &mut u64,
        noise: i32,
        boxed: Option<((usize, usize), usize)>,
    ) -> I420Frame {
        let mut f = I420Frame::black(w, h);
        for (i, p) in f.y.iter_mut().enumerate() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let n = (*seed % (2 * noise as u64 + 1)) as i32 - noise;
            let (x, y) = (i % w as usize, i / w as usize);
            let base = 60 + (x * 80 / w as usize) as i32 + (y % 13) as i32;
            *p = (base + n).clamp(16, 235) as u8;
        }
        if let Some(((bx, by), side)) = boxed {
            for row in by..by + side {
                f.y[row * w as usize + bx..row * w as usize + bx + side].fill(200);
            }
        }
        f
    }

    #[test]
    fn a_still_noisy_picture_never_starts_motion() {
        let mut d = MotionDetector::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for i in 0..300 {
            let f = picture(640, 360, &mut seed, 12, None);
            assert_eq!(d.observe(&f, i * 33, 0.1), None, "frame {i}");
        }
    }

    #[test]
    fn a_moving_box_starts_and_ends_motion_where_it_moved() {
        let mut d = MotionDetector::default();
        let mut seed = 1;
        let mut events = Vec::new();
        let mut ts = 0;
        // Still, then a 48-pixel box crossing from x=100 to x=340 at y=150, then still.
        let mut frames: Vec<Option<((usize, usize), usize)>> = vec![None; 30];
        frames.extend((0..30).map(|i| Some(((100 + i * 8, 150), 48))));
        frames.extend(vec![None; 60]);
        for boxed in frames {
            let f = picture(640, 360, &mut seed, 4, boxed);
            events.extend(d.observe(&f, ts, 0.5));
            ts += 33;
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let (start, end) = (&events[0], &events[1]);
        assert_eq!(start.phase, MotionPhase::Start);
        assert!(start.score >= 0.5, "{start:?}");
        assert!(start.ts >= 30 * 33 && start.ts <= 33 * 33, "{start:?}");
        // The region holds the box where it was at that frame.
        let bx = (100 + (start.ts / 33 - 30) * 8) as u32;
        let [x, y, w, h] = start.region;
        assert!(x <= bx && x + w >= bx + 48, "{start:?}");
        assert!(y <= 150 && y + h >= 198, "{start:?}");
        assert_eq!(end.phase, MotionPhase::End);
        let [x, y, w, h] = end.region;
        // From its position when motion started (its second frame) to its last.
        assert!(x <= 108 && x + w >= 376, "the whole path: {end:?}");
        assert!(y <= 150 && y + h <= 210, "{end:?}");
        assert!(end.score >= start.score);
        // The box stopped at frame 59; the background forgets it within a few frames and
        // motion ends about a second after that.
        let stopped = 59 * 33;
        assert!(end.ts >= stopped + END_AFTER_MS && end.ts <= stopped + END_AFTER_MS + 700);
    }

    #[test]
    fn the_threshold_is_the_confidence() {
        // A small box (8 px, parts of 4 cells) moving: about 0.1 % of the picture, a low score.
        let run = |threshold: f64| {
            let mut d = MotionDetector::default();
            let mut seed = 7;
            (0..40u64)
                .filter_map(|i| {
                    let boxed = (i >= 10).then_some(((50 + i as usize * 8, 100), 8));
                    d.observe(&picture(640, 360, &mut seed, 3, boxed), i * 33, threshold)
                })
                .collect::<Vec<_>>()
        };
        assert!(run(0.9).is_empty(), "too little for 0.9");
        let low = run(0.2);
        assert_eq!(low.first().map(|e| e.phase), Some(MotionPhase::Start));
        assert!(low[0].score < 0.9, "{low:?}");
    }

    #[test]
    fn a_new_size_or_a_reset_ends_motion_in_progress() {
        let mut d = MotionDetector::default();
        let mut seed = 3;
        let mut started = false;
        for i in 0..10u64 {
            let f = picture(
                320,
                240,
                &mut seed,
                2,
                Some(((20 + i as usize * 20, 40), 40)),
            );
            started |= d.observe(&f, i * 33, 0.3).is_some();
        }
        assert!(started);
        let other = picture(160, 120, &mut seed, 2, None);
        let ended = d.observe(&other, 400, 0.3).expect("the old motion ends");
        assert_eq!(ended.phase, MotionPhase::End);
        assert_eq!(d.reset(500), None, "nothing in progress any more");
    }

    #[test]
    fn tiny_or_short_frames_are_ignored_not_a_panic() {
        let mut d = MotionDetector::default();
        assert_eq!(d.observe(&I420Frame::black(4, 4), 0, 0.5), None);
        let mut short = I420Frame::black(64, 64);
        short.y.truncate(100);
        assert_eq!(d.observe(&short, 0, 0.5), None);
        // Odd cell remainders (not a multiple of 8) are fine.
        let f = I420Frame::black(70, 50);
        assert_eq!(d.observe(&f, 0, 0.5), None);
        assert_eq!(d.observe(&f, 33, 0.5), None);
    }
}
