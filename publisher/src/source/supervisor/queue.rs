//! The hand-off between the source thread and the encode thread: a small bounded queue.
//!
//! While a reader (a publishing session's encode thread) is attached, a full queue makes the
//! source wait a little, as a directly driven source used to: a briefly slow encoder costs
//! latency, not frames. Without a reader (between sessions), or when the reader stays stuck,
//! the oldest frame is dropped so the source keeps reading its device in real time and the
//! next reader starts with fresh frames. Dropped frames leave a gap in [`SourceFrame::seq`],
//! which tells the reader that H.264 references may be broken.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::source::CapturedFrame;

/// A frame as the supervisor hands it on.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    pub captured: CapturedFrame,
    /// Consecutive for consecutive frames of one open source. A jump means frames were
    /// dropped or the source was reopened in between.
    pub seq: u64,
    /// The first frame after the source was lost: the encoder should start it with a
    /// keyframe so every viewer's picture is whole again at once.
    pub resumed: bool,
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<SourceFrame>,
    readers: usize,
    dropped: u64,
}

/// The queue. Shared by `Arc` between the two threads.
pub struct FrameQueue {
    inner: Mutex<Inner>,
    changed: Condvar,
    capacity: usize,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        FrameQueue {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    // A panic on the other thread while holding the lock leaves plain data behind: use it.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Producer: queue `frame`. With a reader attached, wait up to `max_wait` for room;
    /// then (or at once without a reader) drop the oldest frame to make room.
    pub fn push(&self, frame: SourceFrame, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let mut g = self.lock();
        while g.readers > 0 && g.frames.len() >= self.capacity {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        while g.frames.len() >= self.capacity {
            g.frames.pop_front();
            g.dropped += 1;
        }
        g.frames.push_back(frame);
        drop(g);
        self.changed.notify_all();
    }

    /// Consumer: the oldest frame, waiting up to `timeout` for one.
    pub fn pop(&self, timeout: Duration) -> Option<SourceFrame> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(f) = g.frames.pop_front() {
                drop(g);
                self.changed.notify_all();
                return Some(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A reader starts: stale frames queued while nobody read are thrown away.
    pub fn attach(&self) {
        let mut g = self.lock();
        g.readers += 1;
        let stale = g.frames.len() as u64;
        g.frames.clear();
        g.dropped += stale;
        drop(g);
        self.changed.notify_all();
    }

    /// A reader is gone: the producer stops waiting for it.
    pub fn detach(&self) {
        let mut g = self.lock();
        g.readers = g.readers.saturating_sub(1);
        drop(g);
        self.changed.notify_all();
    }

    /// Frames dropped so far (full queue, or stale on attach).
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::I420Frame;
    use std::sync::Arc;

    fn frame(seq: u64) -> SourceFrame {
        SourceFrame {
            captured: CapturedFrame::raw(I420Frame::black(16, 16), seq, seq as u32),
            seq,
            resumed: false,
        }
    }

    #[test]
    fn without_a_reader_old_frames_make_room_at_once() {
        let q = FrameQueue::new(2);
        let t0 = Instant::now();
        for s in 0..5 {
            q.push(frame(s), Duration::from_secs(10));
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "never waited");
        assert_eq!(q.dropped(), 3);
        let got: Vec<u64> = std::iter::from_fn(|| q.pop(Duration::ZERO).map(|f| f.seq)).collect();
        assert_eq!(got, [3, 4], "the newest survive");
    }

    #[test]
    fn attaching_drops_stale_frames() {
        let q = FrameQueue::new(4);
        q.push(frame(0), Duration::ZERO);
        q.push(frame(1), Duration::ZERO);
        q.attach();
        assert!(q.pop(Duration::from_millis(10)).is_none());
        assert_eq!(q.dropped(), 2);
    }

    #[test]
    fn an_attached_reader_slows_the_producer_instead_of_losing_frames() {
        let q = Arc::new(FrameQueue::new(2));
        q.attach();
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for s in 0..20 {
                    q.push(frame(s), Duration::from_secs(5));
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 20 {
            std::thread::sleep(Duration::from_millis(2)); // a slowish reader
            if let Some(f) = q.pop(Duration::from_secs(5)) {
                got.push(f.seq);
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn a_stuck_reader_costs_frames_not_the_source() {
        let q = FrameQueue::new(1);
        q.attach();
        q.push(frame(0), Duration::from_millis(20));
        let t0 = Instant::now();
        q.push(frame(1), Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop(Duration::ZERO).unwrap().seq, 1);
        q.detach();
        let t0 = Instant::now();
        q.push(frame(2), Duration::from_secs(5));
        q.push(frame(3), Duration::from_secs(5));
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "detached: no waiting"
        );
    }

    #[test]
    fn pop_times_out_when_nothing_comes() {
        let q = FrameQueue::new(1);
        let t0 = Instant::now();
        assert!(q.pop(Duration::from_millis(30)).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }
}
