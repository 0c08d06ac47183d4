//! Token bucket: how many control commands a viewer (or an API caller) may send. Plain
//! state, no I/O.

use std::time::{Duration, Instant};

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second (sustained commands per second). Must be > 0.
    pub per_second: f64,
    /// Bucket size: commands accepted at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 10 commands/s, bursts of 20: a person dragging a slider stays under it (clients
    /// should still send at most one update per slider movement they settle on).
    fn default() -> Self {
        RateLimit {
            per_second: 10.0,
            burst: 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Full again at `now`: as good as a new bucket, so it can be forgotten and made anew
    /// later without anyone gaining or losing a token.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.limit.per_second.max(0.0) >= f64::from(self.limit.burst)
    }

    /// Take one token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let rate = self.limit.per_second.max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            // Round up to a whole millisecond so "retry after" is never too early.
            Err(Duration::from_millis(
                (wait * 1000.0).ceil().min(3.6e6) as u64
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 20,
    };

    #[test]
    fn a_full_bucket_takes_a_burst_then_refuses() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for i in 0..20 {
            assert!(b.take(t0).is_ok(), "command {i} of the burst");
        }
        assert_eq!(b.take(t0), Err(Duration::from_millis(100)));
        assert_eq!(
            b.take(t0 + Duration::from_millis(40)),
            Err(Duration::from_millis(60))
        );
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_cap_at_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..20 {
            b.take(t0).unwrap();
        }
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.take(t1).is_ok());
        assert!(b.take(t1).is_err());
        // A long quiet spell refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        let ok = (0..25).filter(|_| b.take(t2).is_ok()).count();
        assert_eq!(ok, 20);
    }

    #[test]
    fn sustained_rate_is_held() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        // 30 commands/s for 10 s: 20 (burst) + 100 (10/s) get through.
        let ok = (0..300)
            .filter(|i| b.take(t0 + Duration::from_micros(33_334 * i)).is_ok())
            .count();
        assert!((118..=121).contains(&ok), "{ok}");
    }

    #[test]
    fn a_bucket_is_full_again_once_it_has_refilled() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        assert!(b.is_full(t0));
        b.take(t0).unwrap();
        assert!(!b.is_full(t0));
        assert!(!b.is_full(t0 + Duration::from_millis(99)));
        assert!(b.is_full(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 1.0,
                burst: 1,
            },
            t0,
        );
        b.take(t0).unwrap();
        assert!(b.take(t0 - Duration::from_secs(5)).is_err());
        assert!(b.take(t0).is_err());
    }
}
