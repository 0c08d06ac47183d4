//! Repeated failed authentications from one address are refused for a while, so a stranger
//! cannot guess tokens (or flood the token check) at full speed. Plain state, no clock of
//! its own: callers pass the time.
//!
//! After [`MAX_FAILURES`] failures within [`WINDOW`] from one address, its attempts are
//! refused for [`BLOCK`]. A request with a valid token is never refused: the caller checks
//! the token first and only asks here when it has none that works.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const BLOCK: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it, the ones with nothing recent are forgotten.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Default)]
struct Record {
    /// Times of the failures inside the window, oldest first.
    recent: Vec<Instant>,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct AuthFailures {
    by_address: HashMap<IpAddr, Record>,
}

impl AuthFailures {
    /// `Some(wait)` while `ip` is blocked.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.by_address.get(&ip.to_canonical())?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Count one failure from `ip`; returns true if that starts a block.
    pub fn record(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.by_address.len() >= MAX_ADDRESSES {
            self.forget_quiet(now);
        }
        let r = self.by_address.entry(ip.to_canonical()).or_default();
        r.recent.retain(|t| now.duration_since(*t) < WINDOW);
        r.recent.push(now);
        if r.recent.len() >= MAX_FAILURES && r.blocked_until.is_none_or(|u| u <= now) {
            r.blocked_until = Some(now + BLOCK);
            r.recent.clear();
            return true;
        }
        false
    }

    fn forget_quiet(&mut self, now: Instant) {
        self.by_address.retain(|_, r| {
            r.blocked_until.is_some_and(|u| u > now)
                || r.recent
                    .last()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
        // Still full (a wide spray of addresses): forget everyone not blocked.
        if self.by_address.len() >= MAX_ADDRESSES {
            self.by_address
                .retain(|_, r| r.blocked_until.is_some_and(|u| u > now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn twenty_failures_in_a_minute_block_for_a_minute() {
        let mut f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..19 {
            assert!(!f.record(A, t0 + Duration::from_secs(i)));
            assert_eq!(f.blocked(A, t0 + Duration::from_secs(i)), None);
        }
        let t = t0 + Duration::from_secs(20);
        assert!(f.record(A, t));
        assert_eq!(f.blocked(A, t), Some(BLOCK));
        assert_eq!(f.blocked(B, t), None, "other addresses are not affected");
        // v4-mapped v6 is the same address.
        assert!(f.blocked("::ffff:10.0.0.1".parse().unwrap(), t).is_some());
        assert!(f.blocked(A, t + BLOCK - Duration::from_millis(1)).is_some());
        assert_eq!(f.blocked(A, t + BLOCK), None);
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_block() {
        let mut f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..40 {
            let t = t0 + Duration::from_secs(4 * i);
            assert!(!f.record(A, t), "failure {i}");
            assert_eq!(f.blocked(A, t), None);
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_addresses() {
        let mut f = AuthFailures::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            f.record(A, t0);
        }
        for i in 0..(3 * MAX_ADDRESSES as u32) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            f.record(ip, t0 + Duration::from_millis(1));
        }
        assert!(f.by_address.len() <= MAX_ADDRESSES);
        assert!(f.blocked(A, t0).is_some(), "blocked addresses are kept");
    }
}
