//! Source supervision: the source lives on its own thread, apart from any WebRTC session.
//!
//! The supervisor opens the source, reads frames and hands them to whichever publishing
//! session is running (through a small [`FrameQueue`]). When opening or reading fails it
//! reopens with capped, jittered [`Backoff`]; a watchdog thread reports a source that has
//! gone silent (a stalled read may block for the source's whole read timeout). The state
//! ([`SourceHealth`]: Connecting / Live / Lost{error}) is published on a tokio `watch`
//! channel that sessions forward to the server, and each transition is logged once with the
//! source's name (its `Display`, which redacts passwords). While live, the published
//! [`SourceReport`] also carries the source's [`Source::detail`] (an RTSP camera's
//! passthrough or re-encoding), read when it goes live and every [`DETAIL_CHECK_FRAMES`]
//! frames after (it may change: RTSP switches to re-encoding on a first B-slice).
//!
//! So a camera that drops, stalls or sends garbage never ends the WebRTC session: viewers
//! keep the last picture, see "signal lost", and video resumes (from a keyframe) when the
//! source comes back.

mod health;
mod queue;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use health::{stall_timeout, Monitor, SourceHealth, SourceReport, MIN_STALL, STALL_PERIODS};
pub use queue::{FrameQueue, SourceFrame};

use super::{Source, SourceSpec};
use crate::backoff::Backoff;

/// Opens a source from its spec; [`super::open`] in production, scripted fakes in tests.
pub type Opener = Box<dyn FnMut(&SourceSpec) -> anyhow::Result<Box<dyn Source>> + Send>;

/// Thread names (within Linux's 15 bytes, so they show whole in `top -H`).
pub const SOURCE_THREAD_NAME: &str = "sl-source";
pub const WATCHDOG_THREAD_NAME: &str = "sl-source-watch";

/// Frames between the source and the encoder: enough to ride out a slow encode, few enough
/// that a frame is never old when it is sent.
const QUEUE_FRAMES: usize = 4;
/// How long the source waits for a busy encoder before dropping a frame.
const PUSH_WAIT: Duration = Duration::from_millis(500);
/// How often the watchdog looks at the clock.
const WATCHDOG_TICK: Duration = Duration::from_millis(100);
/// Granularity of the backoff sleep, so stopping is quick.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How often (in frames) the live source's detail is read again: cheap (a lock and a short
/// string), but there is no need to do it per frame. ~0.5 s at 30 fps.
pub const DETAIL_CHECK_FRAMES: u64 = 15;

/// What both threads and every feed share.
struct Shared {
    /// The source as logs and viewers see it (no passwords).
    name: String,
    monitor: Mutex<Monitor>,
    state: watch::Sender<SourceReport>,
    queue: FrameQueue,
    /// The open source's nominal frame rate.
    fps: AtomicU32,
    stop: AtomicBool,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Run one state-machine step; log the transition, if any, once, and publish what
    /// changed (the health, the detail or both: one message, not two).
    fn update(&self, step: impl FnOnce(&mut Monitor) -> Option<SourceHealth>) {
        let mut monitor = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(health) = step(&mut monitor) {
            match &health {
                SourceHealth::Connecting => info!(source = %self.name, "source connecting"),
                SourceHealth::Live => info!(source = %self.name, "source live"),
                SourceHealth::Lost { error } => {
                    warn!(source = %self.name, "source lost: {error}")
                }
            }
        }
        let report = monitor.report();
        // Published under the monitor lock, so the two threads' transitions stay in order.
        self.state.send_if_modified(|published| {
            if *published == report {
                return false;
            }
            if let Some(detail) = report.detail.as_deref() {
                if published.detail.as_deref() != Some(detail) {
                    info!(source = %self.name, "source running: {detail}");
                }
            }
            *published = report;
            true
        });
    }

    /// Sleep `delay` unless stopped first. Returns false when stopped.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_POLL));
        }
        false
    }
}

