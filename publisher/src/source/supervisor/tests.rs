//! The supervisor's threads driven by a scripted fake source: the test says when the source
//! can be opened and what each read returns, and watches states and frames come out.

use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;

use super::*;
use crate::image::I420Frame;
use crate::source::{CapturedFrame, SourceUrl};

/// What the fake source's next read does.
enum Read {
    Frame(u32, u32),
    Fail(&'static str),
    Panic,
}

/// A source whose reads block until the test scripts them. Every opened instance shares the
/// one script, as reconnects to one device would.
struct Scripted {
    script: Arc<Mutex<mpsc::Receiver<Read>>>,
    /// What [`Source::detail`] says; the test changes it at will.
    detail: Arc<Mutex<Option<String>>>,
    index: u32,
}

impl Source for Scripted {
    fn dimensions(&self) -> (u32, u32) {
        (0, 0)
    }
    fn fps(&self) -> u32 {
        30
    }
    fn next_frame(&mut self) -> anyhow::Result<CapturedFrame> {
        let read = self.script.lock().unwrap().recv();
        match read {
            Ok(Read::Frame(w, h)) => {
                self.index += 1;
                Ok(CapturedFrame::raw(I420Frame::black(w, h), 0, self.index))
            }
            Ok(Read::Fail(e)) => Err(anyhow::anyhow!(e)),
            Ok(Read::Panic) => panic!("scripted panic"),
            Err(_) => Err(anyhow::anyhow!("script over")),
        }
    }
    fn detail(&self) -> Option<String> {
        self.detail.lock().unwrap().clone()
    }
}

struct Rig {
    supervisor: Supervisor,
    feed: SourceFeed,
    reads: mpsc::Sender<Read>,
    available: Arc<AtomicBool>,
    opens: Arc<AtomicUsize>,
    detail: Arc<Mutex<Option<String>>>,
}

fn rig(available: bool) -> Rig {
    let (reads, script) = mpsc::channel();
    let script = Arc::new(Mutex::new(script));
    let available = Arc::new(AtomicBool::new(available));
    let opens = Arc::new(AtomicUsize::new(0));
    let detail = Arc::new(Mutex::new(None));
    let open: Opener = {
        let (available, opens) = (Arc::clone(&available), Arc::clone(&opens));
        let detail = Arc::clone(&detail);
        Box::new(move |_: &SourceSpec| {
            opens.fetch_add(1, Ordering::SeqCst);
            if !available.load(Ordering::SeqCst) {
                anyhow::bail!("device not there");
            }
            Ok(Box::new(Scripted {
                script: Arc::clone(&script),
                detail: Arc::clone(&detail),
                index: 0,
            }) as Box<dyn Source>)
        })
    };
    let spec = SourceSpec::new(
        SourceUrl::File {
            path: "cam.mjpeg".into(),
        },
        "cam",
    );
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40), 0.0);
    let supervisor = Supervisor::start_with(spec, open, backoff).unwrap();
    let feed = supervisor.feed();
    Rig {
        supervisor,
        feed,
        reads,
        available,
        opens,
        detail,
    }
}

fn wait_for(feed: &SourceFeed, what: &str, ok: impl Fn(&SourceHealth) -> bool) -> SourceHealth {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let h = feed.health();
        if ok(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; at {h:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lost_with(feed: &SourceFeed, text: &str) -> SourceHealth {
    wait_for(
        feed,
        text,
        |h| matches!(h, SourceHealth::Lost { error } if error.contains(text)),
    )
}

fn next(reader: &FrameReader) -> SourceFrame {
    reader
        .next(Duration::from_secs(5))
        .expect("a frame within 5 s")
}

#[test]
fn a_missing_source_is_lost_retried_and_live_when_it_appears() {
    let r = rig(false);
    // The first open may already have failed by now: the supervisor thread runs at once.
    assert!(matches!(
        r.feed.health(),
        SourceHealth::Connecting | SourceHealth::Lost { .. }
    ));
    assert_eq!(r.feed.name(), "file:cam.mjpeg");
    let mut states = r.feed.watch();
    lost_with(&r.feed, "device not there");
    // Backoff keeps trying.
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.opens.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "no retries");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Repeating the same failure is not news.
    assert!(states.has_changed().unwrap());
    states.borrow_and_update();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!states.has_changed().unwrap(), "same error published again");

    let reader = r.feed.reader();
    r.available.store(true, Ordering::SeqCst);
    // Opened is not live: live means a frame came.
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(r.feed.health(), SourceHealth::Lost { .. }));
    r.reads.send(Read::Frame(64, 48)).unwrap();
    let first = next(&reader);
    assert!(
        first.resumed,
        "first frame after a loss asks for a keyframe"
    );
    wait_for(&r.feed, "live", |h| *h == SourceHealth::Live);
    r.reads.send(Read::Frame(64, 48)).unwrap();
    let second = next(&reader);
    assert!(!second.resumed);
    assert_eq!(second.seq, first.seq + 1);
    drop(r.supervisor);
}

