use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::*;
use crate::backoff::Backoff;
use crate::barcode;
use crate::source::supervisor::Supervisor;
use crate::source::{CapturedFrame, SourceSpec, SourceUrl, TestPattern};

const SETTINGS: EncodeSettings = EncodeSettings {
    bitrate: 300_000,
    keyframe_interval: Duration::from_secs(60),
};

fn raw(w: u32, h: u32, seq: u64, resumed: bool) -> SourceFrame {
    let tp = TestPattern::new(w, h, 30, 1).unwrap();
    SourceFrame {
        captured: CapturedFrame::raw(tp.render(seq as u32, 0), 0, seq as u32),
        seq,
        resumed,
    }
}

fn h264(keyframe: bool, seq: u64) -> SourceFrame {
    SourceFrame {
        captured: CapturedFrame {
            payload: Payload::H264(H264AccessUnit {
                data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, seq as u8].into(),
                keyframe,
            }),
            capture_us: 0,
            index: seq as u32,
        },
        seq,
        resumed: false,
    }
}

/// A VP8 lane nobody asks for.
fn no_vp8() -> Vp8Lane {
    Vp8Lane::new(Vp8Demand::default(), KeyframeRequest::default(), 0)
}

/// Whether `au` decodes, and to what size.
fn decoded_size(dec: &mut Decoder, au: &EncodedFrame) -> (usize, usize) {
    dec.decode(&au.data)
        .unwrap()
        .expect("one picture per access unit")
        .dimensions()
}

#[test]
fn the_encoder_follows_the_frames_size() {
    let mut fe = FrameEncoder::new(SETTINGS, KeyframeRequest::default(), no_vp8());
    let mut dec = Decoder::new().unwrap();
    // Created from the first frame's size, whatever was configured.
    let first = fe.process(raw(160, 120, 1, false), 30).unwrap();
    assert!(first.keyframe, "a new encoder starts with an IDR");
    assert_eq!(decoded_size(&mut dec, &first), (160, 120));
    let delta = fe.process(raw(160, 120, 2, false), 30).unwrap();
    assert!(!delta.keyframe);
    decoded_size(&mut dec, &delta);
    // A new size: a new IDR with a new SPS, which the same decoder follows.
    let bigger = fe.process(raw(320, 240, 3, false), 30).unwrap();
    assert!(bigger.keyframe);
    let types: Vec<u8> = crate::h264::nal::split_annex_b(&bigger.data)
        .iter()
        .filter_map(|n| crate::h264::nal::nal_type(n))
        .collect();
    assert!(types.contains(&crate::h264::nal::NAL_SPS), "{types:?}");
    assert_eq!(decoded_size(&mut dec, &bigger), (320, 240));
    assert!(!fe.process(raw(320, 240, 4, false), 30).unwrap().keyframe);
}

#[test]
fn frames_after_a_loss_and_keyframe_requests_start_with_an_idr() {
    let requests = KeyframeRequest::default();
    let mut fe = FrameEncoder::new(SETTINGS, requests.clone(), no_vp8());
    assert!(fe.process(raw(64, 64, 1, false), 30).unwrap().keyframe);
    assert!(!fe.process(raw(64, 64, 2, false), 30).unwrap().keyframe);
    // A raw gap (dropped frames) needs no IDR: the encoder predicts from what it sent.
    assert!(!fe.process(raw(64, 64, 9, false), 30).unwrap().keyframe);
    assert!(fe.process(raw(64, 64, 10, true), 30).unwrap().keyframe);
    assert!(!fe.process(raw(64, 64, 11, false), 30).unwrap().keyframe);
    requests.request();
    assert!(fe.process(raw(64, 64, 12, false), 30).unwrap().keyframe);
    assert!(!fe.process(raw(64, 64, 13, false), 30).unwrap().keyframe);
}

#[test]
fn passthrough_waits_for_a_keyframe_after_any_gap() {
    let mut fe = FrameEncoder::new(SETTINGS, KeyframeRequest::default(), no_vp8());
    // Joining mid-stream: deltas reference pictures nobody has.
    assert!(fe.process(h264(false, 1), 30).is_none());
    assert!(fe.process(h264(false, 2), 30).is_none());
    assert!(fe.process(h264(true, 3), 30).unwrap().keyframe);
    assert!(fe.process(h264(false, 4), 30).is_some());
    assert!(fe.process(h264(false, 5), 30).is_some());
    // Frames 6 and 7 were dropped: deltas wait for the next keyframe.
    assert!(fe.process(h264(false, 8), 30).is_none());
    assert!(fe.process(h264(false, 9), 30).is_none());
    let k = fe.process(h264(true, 10), 30).unwrap();
    assert_eq!(k.data, h264(true, 10).captured_data());
    assert!(fe.process(h264(false, 11), 30).is_some());
}