/// Owns the source threads. Dropping it stops them (the source thread ends after its
/// current read, which its own read timeout bounds).
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Supervise the source `spec.url` names, opened with [`super::open`].
    pub fn start(spec: SourceSpec) -> std::io::Result<Self> {
        Self::start_with(
            spec,
            Box::new(|s: &SourceSpec| super::open(s)),
            Backoff::default(),
        )
    }

    /// Supervise sources made by `open`, waiting `backoff` between attempts.
    pub fn start_with(spec: SourceSpec, open: Opener, backoff: Backoff) -> std::io::Result<Self> {
        let monitor = Monitor::new(Instant::now());
        let (state, _) = watch::channel(monitor.report());
        let shared = Arc::new(Shared {
            name: spec.url.to_string(),
            monitor: Mutex::new(monitor),
            state,
            queue: FrameQueue::new(QUEUE_FRAMES),
            fps: AtomicU32::new(spec.fps.max(1)),
            stop: AtomicBool::new(false),
        });
        info!(source = %shared.name, "opening source");
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(SOURCE_THREAD_NAME.into())
            .spawn(move || supervise(&s, &spec, open, backoff))?;
        let s = Arc::clone(&shared);
        let watchdog = std::thread::Builder::new()
            .name(WATCHDOG_THREAD_NAME.into())
            .spawn(move || {
                while s.pause(WATCHDOG_TICK) {
                    s.update(|m| m.tick(Instant::now()));
                }
            });
        if let Err(e) = watchdog {
            shared.stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        Ok(Supervisor { shared })
    }

    /// A handle for sessions: frames, state, the source's name and rate.
    pub fn feed(&self) -> SourceFeed {
        SourceFeed {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// What a publishing session sees of the supervised source. Cheap to clone.
#[derive(Clone)]
pub struct SourceFeed {
    shared: Arc<Shared>,
}

impl SourceFeed {
    /// The source's name for logs and viewers (passwords redacted).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The open source's nominal frame rate.
    pub fn fps(&self) -> u32 {
        self.shared.fps.load(Ordering::Relaxed).max(1)
    }

    /// The current state.
    pub fn health(&self) -> SourceHealth {
        self.shared.state.borrow().health.clone()
    }

    /// The current state with the live source's detail.
    pub fn report(&self) -> SourceReport {
        self.shared.state.borrow().clone()
    }

    /// Follow changes of state or detail.
    pub fn watch(&self) -> watch::Receiver<SourceReport> {
        self.shared.state.subscribe()
    }

    /// Start reading frames (from now on: frames queued before are dropped). One reader at a
    /// time; the reader detaches when dropped.
    pub fn reader(&self) -> FrameReader {
        self.shared.queue.attach();
        FrameReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Frames dropped because no reader took them in time.
    pub fn dropped(&self) -> u64 {
        self.shared.queue.dropped()
    }
}

/// An attached reader of the supervised source's frames.
pub struct FrameReader {
    shared: Arc<Shared>,
}

impl FrameReader {
    /// The next frame, waiting up to `timeout` (nothing comes while the source is lost).
    pub fn next(&self, timeout: Duration) -> Option<SourceFrame> {
        self.shared.queue.pop(timeout)
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        self.shared.queue.detach();
    }
}

/// The source thread: open, read, hand on; on failure report, back off and reopen.
fn supervise(shared: &Shared, spec: &SourceSpec, mut open: Opener, mut backoff: Backoff) {
    // Frame sequence for the reader. A reopened source starts a new stream: `seq` skips one
    // so the reader sees the discontinuity.
    let mut seq: u64 = 0;
    while !shared.stopped() {
        let opened = catch_unwind(AssertUnwindSafe(|| open(spec)))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the source panicked while opening")));
        let mut source = match opened {
            Ok(s) => s,
            Err(e) => {
                shared.update(|m| m.failed(error_text(&e), Instant::now()));
                if !shared.pause(backoff.next_delay()) {
                    return;
                }
                continue;
            }
        };
        let fps = source.fps().max(1);
        shared.fps.store(fps, Ordering::Relaxed);
        shared.update(|m| {
            m.opened(fps, Instant::now());
            None
        });
        debug!(source = %shared.name, fps, size = ?source.dimensions(), "source opened");
        seq += 1;
        // Frames read from this open of the source.
        let mut frames: u64 = 0;
        let error = loop {
            if shared.stopped() {
                return;
            }
            let read = catch_unwind(AssertUnwindSafe(|| source.next_frame()))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the source panicked while reading")));
            match read {
                Ok(captured) => {
                    backoff.reset();
                    let mut resumed = false;
                    let check_detail = frames.is_multiple_of(DETAIL_CHECK_FRAMES);
                    frames += 1;
                    shared.update(|m| {
                        resumed = matches!(m.health(), SourceHealth::Lost { .. });
                        let went_live = m.frame(Instant::now());
                        if went_live.is_some() || check_detail {
                            m.set_detail(source.detail());
                        }
                        went_live
                    });
                    shared.queue.push(
                        SourceFrame {
                            captured,
                            seq,
                            resumed,
                        },
                        PUSH_WAIT,
                    );
                    seq += 1;
                }
                Err(e) => break e,
            }
        };
        drop(source);
        shared.update(|m| m.failed(error_text(&error), Instant::now()));
        if !shared.pause(backoff.next_delay()) {
            return;
        }
    }
}

/// One line: the error and its causes.
fn error_text(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.trim().is_empty() {
        "unknown error".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
