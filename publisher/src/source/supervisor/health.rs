//! A source's health as plain state: Connecting → Live ⇄ Lost{error}. The supervisor thread
//! feeds it opens, frames and errors; a watchdog feeds it clock ticks, so a source that
//! stalls inside `next_frame` (which may block for its whole read timeout) is reported lost
//! within a couple of seconds anyway. Every method takes `now`, so tests drive the clock.
//!
//! While live, the state also carries the source's [`Source::detail`] (how it runs: an RTSP
//! camera's passthrough or re-encoding), which the supervisor thread reads now and then.
//!
//! [`Source::detail`]: crate::source::Source::detail

use std::time::{Duration, Instant};

use sightline_protocol::wire::{
    SourceState, SourceStatus, MAX_SOURCE_DETAIL_LEN, MAX_SOURCE_ERROR_LEN, MAX_SOURCE_NAME_LEN,
};

/// The shortest silence that counts as a stall, whatever the frame rate.
pub const MIN_STALL: Duration = Duration::from_secs(2);
/// A stall is also this many frame periods without a frame (slow sources, e.g. 1 fps
/// snapshots, are not lost between two frames).
pub const STALL_PERIODS: u32 = 5;

/// What viewers are told about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceHealth {
    /// Opening the source; no frame yet.
    Connecting,
    /// Frames are arriving.
    Live,
    /// The source failed or stalled; it is being reopened with backoff.
    Lost { error: String },
}

impl SourceHealth {
    /// The signaling form, for the source named `source` (passwords already redacted),
    /// cut to what the server accepts.
    pub fn to_status(&self, source: &str) -> SourceStatus {
        let (state, error) = match self {
            SourceHealth::Connecting => (SourceState::Connecting, None),
            SourceHealth::Live => (SourceState::Live, None),
            SourceHealth::Lost { error } => {
                let error = match error.trim() {
                    "" => "unknown error",
                    e => e,
                };
                (
                    SourceState::Lost,
                    Some(truncate(error, MAX_SOURCE_ERROR_LEN)),
                )
            }
        };
        SourceStatus {
            state,
            error,
            source: truncate(source, MAX_SOURCE_NAME_LEN),
            detail: None,
        }
    }
}

/// What the supervisor publishes: the health and, while live, how the source runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub health: SourceHealth,
    /// The live source's [`crate::source::Source::detail`]; `None` unless live.
    pub detail: Option<String>,
}

impl SourceReport {
    /// The signaling form (see [`SourceHealth::to_status`]), with the detail as one line the
    /// server accepts.
    pub fn to_status(&self, source: &str) -> SourceStatus {
        let mut status = self.health.to_status(source);
        status.detail = self.detail.as_deref().and_then(|d| {
            let line: String = d
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let line = line.trim();
            (!line.is_empty()).then(|| truncate(line, MAX_SOURCE_DETAIL_LEN))
        });
        status
    }
}

/// At most `max` characters, with `…` as the last one when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// How long without a frame counts as a stall at `fps`: max(2 s, 5 frame periods).
pub fn stall_timeout(fps: u32) -> Duration {
    let periods = Duration::from_secs(u64::from(STALL_PERIODS)) / fps.max(1);
    periods.max(MIN_STALL)
}

/// The state machine. Methods return the new health when it changed (to log and publish
/// once), `None` when it did not.
#[derive(Debug, Clone)]
pub struct Monitor {
    health: SourceHealth,
    /// How the live source runs (cleared whenever it is not live).
    detail: Option<String>,
    stall_after: Duration,
    /// The last frame, or when we started waiting for the first one.
    last_progress: Instant,
}

impl Monitor {
    pub fn new(now: Instant) -> Self {
        Monitor {
            health: SourceHealth::Connecting,
            detail: None,
            stall_after: MIN_STALL,
            last_progress: now,
        }
    }

    pub fn health(&self) -> &SourceHealth {
        &self.health
    }

    /// The health with the live source's detail, as published.
    pub fn report(&self) -> SourceReport {
        SourceReport {
            health: self.health.clone(),
            detail: self.detail.clone(),
        }
    }

    /// The live source says how it runs. Returns whether that is news (a first detail, or a
    /// different one); ignored unless live, since a lost source's detail is stale.
    pub fn set_detail(&mut self, detail: Option<String>) -> bool {
        if self.health != SourceHealth::Live || self.detail == detail {
            return false;
        }
        self.detail = detail;
        true
    }

