//! Lowering the frame rate in software: which captured frames to encode so that, on
//! average, `target` per second go out, spread as evenly as the source's timing allows.
//! Decided from capture times, so it holds whatever the source's real rate is.

/// Picks the frames to send. One per encode thread.
#[derive(Debug, Default)]
pub struct FrameRateLimiter {
    /// When the next frame is due, microseconds (capture clock).
    next_due_us: Option<u64>,
}

impl FrameRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to send the frame captured at `capture_us`, for `target_fps` out of a source
    /// delivering about `source_fps`. A target of 0, or at or above the source's rate, sends
    /// every frame.
    pub fn admit(&mut self, capture_us: u64, target_fps: u32, source_fps: u32) -> bool {
        if target_fps == 0 || target_fps >= source_fps {
            self.next_due_us = None;
            return true;
        }
        let interval = 1_000_000 / u64::from(target_fps);
        // A frame up to half a source interval early still counts as on time: source
        // timestamps jitter, and waiting for the next frame would be later still.
        let slack = 500_000 / u64::from(source_fps.max(1));
        match self.next_due_us {
            Some(due) if capture_us + slack < due => false,
            Some(due) => {
                // Keep the cadence; after a long gap (source stalled) start afresh.
                self.next_due_us = Some(if capture_us > due + interval {
                    capture_us + interval
                } else {
                    due + interval
                });
                true
            }
            None => {
                self.next_due_us = Some(capture_us + interval);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of `n` frames at `source_fps` (with timestamps jittered by `jitter_us`) pass.
    fn run(source_fps: u32, target_fps: u32, n: u64, jitter_us: i64) -> Vec<bool> {
        let mut limiter = FrameRateLimiter::new();
        (0..n)
            .map(|i| {
                let nominal = 1_000_000 + i * 1_000_000 / u64::from(source_fps);
                // A fixed pseudo-random wobble of ±jitter.
                let wobble = ((i * 7919) % 201) as i64 - 100;
                let t = (nominal as i64 + wobble * jitter_us / 100) as u64;
                limiter.admit(t, target_fps, source_fps)
            })
            .collect()
    }

    #[test]
    fn halving_takes_every_other_frame() {
        let sent = run(30, 15, 30, 0);
        assert_eq!(sent, (0..30).map(|i| i % 2 == 0).collect::<Vec<_>>());
        let third = run(30, 10, 30, 0);
        assert_eq!(third, (0..30).map(|i| i % 3 == 0).collect::<Vec<_>>());
    }

    #[test]
    fn uneven_ratios_average_out() {
        for (src, target) in [(30, 20), (30, 24), (25, 7), (60, 25), (30, 1)] {
            // 10 s of frames, timestamps jittered by up to ±3 ms.
            let sent = run(src, target, u64::from(src) * 10, 3_000);
            let count = sent.iter().filter(|s| **s).count() as i64;
            let want = i64::from(target) * 10;
            assert!(
                (count - want).abs() <= 1,
                "{src}→{target}: {count} sent, want {want}"
            );
        }
    }

    #[test]
    fn at_or_above_the_source_rate_everything_goes() {
        assert!(run(30, 30, 60, 3_000).iter().all(|s| *s));
        assert!(run(15, 30, 60, 0).iter().all(|s| *s));
        assert!(run(30, 0, 60, 0).iter().all(|s| *s));
    }

    #[test]
    fn a_stalled_source_restarts_the_cadence() {
        let mut l = FrameRateLimiter::new();
        assert!(l.admit(0, 10, 30));
        assert!(!l.admit(33_333, 10, 30));
        // Five seconds of nothing, then frames again: the first one goes at once and the
        // cadence follows from it, without a burst to "catch up".
        assert!(l.admit(5_000_000, 10, 30));
        assert!(!l.admit(5_033_333, 10, 30));
        assert!(!l.admit(5_066_667, 10, 30));
        assert!(l.admit(5_100_000, 10, 30));
    }
}