#[test]
fn switching_between_raw_and_passthrough_restarts_cleanly() {
    let mut fe = FrameEncoder::new(SETTINGS, KeyframeRequest::default(), no_vp8());
    assert!(fe.process(raw(64, 64, 1, false), 30).unwrap().keyframe);
    // Passthrough right after raw: even consecutive, its deltas need its own keyframe.
    assert!(fe.process(h264(false, 2), 30).is_none());
    assert!(fe.process(h264(true, 3), 30).is_some());
    // Back to raw at the same size: the old encoder's references are gone from viewers.
    assert!(fe.process(raw(64, 64, 4, false), 30).unwrap().keyframe);
}

#[test]
fn frames_the_encoder_cannot_take_are_dropped_not_fatal() {
    let mut fe = FrameEncoder::new(SETTINGS, KeyframeRequest::default(), no_vp8());
    let odd = SourceFrame {
        captured: CapturedFrame::raw(I420Frame::black(18, 18), 0, 0),
        seq: 1,
        resumed: false,
    };
    let mut odd_size = odd.clone();
    if let Payload::Raw(f) = &mut odd_size.captured.payload {
        f.width = 17; // claims a size the encoder refuses
    }
    assert!(fe.process(odd_size.clone(), 30).is_none());
    assert!(fe.process(odd_size, 30).is_none());
    // Planes too short for the claimed size: an encode error, skipped.
    let mut short = odd;
    short.seq = 2;
    if let Payload::Raw(f) = &mut short.captured.payload {
        f.y.truncate(10);
    }
    assert!(fe.process(short, 30).is_none());
    // Good frames still work.
    assert!(fe.process(raw(64, 64, 3, false), 30).unwrap().keyframe);
}

