//! Counters a headless viewer keeps, shared between its task and whoever watches it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_received: AtomicU64,
    pub frames_decoded: AtomicU64,
    pub stamps_read: AtomicU64,
    pub keyframes_decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub frames_not_contiguous: AtomicU64,
    pub keyframe_requests_sent: AtomicU64,
    pub sessions: AtomicU64,
    pub camera_offline_events: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> ViewerStats {
        ViewerStats {
            frames_received: self.frames_received.load(Relaxed),
            frames_decoded: self.frames_decoded.load(Relaxed),
            stamps_read: self.stamps_read.load(Relaxed),
            keyframes_decoded: self.keyframes_decoded.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            frames_not_contiguous: self.frames_not_contiguous.load(Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
            camera_offline_events: self.camera_offline_events.load(Relaxed),
        }
    }
}

/// A snapshot of a viewer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerStats {
    /// Access units str0m handed over.
    pub frames_received: u64,
    /// Pictures openh264 produced.
    pub frames_decoded: u64,
    /// Pictures whose barcode read back.
    pub stamps_read: u64,
    pub keyframes_decoded: u64,
    /// Access units openh264 refused.
    pub decode_errors: u64,
    /// Access units after a sequence-number gap.
    pub frames_not_contiguous: u64,
    /// PLIs this viewer sent.
    pub keyframe_requests_sent: u64,
    /// Successful subscriptions (1 + reconnects).
    pub sessions: u64,
    pub camera_offline_events: u64,
}
