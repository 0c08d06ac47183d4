//! Per-camera keyframe request gate: plain state, no I/O.
//!
//! Viewers that join, whose publisher changed, or that report a broken picture (PLI/FIR)
//! need a keyframe. They all share one publisher, so their needs collapse into one flag per
//! camera, and requests to the publisher are spaced by at least `interval`: fifty viewers
//! joining at once cost one PLI. A request that is not answered within `interval` is
//! repeated, so a lost PLI (or a publisher that ignored it) does not leave viewers black
//! until the publisher's next periodic IDR.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct KeyframeGate {
    interval: Duration,
    /// Some viewer is waiting for a keyframe that has not arrived yet.
    wanted: bool,
    /// When the last request went to the current publisher.
    last_request: Option<Instant>,
}

impl KeyframeGate {
    pub(crate) fn new(interval: Duration) -> Self {
        KeyframeGate {
            interval,
            wanted: false,
            last_request: None,
        }
    }

    /// Someone needs a keyframe. Cheap and idempotent: many calls, one request.
    pub(crate) fn want(&mut self) {
        self.wanted = true;
    }

    #[cfg(test)]
    pub(crate) fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// A keyframe from the publisher went out to every connected viewer.
    pub(crate) fn keyframe_arrived(&mut self) {
        self.wanted = false;
    }

    /// A different publisher now feeds the camera: it has not been asked anything yet, so
    /// the throttle starts afresh.
    pub(crate) fn publisher_changed(&mut self) {
        self.last_request = None;
    }

    /// Whether a request should be sent now; if so it is recorded as sent.
    pub(crate) fn poll_request(&mut self, now: Instant) -> bool {
        if !self.wanted {
            return false;
        }
        match self.last_request {
            Some(last) if now < last + self.interval => false,
            _ => {
                self.last_request = Some(now);
                true
            }
        }
    }

    /// When [`Self::poll_request`] would next say yes (`now` if it would right away), or
    /// `None` when nothing is wanted.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.wanted {
            return None;
        }
        Some(match self.last_request {
            Some(last) => (last + self.interval).max(now),
            None => now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IV: Duration = Duration::from_millis(250);

    #[test]
    fn nothing_wanted_means_no_request() {
        let mut g = KeyframeGate::new(IV);
        let now = Instant::now();
        assert!(!g.poll_request(now));
        assert_eq!(g.next_deadline(now), None);
    }

    #[test]
    fn many_wants_coalesce_into_one_request() {
        let mut g = KeyframeGate::new(IV);
        let t0 = Instant::now();
        for _ in 0..50 {
            g.want();
        }
        assert_eq!(g.next_deadline(t0), Some(t0));
        assert!(g.poll_request(t0));
        // Still wanted (no keyframe yet) but throttled.
        g.want();
        assert!(!g.poll_request(t0 + Duration::from_millis(10)));
        assert!(!g.poll_request(t0 + Duration::from_millis(249)));
        assert_eq!(g.next_deadline(t0), Some(t0 + IV));
    }

    #[test]
    fn unanswered_request_is_repeated_after_interval() {
        let mut g = KeyframeGate::new(IV);
        let t0 = Instant::now();
        g.want();
        assert!(g.poll_request(t0));
        assert!(g.poll_request(t0 + IV));
        assert!(!g.poll_request(t0 + IV + Duration::from_millis(1)));
        assert!(g.poll_request(t0 + IV * 2));
    }

    #[test]
    fn keyframe_answers_the_request() {
        let mut g = KeyframeGate::new(IV);
        let t0 = Instant::now();
        g.want();
        assert!(g.poll_request(t0));
        g.keyframe_arrived();
        assert!(!g.is_wanted());
        assert!(!g.poll_request(t0 + IV * 3));
        assert_eq!(g.next_deadline(t0 + IV * 3), None);
    }

    #[test]
    fn new_want_soon_after_a_request_waits_for_the_interval() {
        let mut g = KeyframeGate::new(IV);
        let t0 = Instant::now();
        g.want();
        assert!(g.poll_request(t0));
        g.keyframe_arrived();
        g.want();
        let t1 = t0 + Duration::from_millis(100);
        assert!(!g.poll_request(t1));
        assert_eq!(g.next_deadline(t1), Some(t0 + IV));
        assert!(g.poll_request(t0 + IV));
    }

    #[test]
    fn new_publisher_is_asked_at_once() {
        let mut g = KeyframeGate::new(IV);
        let t0 = Instant::now();
        g.want();
        assert!(g.poll_request(t0));
        g.publisher_changed();
        assert!(g.poll_request(t0 + Duration::from_millis(1)));
    }
}
