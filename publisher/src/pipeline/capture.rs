//! The source, started and stopped on request: an always-on publisher starts it once, an
//! on-demand one only while somebody watches, and `restart_camera` reopens it. While stopped
//! no source thread runs and the device is closed.
//!
//! Beside the encode thread that reads it; separate from [`crate::source::supervisor`], which
//! keeps one running source alive, because this decides whether one runs at all.

use tracing::info;

use crate::source::supervisor::{SourceFeed, Supervisor};
use crate::source::{SourceSpec, SourceUrl, V4l2Device};

pub struct Capture {
    spec: SourceSpec,
    supervisor: Option<Supervisor>,
    /// Grows with every start, so a session can tell a new feed from the one it reads.
    generation: u64,
}

impl Capture {
    /// A stopped capture of `spec`.
    pub fn new(spec: SourceSpec) -> Self {
        Capture {
            spec,
            supervisor: None,
            generation: 0,
        }
    }

    /// The source's name for logs and viewers (passwords redacted).
    pub fn name(&self) -> String {
        self.spec.url.to_string()
    }

    pub fn url(&self) -> &SourceUrl {
        &self.spec.url
    }

    pub fn running(&self) -> bool {
        self.supervisor.is_some()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The running source's frames and state.
    pub fn feed(&self) -> Option<SourceFeed> {
        self.supervisor.as_ref().map(Supervisor::feed)
    }

    /// Start supervising the source (opening it, with retries, on its own thread). Nothing
    /// happens if it runs already. Fails only if a thread cannot be started.
    pub fn start(&mut self) -> std::io::Result<()> {
        if self.supervisor.is_none() {
            self.supervisor = Some(Supervisor::start(self.spec.clone())?);
            self.generation += 1;
        }
        Ok(())
    }

    /// Stop the source threads and close the device. The source thread ends after its
    /// current read (bounded by the source's read timeout).
    pub fn stop(&mut self) {
        if self.supervisor.take().is_some() {
            info!(source = %self.spec.url, "capture stopped");
        }
    }

    /// Close and reopen the source (if it runs).
    pub fn restart(&mut self) -> std::io::Result<()> {
        if self.supervisor.is_none() {
            return Ok(());
        }
        self.stop();
        self.start()
    }

    /// Use `url` from the next start on (a viewer chose another configured source).
    pub fn select_source(&mut self, url: SourceUrl) {
        self.spec.url = url;
    }

    /// Use V4L2 camera `index` from the next start on (a viewer chose another camera).
    /// Returns whether the source changed; only V4L2 sources have an index.
    pub fn select_camera(&mut self, index: u32) -> bool {
        let next = SourceUrl::V4l2(V4l2Device::Index(index));
        if !matches!(self.spec.url, SourceUrl::V4l2(_)) || self.spec.url == next {
            return false;
        }
        self.spec.url = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_restarts_the_supervisor() {
        let mut spec = SourceSpec::new(SourceUrl::TestPattern, "cam");
        (spec.width, spec.height) = (64, 64);
        let mut c = Capture::new(spec);
        assert!(!c.running() && c.feed().is_none());
        assert!(
            c.restart().is_ok(),
            "restarting a stopped capture is a no-op"
        );
        assert!(!c.running());
        c.start().unwrap();
        let first = c.generation();
        c.start().unwrap();
        assert_eq!(c.generation(), first, "already running");
        let feed = c.feed().unwrap();
        let reader = feed.reader();
        assert!(
            reader.next(std::time::Duration::from_secs(2)).is_some(),
            "frames flow"
        );
        c.restart().unwrap();
        assert!(c.generation() > first);
        c.stop();
        assert!(!c.running() && c.feed().is_none());
        assert_eq!(c.name(), "test-pattern");
    }

    #[test]
    fn only_v4l2_sources_switch_cameras() {
        let mut c = Capture::new(SourceSpec::new(SourceUrl::TestPattern, "cam"));
        assert!(!c.select_camera(1));
        let mut v = Capture::new(SourceSpec::new(
            SourceUrl::V4l2(V4l2Device::Index(0)),
            "cam",
        ));
        assert!(!v.select_camera(0));
        assert!(v.select_camera(2));
        assert_eq!(v.url(), &SourceUrl::V4l2(V4l2Device::Index(2)));
    }
}