    /// The source was (re)opened and says it runs at `fps`.
    pub fn opened(&mut self, fps: u32, now: Instant) {
        self.stall_after = stall_timeout(fps);
        // The silence before this open was the open's own failure, already reported; the
        // stall clock starts over for the new source.
        self.last_progress = now;
    }

    /// A frame arrived.
    pub fn frame(&mut self, now: Instant) -> Option<SourceHealth> {
        self.last_progress = now;
        self.set(SourceHealth::Live)
    }

    /// Opening or reading failed: lost, with this error. A repeat of the current error is
    /// no change; a different one is (viewers see the latest reason).
    pub fn failed(&mut self, error: String, now: Instant) -> Option<SourceHealth> {
        self.last_progress = now;
        self.set(SourceHealth::Lost { error })
    }

    /// The clock moved: a source that has been silent for the stall timeout is lost even if
    /// its read has not returned yet. Already lost stays as it is (the error that lost it is
    /// the better explanation).
    pub fn tick(&mut self, now: Instant) -> Option<SourceHealth> {
        if matches!(self.health, SourceHealth::Lost { .. }) {
            return None;
        }
        let silent = now.saturating_duration_since(self.last_progress);
        if silent < self.stall_after {
            return None;
        }
        let error = match self.health {
            SourceHealth::Live => format!("no frame for {:.1} s", silent.as_secs_f64()),
            _ => format!("no frame {:.1} s after starting", silent.as_secs_f64()),
        };
        self.set(SourceHealth::Lost { error })
    }

    fn set(&mut self, health: SourceHealth) -> Option<SourceHealth> {
        if self.health == health {
            return None;
        }
        if health != SourceHealth::Live {
            self.detail = None;
        }
        self.health = health.clone();
        Some(health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(e: &str) -> SourceHealth {
        SourceHealth::Lost { error: e.into() }
    }

    #[test]
    fn stall_timeout_is_two_seconds_or_five_periods() {
        assert_eq!(stall_timeout(30), Duration::from_secs(2));
        assert_eq!(stall_timeout(10), Duration::from_secs(2));
        assert_eq!(stall_timeout(1), Duration::from_secs(5));
        assert_eq!(
            stall_timeout(0),
            Duration::from_secs(5),
            "0 fps is treated as 1"
        );
    }

    #[test]
    fn connecting_then_live_then_lost_then_live() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        assert_eq!(m.health(), &SourceHealth::Connecting);
        m.opened(30, t0);
        assert_eq!(m.frame(t0), Some(SourceHealth::Live));
        // More frames: no transition, nothing to log.
        assert_eq!(m.frame(t0 + Duration::from_millis(33)), None);
        let e = "connection reset".to_string();
        assert_eq!(m.failed(e.clone(), t0), Some(lost(&e)));
        assert_eq!(
            m.frame(t0 + Duration::from_secs(1)),
            Some(SourceHealth::Live)
        );
    }

    #[test]
    fn a_failed_first_open_is_lost_not_connecting() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        assert_eq!(m.failed("refused".into(), t0), Some(lost("refused")));
        // Each retry failing the same way: reported once.
        for s in 1..10 {
            assert_eq!(
                m.failed("refused".into(), t0 + Duration::from_secs(s)),
                None
            );
        }
        // A new reason is news.
        assert_eq!(
            m.failed("timed out".into(), t0 + Duration::from_secs(11)),
            Some(lost("timed out"))
        );
        // Lost does not flap back to Connecting while reopening.
        m.opened(30, t0 + Duration::from_secs(12));
        assert_eq!(m.health(), &lost("timed out"));
    }