#[test]
fn a_read_error_reopens_and_the_next_stream_shows_a_gap() {
    let r = rig(true);
    let reader = r.feed.reader();
    r.reads.send(Read::Frame(32, 32)).unwrap();
    let first = next(&reader);
    assert!(!first.resumed, "Connecting → Live is not a resume");
    wait_for(&r.feed, "live", |h| *h == SourceHealth::Live);
    let opens = r.opens.load(Ordering::SeqCst);

    r.reads.send(Read::Fail("connection reset")).unwrap();
    lost_with(&r.feed, "connection reset");
    r.reads.send(Read::Frame(32, 32)).unwrap();
    let after = next(&reader);
    assert!(after.resumed);
    assert!(
        after.seq > first.seq + 1,
        "a reopened source is a new stream"
    );
    assert_eq!(r.opens.load(Ordering::SeqCst), opens + 1, "reopened once");
    wait_for(&r.feed, "live again", |h| *h == SourceHealth::Live);
}

#[test]
fn a_silent_source_is_lost_while_its_read_still_blocks() {
    let r = rig(true);
    let reader = r.feed.reader();
    r.reads.send(Read::Frame(32, 32)).unwrap();
    next(&reader);
    wait_for(&r.feed, "live", |h| *h == SourceHealth::Live);
    let t0 = Instant::now();
    // Nothing scripted: the read blocks, as a stalled device would.
    let h = lost_with(&r.feed, "no frame for");
    let waited = t0.elapsed();
    assert!(
        waited >= MIN_STALL - Duration::from_millis(150) && waited < MIN_STALL * 2,
        "lost after {waited:?}: {h:?}"
    );
    // The same open source delivers again: live, and the frame says it follows a loss.
    r.reads.send(Read::Frame(32, 32)).unwrap();
    let f = next(&reader);
    assert!(f.resumed);
    wait_for(&r.feed, "live", |h| *h == SourceHealth::Live);
    assert_eq!(r.opens.load(Ordering::SeqCst), 1, "no reopen for a stall");
}

#[test]
fn a_panicking_source_is_an_error_not_a_dead_thread() {
    let r = rig(true);
    let reader = r.feed.reader();
    r.reads.send(Read::Panic).unwrap();
    lost_with(&r.feed, "panicked");
    r.reads.send(Read::Frame(16, 16)).unwrap();
    assert!(next(&reader).resumed);
    assert!(r.opens.load(Ordering::SeqCst) >= 2);
}

#[test]
fn frames_keep_their_size_changes() {
    let r = rig(true);
    let reader = r.feed.reader();
    for (w, h) in [(32, 32), (64, 48), (64, 48)] {
        r.reads.send(Read::Frame(w, h)).unwrap();
        let f = next(&reader);
        let crate::source::Payload::Raw(raw) = f.captured.payload else {
            panic!("raw frame expected");
        };
        assert_eq!((raw.width, raw.height), (w, h));
    }
}

#[test]
fn the_live_sources_detail_is_published_and_followed() {
    let r = rig(true);
    let reader = r.feed.reader();
    let mut states = r.feed.watch();
    *r.detail.lock().unwrap() = Some("passthrough (Constrained Baseline 3.1)".into());
    r.reads.send(Read::Frame(32, 32)).unwrap();
    next(&reader);
    // Live and its detail arrive together: one change, not two.
    assert_eq!(
        r.feed.report(),
        SourceReport {
            health: SourceHealth::Live,
            detail: Some("passthrough (Constrained Baseline 3.1)".into()),
        }
    );
    assert!(states.has_changed().unwrap());
    states.borrow_and_update();

    // The source changes its mind (an RTSP camera's first B-slice): seen within
    // DETAIL_CHECK_FRAMES frames, not on the very next one necessarily.
    *r.detail.lock().unwrap() = Some("re-encoding (Main 3.1; B-frames)".into());
    for _ in 0..DETAIL_CHECK_FRAMES {
        r.reads.send(Read::Frame(32, 32)).unwrap();
        next(&reader);
    }
    assert_eq!(
        r.feed.report().detail.as_deref(),
        Some("re-encoding (Main 3.1; B-frames)")
    );
    assert!(states.has_changed().unwrap());
    states.borrow_and_update();
    // Unchanged: frames alone publish nothing.
    for _ in 0..DETAIL_CHECK_FRAMES * 2 {
        r.reads.send(Read::Frame(32, 32)).unwrap();
        next(&reader);
    }
    assert!(!states.has_changed().unwrap(), "{:?}", r.feed.report());

    // Lost: no detail (it described the source that failed). The reopened source tells its
    // own with its first frame.
    r.reads.send(Read::Fail("connection reset")).unwrap();
    lost_with(&r.feed, "connection reset");
    assert_eq!(r.feed.report().detail, None);
    *r.detail.lock().unwrap() = Some("passthrough (Main 4.0)".into());
    r.reads.send(Read::Frame(32, 32)).unwrap();
    next(&reader);
    assert_eq!(
        r.feed.report(),
        SourceReport {
            health: SourceHealth::Live,
            detail: Some("passthrough (Main 4.0)".into()),
        }
    );
}

#[test]
fn dropping_the_supervisor_stops_reopening() {
    let r = rig(false);
    lost_with(&r.feed, "device not there");
    drop(r.supervisor);
    // Let an attempt in flight finish, then nothing more.
    std::thread::sleep(Duration::from_millis(100));
    let opens = r.opens.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(r.opens.load(Ordering::SeqCst), opens);
}