impl SourceFrame {
    fn captured_data(&self) -> Vec<u8> {
        match &self.captured.payload {
            Payload::H264(au) => au.data.to_vec(),
            Payload::Raw(_) => Vec::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encode_thread_encodes_supervised_frames_in_order() {
    let mut spec = SourceSpec::new(SourceUrl::TestPattern, "cam");
    (spec.width, spec.height) = (320, 240);
    let supervisor = Supervisor::start_with(
        spec.clone(),
        Box::new(|s: &SourceSpec| crate::source::open(s)),
        Backoff::default(),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let (report, _) = watch::channel(FrameReport::default());
    let vp8 = Vp8Demand::default();
    let snapshots = SnapshotDesk::default();
    let ctx = EncodeContext {
        keyframe_interval: SETTINGS.keyframe_interval,
        keyframes: KeyframeRequest::default(),
        vp8: vp8.clone(),
        vp8_keyframes: KeyframeRequest::default(),
        live: live_settings(None).reader(),
        report,
        applied: ApplyLog::default(),
        snapshots: snapshots.clone(),
        motion: mpsc::unbounded_channel().0,
    };
    let t = EncodeThread::start(supervisor.feed(), ctx, tx).unwrap();
    let mut dec = Decoder::new().unwrap();
    let first = rx.recv().await.unwrap();
    assert!(first.encoded.keyframe);
    let mut prev = first.index;
    decoded_size(&mut dec, &first.encoded);
    for _ in 0..10 {
        let f = rx.recv().await.unwrap();
        assert_eq!(f.index, prev + 1, "no frame lost on the way");
        assert!(!f.encoded.keyframe);
        let yuv = dec.decode(&f.encoded.data).unwrap().unwrap();
        let (w, h) = yuv.dimensions();
        let stamp = barcode::read(yuv.y(), yuv.strides().0, w, h).unwrap();
        assert_eq!(stamp.frame, f.index);
        prev = f.index;
    }
    // A snapshot order is served from the next frame, at the frames' size.
    let order = snapshots.order();
    rx.recv().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), order).await {
        Ok(Ok(super::snapshot::Picture::Raw(f))) => assert_eq!((f.width, f.height), (320, 240)),
        other => panic!("no snapshot picture: {other:?}"),
    }
    // VP8 viewers arrive: the same frames come in VP8 too, from a keyframe on; they leave:
    // no more VP8.
    vp8.set(true);
    let f = rx.recv().await.unwrap();
    let mut sent_vp8 = f.vp8.into_iter().collect::<Vec<_>>();
    for _ in 0..5 {
        sent_vp8.extend(rx.recv().await.unwrap().vp8);
    }
    if cfg!(sightline_vp8) {
        assert!(sent_vp8.len() >= 5, "VP8 with (nearly) every frame");
        assert!(sent_vp8[0].keyframe);
    } else {
        assert!(sent_vp8.is_empty(), "a build without VP8 sends none");
    }
    vp8.set(false);
    rx.recv().await.unwrap();
    assert!(rx.recv().await.unwrap().vp8.is_none());
    drop(rx);
    t.stop().await.unwrap();
}

fn live_settings(target: Option<(u32, u32)>) -> crate::control::PipelineSettingsHandle {
    crate::control::PipelineSettingsHandle::new(crate::control::PipelineSettings {
        version: 1,
        target_size: target,
        fps: 0,
        bitrate: SETTINGS.bitrate,
        adjust: crate::image::ImageAdjust::IDENTITY,
        motion: None,
    })
}

#[test]
fn a_slate_starts_whole_and_so_does_the_source_after_it() {
    let requests = KeyframeRequest::default();
    let mut fe = FrameEncoder::new(SETTINGS, requests.clone(), no_vp8());
    let mut dec = Decoder::new().unwrap();
    for seq in 1..=3 {
        decoded_size(
            &mut dec,
            &fe.process(raw(160, 120, seq, false), 30).unwrap(),
        );
    }
    let picture = fe.last_picture().expect("the last picture is kept").clone();
    let slate = slate::render(Some(&picture), (0, 0));
    let first = fe.slate(&slate, 30).unwrap();
    assert!(
        first.keyframe,
        "the first slate of a loss replaces every picture"
    );
    let yuv = dec.decode(&first.data).unwrap().unwrap();
    let (w, h) = yuv.dimensions();
    assert_eq!((w, h), (160, 120), "the slate keeps the picture's size");
    assert_eq!(barcode::read(yuv.y(), yuv.strides().0, w, h), None);
    assert!(!fe.slate(&slate, 30).unwrap().keyframe, "then deltas");
    requests.request();
    assert!(
        fe.slate(&slate, 30).unwrap().keyframe,
        "a viewer's PLI is served"
    );
    // The source is back: its first frame starts whole, then deltas again (openh264 may
    // add an IDR of its own right after the change of scene).
    assert!(fe.process(raw(160, 120, 9, true), 30).unwrap().keyframe);
    let keyframes: Vec<bool> = (10..15)
        .map(|seq| fe.process(raw(160, 120, seq, false), 30).unwrap().keyframe)
        .collect();
    assert_eq!(keyframes[2..], [false; 3], "{keyframes:?}");
    assert!(fe.slate(&slate, 30).unwrap().keyframe, "a new loss");
    assert!(fe.process(raw(160, 120, 15, false), 30).unwrap().keyframe);
}

#[test]
fn passthrough_after_a_slate_waits_for_the_sources_keyframe() {
    let mut fe = FrameEncoder::new(SETTINGS, KeyframeRequest::default(), no_vp8());
    assert!(fe.process(h264(true, 1), 30).is_some());
    assert!(fe.last_picture().is_none(), "nothing raw to dim");
    let grey = slate::render(None, slate::FALLBACK_SIZE);
    assert!(fe.slate(&grey, 30).unwrap().keyframe);
    assert!(fe.process(h264(false, 2), 30).is_none());
    assert!(fe.process(h264(true, 3), 30).is_some());
}

async fn next(rx: &mut mpsc::Receiver<OutFrame>) -> OutFrame {
    let f = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    f.expect("a slate within 5 s").expect("the thread runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_source_gets_a_slate_once_a_second() {
    let spec = SourceSpec::new(SourceUrl::TestPattern, "cam");
    let supervisor = Supervisor::start_with(
        spec,
        Box::new(
            |_: &SourceSpec| -> anyhow::Result<Box<dyn crate::source::Source>> {
                anyhow::bail!("no such camera")
            },
        ),
        Backoff::default(),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let (report, _) = watch::channel(FrameReport::default());
    let ctx = EncodeContext {
        keyframe_interval: SETTINGS.keyframe_interval,
        keyframes: KeyframeRequest::default(),
        vp8: Vp8Demand::default(),
        vp8_keyframes: KeyframeRequest::default(),
        live: live_settings(None).reader(),
        report,
        applied: ApplyLog::default(),
        snapshots: SnapshotDesk::default(),
        motion: mpsc::unbounded_channel().0,
    };
    let t = EncodeThread::start(supervisor.feed(), ctx, tx).unwrap();
    let first = next(&mut rx).await;
    assert!(first.encoded.keyframe);
    let mut dec = Decoder::new().unwrap();
    let size = decoded_size(&mut dec, &first.encoded);
    assert_eq!(
        size,
        (640, 360),
        "grey at the fallback size: no picture was ever seen"
    );
    let mut last = (std::time::Instant::now(), first.capture_us);
    for _ in 0..2 {
        let f = next(&mut rx).await;
        assert!(!f.encoded.keyframe);
        decoded_size(&mut dec, &f.encoded);
        let gap = last.0.elapsed();
        assert!(
            gap >= Duration::from_millis(800),
            "slates are 1 s apart: {gap:?}"
        );
        assert!(
            f.capture_us - last.1 >= 800_000,
            "capture times follow the clock"
        );
        last = (std::time::Instant::now(), f.capture_us);
    }
    drop(rx);
    t.stop().await.unwrap();
}