    #[test]
    fn silence_while_live_is_a_loss_even_without_an_error() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        m.opened(30, t0);
        m.frame(t0);
        assert_eq!(m.tick(t0 + Duration::from_millis(1900)), None);
        let got = m.tick(t0 + Duration::from_millis(2100)).unwrap();
        assert!(
            matches!(&got, SourceHealth::Lost { error } if error == "no frame for 2.1 s"),
            "{got:?}"
        );
        // Reported once, not on every tick.
        assert_eq!(m.tick(t0 + Duration::from_secs(3)), None);
        // The read finally fails: a better reason replaces the stall.
        assert_eq!(
            m.failed("read timed out".into(), t0 + Duration::from_secs(5)),
            Some(lost("read timed out"))
        );
        assert_eq!(m.tick(t0 + Duration::from_secs(9)), None);
        // Frames again.
        assert_eq!(
            m.frame(t0 + Duration::from_secs(10)),
            Some(SourceHealth::Live)
        );
        assert_eq!(m.tick(t0 + Duration::from_millis(11_000)), None);
    }

    #[test]
    fn a_source_that_never_delivers_is_lost() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        m.opened(30, t0);
        let got = m.tick(t0 + Duration::from_secs(2)).unwrap();
        assert!(matches!(got, SourceHealth::Lost { .. }), "{got:?}");
    }

    #[test]
    fn slow_sources_get_longer_before_a_stall() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        m.opened(1, t0);
        m.frame(t0);
        assert_eq!(m.tick(t0 + Duration::from_secs(4)), None);
        assert!(m.tick(t0 + Duration::from_secs(5)).is_some());
    }

    #[test]
    fn wire_status_carries_the_error_only_when_lost() {
        let s = lost("boom").to_status("file:x");
        assert_eq!(
            (s.state, s.error.as_deref(), s.source.as_str()),
            (SourceState::Lost, Some("boom"), "file:x")
        );
        let s = SourceHealth::Live.to_status("file:x");
        assert_eq!((s.state, s.error), (SourceState::Live, None));
        assert_eq!(
            SourceHealth::Connecting.to_status("v4l2:0").state,
            SourceState::Connecting
        );
    }

    #[test]
    fn the_detail_is_kept_only_while_live() {
        let t0 = Instant::now();
        let mut m = Monitor::new(t0);
        m.opened(30, t0);
        assert!(!m.set_detail(Some("passthrough".into())), "not live yet");
        m.frame(t0);
        assert!(m.set_detail(Some("passthrough".into())));
        assert!(!m.set_detail(Some("passthrough".into())), "no news");
        assert!(m.set_detail(Some("re-encoding".into())));
        assert_eq!(
            m.report(),
            SourceReport {
                health: SourceHealth::Live,
                detail: Some("re-encoding".into())
            }
        );
        // A stall or an error: the detail went with the source.
        m.tick(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(m.report().detail, None);
        assert!(!m.set_detail(Some("re-encoding".into())));
        m.frame(t0 + Duration::from_secs(4));
        assert_eq!(m.report().detail, None, "the next frame tells it again");
        assert!(m.set_detail(Some("passthrough".into())));
        m.failed("reset".into(), t0 + Duration::from_secs(5));
        assert_eq!(m.report().detail, None);
    }

    #[test]
    fn wire_status_carries_the_detail_as_one_short_line() {
        let report = |detail: &str| SourceReport {
            health: SourceHealth::Live,
            detail: Some(detail.into()),
        };
        let s = report("passthrough (Main 4.0, 1920x1080)").to_status("rtsp://cam/1");
        assert_eq!(
            (s.state, s.detail.as_deref()),
            (SourceState::Live, Some("passthrough (Main 4.0, 1920x1080)"))
        );
        assert_eq!(
            report("two\nlines\n").to_status("s").detail.as_deref(),
            Some("two lines")
        );
        assert_eq!(report(" \t ").to_status("s").detail, None);
        let long = report(&"d".repeat(MAX_SOURCE_DETAIL_LEN * 2)).to_status("s");
        assert_eq!(long.detail.unwrap().chars().count(), MAX_SOURCE_DETAIL_LEN);
        assert_eq!(SourceHealth::Live.to_status("s").detail, None);
    }

    #[test]
    fn wire_status_fits_what_the_server_accepts() {
        let long = "é".repeat(MAX_SOURCE_ERROR_LEN * 2);
        let s = lost(&long).to_status(&"n".repeat(MAX_SOURCE_NAME_LEN + 5));
        let error = s.error.unwrap();
        assert_eq!(error.chars().count(), MAX_SOURCE_ERROR_LEN);
        assert!(error.ends_with('…'));
        assert_eq!(s.source.chars().count(), MAX_SOURCE_NAME_LEN);
        // An empty error still explains something.
        assert_eq!(
            lost("  ").to_status("s").error.as_deref(),
            Some("unknown error")
        );
    }
}
