//! When to capture and encode, as plain state: the server's viewer counts (`demand`), the
//! controlling viewers' `start_stream` / `stop_stream`, and an idle timer, with time passed
//! in so tests need no clock.
//!
//! Under `control/` because `start_stream` and `stop_stream` are control commands; separate
//! from the settings ([`super::state`]) because it decides whether the source runs, not how.
//!
//! - Always-on (the default): streams from the start; `stop_stream` stops it until a
//!   `start_stream`. Viewer counts change nothing.
//! - On demand (`--on-demand`): idle (no capture, no encoding, no media) until the camera has
//!   a viewer; then streams until it has had none for the idle-stop time. A viewer returning
//!   within that time finds it still running. Losing the signaling connection counts as no
//!   viewers (the count is unknown, and the server repeats it on reconnect), so a short
//!   reconnect does not interrupt the stream. `stop_stream` stops it even with viewers
//!   watching, and holds until a `start_stream` or until every viewer has gone (the next
//!   first viewer starts it again); `start_stream` starts it without viewers too, and the
//!   idle timer then stops it again unless one arrives.

use std::time::{Duration, Instant};

/// What the session must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandAction {
    /// Start the source and the encoder.
    Start,
    /// Stop them (signaling and the peer connection stay up).
    Stop,
}

#[derive(Debug, Clone)]
pub struct Demand {
    on_demand: bool,
    idle_stop: Duration,
    /// Viewers as last reported; `None` while not connected to the server.
    viewers: Option<u32>,
    running: bool,
    /// Stopped by a controlling viewer: viewers alone do not start it.
    held: bool,
    /// When to stop for lack of viewers.
    stop_at: Option<Instant>,
}

impl Demand {
    /// The initial state. Call [`Self::start_up`] once to know whether to start right away.
    pub fn new(on_demand: bool, idle_stop: Duration) -> Self {
        Demand {
            on_demand,
            idle_stop,
            viewers: None,
            running: false,
            held: false,
            stop_at: None,
        }
    }

    pub fn on_demand(&self) -> bool {
        self.on_demand
    }

    /// Whether capture and encoding should be running now.
    pub fn running(&self) -> bool {
        self.running
    }

    /// The last viewer count (`None`: not known, e.g. between signaling sessions).
    pub fn viewers(&self) -> Option<u32> {
        self.viewers
    }

