//! A camera's frames since its last keyframe, kept so a viewer whose media has just
//! connected starts at once. Plain state, no I/O.
//!
//! Without it a new viewer waits for a keyframe asked of the publisher: a round trip, an
//! encode, and, when another viewer (or the publisher's own connect) asked less than the
//! keyframe throttle's interval before, the rest of that interval. With it a viewer that
//! connects soon after a keyframe is sent that keyframe and every frame since, back to
//! back, and goes on live from there; the publisher is asked nothing. A join storm then
//! costs one keyframe per [`MAX_FRAMES`] frames, not one per throttle interval.
//!
//! Only soon after a keyframe: past [`MAX_FRAMES`] or [`MAX_BYTES`] the cache is closed
//! until the next keyframe, and viewers ask for one as before. The burst a newcomer gets is
//! bounded by both, and so is what the cache holds (its frames' payloads are shared with
//! what went to viewers anyway). And only while the camera is sending: frames are not
//! replayed once its newest is [`MAX_AGE`] old (an on-demand publisher that went idle, a
//! stalled source), so a newcomer never starts on a picture from the past.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::feed::FramePackets;

/// About a second at 30 fps: what a newcomer decodes in one burst before it is live.
pub(crate) const MAX_FRAMES: usize = 30;
/// The payload bytes a newcomer may be sent in one burst (and the cache may hold).
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// How long after the newest frame arrived the frames still count as the live picture.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct GopCache {
    /// From a keyframe on, in order; empty when closed.
    frames: Vec<Arc<FramePackets>>,
    bytes: usize,
    /// Every frame since the first of `frames` is in it.
    open: bool,
}

impl GopCache {
    /// Whether a frame would be kept: worth packetising even when no viewer is sent it.
    pub(crate) fn keeps(&self, keyframe: bool) -> bool {
        keyframe || self.open
    }

    /// The camera's next frame. A keyframe starts the cache afresh; a frame past the budget
    /// closes it.
    pub(crate) fn push(&mut self, frame: &Arc<FramePackets>, keyframe: bool) {
        if keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.open = true;
        }
        if !self.open {
            return;
        }
        let size: usize = frame.payloads.iter().map(|p| p.len()).sum();
        if self.frames.len() == MAX_FRAMES || self.bytes + size > MAX_BYTES {
            self.close();
            return;
        }
        self.frames.push(Arc::clone(frame));
        self.bytes += size;
    }

    /// A frame was lost, or the publisher changed: what is kept no longer leads to the live
    /// picture.
    pub(crate) fn close(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.open = false;
    }

    /// A keyframe and every frame since, if the cache holds them and the newest arrived
    /// less than [`MAX_AGE`] before `now`.
    pub(crate) fn frames(&self, now: Instant) -> Option<&[Arc<FramePackets>]> {
        let newest = self.frames.last()?;
        let fresh = now.saturating_duration_since(newest.wallclock) < MAX_AGE;
        (self.open && fresh).then_some(&self.frames[..])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn frame(rtp_time: u32, bytes: usize) -> Arc<FramePackets> {
        frame_at(rtp_time, bytes, Instant::now())
    }

    fn frame_at(rtp_time: u32, bytes: usize, wallclock: Instant) -> Arc<FramePackets> {
        Arc::new(FramePackets {
            rtp_time,
            wallclock,
            payloads: vec![Arc::from(vec![0u8; bytes])],
        })
    }

    fn times(cache: &GopCache) -> Option<Vec<u32>> {
        cache
            .frames(Instant::now())
            .map(|f| f.iter().map(|f| f.rtp_time).collect())
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut c = GopCache::default();
        assert!(!c.keeps(false));
        c.push(&frame(1, 100), false);
        assert_eq!(times(&c), None);
        assert!(c.keeps(true));
    }

    #[test]
    fn a_keyframe_and_the_frames_since_in_order_and_a_new_keyframe_starts_afresh() {
        let mut c = GopCache::default();
        c.push(&frame(1, 100), true);
        assert!(c.keeps(false));
        c.push(&frame(2, 100), false);
        c.push(&frame(3, 100), false);
        assert_eq!(times(&c), Some(vec![1, 2, 3]));
        c.push(&frame(4, 100), true);
        c.push(&frame(5, 100), false);
        assert_eq!(times(&c), Some(vec![4, 5]));
    }

    #[test]
    fn past_the_frame_budget_it_closes_until_the_next_keyframe() {
        let mut c = GopCache::default();
        c.push(&frame(0, 10), true);
        for t in 1..MAX_FRAMES as u32 {
            c.push(&frame(t, 10), false);
        }
        assert_eq!(times(&c).map(|t| t.len()), Some(MAX_FRAMES));
        c.push(&frame(99, 10), false);
        assert_eq!(times(&c), None, "one frame too many");
        assert!(!c.keeps(false), "nothing to packetise for it now");
        c.push(&frame(100, 10), false);
        assert_eq!(times(&c), None);
        c.push(&frame(101, 10), true);
        assert_eq!(times(&c), Some(vec![101]));
    }

    #[test]
    fn past_the_byte_budget_it_closes_and_an_oversized_keyframe_is_not_kept() {
        let mut c = GopCache::default();
        c.push(&frame(0, MAX_BYTES / 2), true);
        c.push(&frame(1, MAX_BYTES / 2), false);
        assert_eq!(times(&c), Some(vec![0, 1]), "exactly the budget");
        c.push(&frame(2, 1), false);
        assert_eq!(times(&c), None);
        c.push(&frame(3, MAX_BYTES + 1), true);
        assert_eq!(times(&c), None);
        assert!(!c.keeps(false));
    }

    #[test]
    fn closing_drops_what_is_kept() {
        let mut c = GopCache::default();
        c.push(&frame(0, 10), true);
        c.close();
        assert_eq!(times(&c), None);
        c.push(&frame(1, 10), false);
        assert_eq!(times(&c), None, "a delta does not reopen it");
    }

    #[test]
    fn once_the_camera_stops_sending_nothing_is_replayed() {
        let mut c = GopCache::default();
        let t0 = Instant::now();
        c.push(&frame_at(0, 10, t0), true);
        c.push(&frame_at(3000, 10, t0 + MAX_AGE / 2), false);
        assert!(c.frames(t0 + MAX_AGE).is_some(), "the newest is recent");
        assert!(c.frames(t0 + MAX_AGE * 3 / 2).is_none(), "stale");
        // It picks up again when frames come in.
        c.push(&frame_at(6000, 10, t0 + MAX_AGE * 2), false);
        assert_eq!(c.frames(t0 + MAX_AGE * 2).map(<[_]>::len), Some(3));
    }
}
