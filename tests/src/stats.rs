//! Counters a headless viewer keeps, shared between its task and whoever watches it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_received: AtomicU64,
    pub frame_bytes_received: AtomicU64,
    pub frames_decoded: AtomicU64,
    pub stamps_read: AtomicU64,
    pub keyframes_decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub frames_not_contiguous: AtomicU64,
    pub keyframe_requests_sent: AtomicU64,
    pub sessions: AtomicU64,
    pub camera_offline_events: AtomicU64,
    pub media_packets_received: AtomicU64,
    pub media_packets_dropped: AtomicU64,
    pub media_packets_skipped: AtomicU64,
    pub rtx_packets_received: AtomicU64,
    pub nacks_sent: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> ViewerStats {
        ViewerStats {
            frames_received: self.frames_received.load(Relaxed),
            frame_bytes_received: self.frame_bytes_received.load(Relaxed),
            frames_decoded: self.frames_decoded.load(Relaxed),
            stamps_read: self.stamps_read.load(Relaxed),
            keyframes_decoded: self.keyframes_decoded.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            frames_not_contiguous: self.frames_not_contiguous.load(Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Relaxed),
            sessions: self.sessions.load(Relaxed),
            camera_offline_events: self.camera_offline_events.load(Relaxed),
            media_packets_received: self.media_packets_received.load(Relaxed),
            media_packets_dropped: self.media_packets_dropped.load(Relaxed),
            media_packets_skipped: self.media_packets_skipped.load(Relaxed),
            rtx_packets_received: self.rtx_packets_received.load(Relaxed),
            nacks_sent: self.nacks_sent.load(Relaxed),
        }
    }
}

/// A snapshot of a viewer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerStats {
    /// Access units str0m handed over.
    pub frames_received: u64,
    /// Their bytes (H.264 payload, no RTP/SRTP overhead): what the encoder's bitrate counts.
    pub frame_bytes_received: u64,
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
    /// Video RTP packets that arrived on the media payload type, dropped ones included.
    pub media_packets_received: u64,
    /// Of those, dropped on purpose ([`crate::ViewerConfig::drop_incoming_media`]).
    pub media_packets_dropped: u64,
    /// Media sequence numbers that were skipped on arrival: packets lost on the way in (by
    /// the network, or by a socket buffer that overflowed), before NACK and RTX repair.
    pub media_packets_skipped: u64,
    /// RTP packets on the video's RTX payload type: retransmissions answering NACKs.
    pub rtx_packets_received: u64,
    /// NACKs str0m sent for the video track (from its statistics, every 500 ms).
    pub nacks_sent: u64,
}
