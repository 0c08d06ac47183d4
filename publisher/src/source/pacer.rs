//! Paces a source to a fixed rate: frame `n` is due at `start + n / fps`. If the source falls
//! more than two periods behind (a slow fetch, a busy machine) the schedule restarts from now
//! instead of bursting out the missed frames.

use std::time::{Duration, Instant};

/// A fixed-rate schedule.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    start: Option<Instant>,
    /// Ticks since `start`.
    ticks: u32,
}

impl Pacer {
    /// A schedule of `fps` ticks per second (at least 1).
    pub fn new(fps: u32) -> Self {
        Pacer {
            period: Duration::from_secs(1) / fps.max(1),
            start: None,
            ticks: 0,
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// How long to wait from `now` until the next tick, and count that tick. The first tick
    /// is due at once.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        let start = *self.start.get_or_insert(now);
        let due = start + self.period * self.ticks;
        self.ticks += 1;
        if due > now {
            return due - now;
        }
        if now - due > self.period * 2 {
            self.start = Some(now);
            self.ticks = 1;
        }
        Duration::ZERO
    }

    /// Sleep until the next tick.
    pub fn wait(&mut self) {
        let delay = self.next_delay(Instant::now());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_spaced_by_the_period() {
        let mut p = Pacer::new(10);
        let t0 = Instant::now();
        assert_eq!(p.next_delay(t0), Duration::ZERO);
        assert_eq!(p.next_delay(t0), Duration::from_millis(100));
        // Called late but within two periods: no wait, schedule kept.
        assert_eq!(
            p.next_delay(t0 + Duration::from_millis(250)),
            Duration::ZERO
        );
        assert_eq!(
            p.next_delay(t0 + Duration::from_millis(250)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn a_long_stall_restarts_the_schedule() {
        let mut p = Pacer::new(10);
        let t0 = Instant::now();
        p.next_delay(t0);
        let late = t0 + Duration::from_secs(5);
        assert_eq!(p.next_delay(late), Duration::ZERO);
        // Next tick one period after the stall, not a burst of 49 catch-up frames.
        assert_eq!(p.next_delay(late), Duration::from_millis(100));
        assert_eq!(Pacer::new(0).period(), Duration::from_secs(1));
    }
}