    /// When [`Self::tick`] has something to do, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.stop_at
    }

    /// At process start: always-on publishers start; on-demand ones wait for a viewer.
    pub fn start_up(&mut self) -> Option<DemandAction> {
        if self.on_demand || self.running {
            return None;
        }
        self.running = true;
        Some(DemandAction::Start)
    }

    /// The server says the camera has `viewers` viewers.
    pub fn viewers_changed(&mut self, viewers: u32, now: Instant) -> Option<DemandAction> {
        self.viewers = Some(viewers);
        if !self.on_demand {
            return None;
        }
        if viewers == 0 {
            // Everyone left: a hold ends with the viewers it was set for.
            self.held = false;
            return self.arm_idle_timer(now);
        }
        self.stop_at = None;
        if self.running || self.held {
            return None;
        }
        self.running = true;
        Some(DemandAction::Start)
    }

    /// The signaling connection is gone: the viewer count is unknown until it is back.
    pub fn signaling_lost(&mut self, now: Instant) -> Option<DemandAction> {
        self.viewers = None;
        if !self.on_demand {
            return None;
        }
        self.arm_idle_timer(now)
    }

    /// A controlling viewer sent `start_stream` (`true`) or `stop_stream` (`false`).
    pub fn command(&mut self, start: bool, now: Instant) -> Option<DemandAction> {
        if start {
            self.held = false;
            let action = (!self.running).then_some(DemandAction::Start);
            self.running = true;
            if self.on_demand && self.viewers.unwrap_or(0) == 0 {
                self.stop_at = Some(now + self.idle_stop);
            }
            action
        } else {
            self.held = true;
            self.stop_at = None;
            let action = self.running.then_some(DemandAction::Stop);
            self.running = false;
            action
        }
    }

    /// Time passed: stop if the idle time ran out.
    pub fn tick(&mut self, now: Instant) -> Option<DemandAction> {
        let due = self.stop_at.is_some_and(|t| now >= t);
        if !due {
            return None;
        }
        self.stop_at = None;
        let action = self.running.then_some(DemandAction::Stop);
        self.running = false;
        action
    }

    /// No viewers: stop after the idle time (at once for zero).
    fn arm_idle_timer(&mut self, now: Instant) -> Option<DemandAction> {
        if !self.running {
            self.stop_at = None;
            return None;
        }
        if self.stop_at.is_none() {
            self.stop_at = Some(now + self.idle_stop);
        }
        self.tick(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DemandAction::{Start, Stop};

    const IDLE: Duration = Duration::from_secs(10);

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn always_on_streams_from_the_start_and_ignores_viewers() {
        let t0 = Instant::now();
        let mut d = Demand::new(false, IDLE);
        assert_eq!(d.start_up(), Some(Start));
        assert_eq!(d.start_up(), None, "once");
        assert_eq!(d.viewers_changed(0, t0), None);
        assert_eq!(d.signaling_lost(t0), None);
        assert_eq!(d.tick(secs(t0, 3600)), None);
        assert!(d.running());
        assert_eq!(d.deadline(), None);
        // A controlling viewer may still stop and restart it.
        assert_eq!(d.command(false, t0), Some(Stop));
        assert_eq!(d.viewers_changed(3, t0), None, "stays stopped");
        assert_eq!(d.command(true, t0), Some(Start));
        assert_eq!(d.tick(secs(t0, 3600)), None);
    }

    #[test]
    fn on_demand_starts_with_the_first_viewer_and_stops_after_the_last() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, IDLE);
        assert_eq!(d.start_up(), None);
        assert!(!d.running());
        // Registered with nobody watching: stays idle, no timer.
        assert_eq!(d.viewers_changed(0, t0), None);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.viewers_changed(1, secs(t0, 5)), Some(Start));
        assert_eq!(d.viewers_changed(2, secs(t0, 6)), None);
        assert_eq!(d.viewers_changed(1, secs(t0, 7)), None);
        assert_eq!(d.viewers_changed(0, secs(t0, 8)), None);
        assert_eq!(d.deadline(), Some(secs(t0, 18)));
        assert_eq!(d.tick(secs(t0, 17)), None);
        assert_eq!(d.tick(secs(t0, 18)), Some(Stop));
        assert!(!d.running());
        assert_eq!(d.deadline(), None);
        assert_eq!(d.tick(secs(t0, 100)), None);
        // And again.
        assert_eq!(d.viewers_changed(1, secs(t0, 200)), Some(Start));
    }

    #[test]
    fn a_viewer_back_within_the_idle_time_keeps_it_running() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, IDLE);
        assert_eq!(d.viewers_changed(1, t0), Some(Start));
        assert_eq!(d.viewers_changed(0, secs(t0, 1)), None);
        assert_eq!(d.viewers_changed(1, secs(t0, 9)), None);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.tick(secs(t0, 11)), None);
        assert!(d.running());
        // Repeated zeros do not push the deadline back.
        assert_eq!(d.viewers_changed(0, secs(t0, 20)), None);
        assert_eq!(d.viewers_changed(0, secs(t0, 25)), None);
        assert_eq!(d.deadline(), Some(secs(t0, 30)));
    }

    #[test]
    fn zero_idle_time_stops_at_once() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, Duration::ZERO);
        assert_eq!(d.viewers_changed(2, t0), Some(Start));
        assert_eq!(d.viewers_changed(0, t0), Some(Stop));
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn losing_signaling_counts_as_no_viewers_until_told_again() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, IDLE);
        assert_eq!(d.viewers_changed(1, t0), Some(Start));
        assert_eq!(d.signaling_lost(secs(t0, 1)), None);
        assert_eq!(d.viewers(), None);
        // Back within the idle time, viewers still there: never stopped.
        assert_eq!(d.viewers_changed(1, secs(t0, 4)), None);
        assert!(d.running());
        assert_eq!(d.deadline(), None);
        // Gone for longer: stopped, and started again when the server says so.
        assert_eq!(d.signaling_lost(secs(t0, 20)), None);
        assert_eq!(d.tick(secs(t0, 30)), Some(Stop));
        assert_eq!(d.viewers_changed(1, secs(t0, 40)), Some(Start));
    }

    #[test]
    fn stop_stream_holds_until_start_stream_or_everyone_leaves() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, IDLE);
        assert_eq!(d.viewers_changed(2, t0), Some(Start));
        assert_eq!(d.command(false, secs(t0, 1)), Some(Stop));
        assert_eq!(d.command(false, secs(t0, 1)), None, "already stopped");
        assert_eq!(d.viewers_changed(3, secs(t0, 2)), None, "held");
        assert_eq!(d.command(true, secs(t0, 3)), Some(Start));
        assert_eq!(d.command(true, secs(t0, 3)), None, "already running");
        // Stopped again, then everyone leaves: the next first viewer starts it.
        assert_eq!(d.command(false, secs(t0, 4)), Some(Stop));
        assert_eq!(d.viewers_changed(0, secs(t0, 5)), None);
        assert_eq!(d.viewers_changed(1, secs(t0, 6)), Some(Start));
    }

    #[test]
    fn start_stream_without_viewers_runs_for_the_idle_time() {
        let t0 = Instant::now();
        let mut d = Demand::new(true, IDLE);
        assert_eq!(d.viewers_changed(0, t0), None);
        assert_eq!(d.command(true, secs(t0, 1)), Some(Start));
        assert_eq!(d.deadline(), Some(secs(t0, 11)));
        assert_eq!(d.tick(secs(t0, 11)), Some(Stop));
        // With a viewer arriving meanwhile it keeps going.
        assert_eq!(d.command(true, secs(t0, 20)), Some(Start));
        assert_eq!(d.viewers_changed(1, secs(t0, 21)), None);
        assert_eq!(d.tick(secs(t0, 40)), None);
        assert!(d.running());
    }
}
