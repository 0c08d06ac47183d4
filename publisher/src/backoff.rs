//! Capped, jittered exponential backoff between reconnect attempts: 250 ms doubling up to 5 s,
//! each delay spread ±25% so many publishers restarting together do not reconnect in lockstep.
//!
//! Reconnects to the server add a quick phase ([`Backoff::reconnect`]): a deploy restarts the
//! server within seconds, and every second a publisher or viewer waits on top of that is a
//! second of black screen. So the first attempts (about 20 s' worth) are at most 500 ms
//! apart; only a server that stays away is asked less often. A refused connection costs the
//! server nothing.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Fraction of the delay the jitter may add or remove (0.25 = ±25%).
    jitter: f64,
    attempt: u32,
    /// The first `quick_attempts` delays are capped at `quick_cap` instead of `cap`.
    quick_attempts: u32,
    quick_cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(5), 0.25)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, jitter: f64) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            jitter: jitter.clamp(0.0, 1.0),
            attempt: 0,
            quick_attempts: 0,
            quick_cap: cap,
        }
    }

    /// For reconnecting to the server: the default, with a quick phase of 40 attempts at
    /// most 500 ms apart (about 20 s) before the delays grow to 5 s.
    pub fn reconnect() -> Self {
        Backoff::default().with_quick_phase(40, Duration::from_millis(500))
    }

    /// Cap the first `attempts` delays at `cap` (a server that is only restarting comes
    /// back quickly); later delays grow as usual.
    pub fn with_quick_phase(mut self, attempts: u32, cap: Duration) -> Self {
        self.quick_attempts = attempts;
        self.quick_cap = cap.max(self.base);
        self
    }

    /// The delay before the next attempt, with random jitter; advances the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }

    /// Like [`next_delay`](Self::next_delay) with the random draw `unit` (in 0..1) given, so
    /// tests can pin it: 0 → −jitter, 0.5 → exact, 1 → +jitter.
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let nominal = self.nominal(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        nominal.mul_f64(factor)
    }

    /// Back to the base delay (after a session that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    fn nominal(&self, attempt: u32) -> Duration {
        // 2^16 × base is far past any sane cap; stop doubling there to avoid overflow.
        let doubled = self.base.saturating_mul(1u32 << attempt.min(16));
        let cap = if attempt < self.quick_attempts {
            self.quick_cap.min(self.cap)
        } else {
            self.cap
        };
        doubled.min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::default();
        let got: Vec<u128> = (0..8).map(|_| b.next_delay_with(0.5).as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        // Very many attempts: still the cap, no overflow.
        for _ in 0..100 {
            b.next_delay_with(0.5);
        }
        assert_eq!(b.next_delay_with(0.5), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay_with(0.0), Duration::from_micros(187_500));
        b.reset();
        assert_eq!(b.next_delay_with(1.0), Duration::from_micros(312_500));
        for _ in 0..200 {
            let mut b = Backoff::default();
            let d = b.next_delay();
            assert!(d >= Duration::from_micros(187_500) && d <= Duration::from_micros(312_500));
        }
    }

    #[test]
    fn reconnects_stay_quick_for_a_while_then_slow_down() {
        let mut b = Backoff::reconnect();
        let got: Vec<u128> = (0..42)
            .map(|_| b.next_delay_with(0.5).as_millis())
            .collect();
        assert_eq!(got[..4], [250, 500, 500, 500]);
        assert!(got[..40].iter().all(|&d| d <= 500));
        let quick: u128 = got[..40].iter().sum();
        assert!(
            (15_000..=25_000).contains(&quick),
            "quick phase lasts {quick} ms"
        );
        assert_eq!(got[40..], [5000, 5000], "then the usual cap");
        b.reset();
        assert_eq!(b.next_delay_with(0.5), Duration::from_millis(250));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default();
        b.next_delay_with(0.5);
        b.next_delay_with(0.5);
        assert_eq!(b.attempt(), 2);
        b.reset();
        assert_eq!(b.next_delay_with(0.5), Duration::from_millis(250));
    }
}
