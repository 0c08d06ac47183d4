//! Reconnect delays: exponential, capped, with a little jitter so many viewers that lost the
//! same server do not all knock at the same instant.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        // Jitter only needs to differ between viewers, not be unpredictable.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1)
            | 1;
        Backoff {
            initial,
            max,
            next: initial,
            seed,
        }
    }

    /// The delay before the next attempt: the current step plus up to 25 % jitter, then the
    /// step doubles up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        let base = self.next;
        let jitter = base.mul_f64((self.seed % 1000) as f64 / 4000.0);
        self.next = (self.next * 2).min(self.max);
        (base + jitter).min(self.max)
    }

    /// After a success, start again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(i, m);
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= i && delays[0] <= i.mul_f64(1.25));
        assert!(delays[1] >= i * 2);
        assert!(delays.iter().all(|d| *d <= m));
        assert_eq!(*delays.last().unwrap(), m);
        b.reset();
        assert!(b.next_delay() <= i.mul_f64(1.25));
    }
}
