//! Snapshots: a JPEG of the camera's picture, asked for by the server (`snapshot_request`)
//! for `GET /api/cameras/{id}/snapshot.jpg`.
//!
//! The encode thread has every picture as it goes by, so it serves the orders: a raw
//! source's next frame (after the viewers' image settings, as viewers see it), or, for
//! H.264 passed through from an RTSP camera, the access units since the last keyframe (kept
//! here while passing through), which decode to the latest picture. The JPEG itself is made
//! off the encode thread, by [`make_jpeg`] on a blocking task, so an order costs the encode
//! thread one copy of a frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use tokio::sync::oneshot;

use crate::image::jpeg_out::encode_jpeg;
use crate::image::{scale_i420, I420Frame};
use crate::source::rtsp::decode::H264Decoder;

/// What the encode thread hands over for a snapshot.
#[derive(Debug, Clone)]
pub enum Picture {
    Raw(I420Frame),
    /// Annex-B access units from a keyframe up to now (passthrough).
    H264(Vec<Bytes>),
}

/// Snapshot orders waiting for the encode thread's next frame. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SnapshotDesk(Arc<Desk>);

#[derive(Debug, Default)]
struct Desk {
    /// Whether `orders` may hold any: checked per frame, so an idle desk costs no lock.
    waiting: AtomicBool,
    orders: Mutex<Vec<oneshot::Sender<Picture>>>,
}

impl SnapshotDesk {
    /// Ask for the next picture. The receiver fails if the encode thread goes first.
    pub fn order(&self) -> oneshot::Receiver<Picture> {
        let (tx, rx) = oneshot::channel();
        let mut orders = self.0.orders.lock().unwrap();
        orders.push(tx);
        self.0.waiting.store(true, Ordering::Release);
        rx
    }

    /// Whether anyone waits.
    pub fn wanted(&self) -> bool {
        self.0.waiting.load(Ordering::Acquire)
    }

    /// Hand `picture` to everyone waiting. An order placed meanwhile gets the next frame.
    pub fn serve(&self, picture: impl FnOnce() -> Picture) {
        if !self.0.waiting.load(Ordering::Acquire) {
            return;
        }
        let orders = {
            let mut orders = self.0.orders.lock().unwrap();
            self.0.waiting.store(false, Ordering::Release);
            std::mem::take(&mut *orders)
        };
        if orders.is_empty() {
            return;
        }
        let picture = picture();
        for order in orders {
            let _ = order.send(picture.clone());
        }
    }
}

/// Passed-through H.264 kept from the last keyframe, to decode a snapshot from. A camera
/// whose keyframes are further apart than [`GOP_LIMIT`] bytes gets no snapshot until it
/// sends one.
#[derive(Debug, Default)]
pub struct KeptGop {
    units: Vec<Bytes>,
    bytes: usize,
    /// Over the limit since the last keyframe: nothing usable is kept.
    overflowed: bool,
}

/// The most passed-through H.264 kept for snapshots: a few seconds of a busy 1080p camera.
pub const GOP_LIMIT: usize = 16 << 20;

impl KeptGop {
    pub fn push(&mut self, data: &Bytes, keyframe: bool) {
        if keyframe {
            self.units.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.units.is_empty() || self.overflowed {
            return; // no keyframe to start from
        }
        if self.bytes + data.len() > GOP_LIMIT {
            self.units = Vec::new();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += data.len();
        self.units.push(data.clone());
    }

    /// What a snapshot decodes: from the keyframe to now (empty: nothing usable yet).
    pub fn picture(&self) -> Picture {
        Picture::H264(self.units.clone())
    }

    /// Forget it all (the source is not passed through any more). Called per raw frame, so
    /// nearly free when there is nothing to forget.
    pub fn clear(&mut self) {
        if !self.units.is_empty() || self.overflowed {
            *self = KeptGop::default();
        }
    }
}

/// Make the JPEG for `picture`, `width` wide at most (the height follows, both even), at
/// `quality`; lower quality when it would be over `max_bytes`. Blocking (decoding and
/// encoding take milliseconds to a fraction of a second): run it off the async executor.
pub fn make_jpeg(
    picture: Picture,
    width: Option<u32>,
    quality: u8,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let frame = match picture {
        Picture::Raw(frame) => frame,
        Picture::H264(units) => decode_last(&units)?,
    };
    let frame = match scaled_size(frame.width, frame.height, width) {
        Some((w, h)) => scale_i420(&frame, w, h).map_err(|e| format!("scaling: {e:#}"))?,
        None => frame,
    };
    let mut q = quality.clamp(1, 100);
    loop {
        let jpeg = encode_jpeg(&frame, q).map_err(|e| format!("{e:#}"))?;
        if jpeg.len() <= max_bytes {
            return Ok(jpeg);
        }
        if q <= 10 {
            return Err(format!(
                "a {}x{} JPEG is {} bytes even at quality {q}, over the {max_bytes}-byte limit; ask for a smaller ?width=",
                frame.width,
                frame.height,
                jpeg.len()
            ));
        }
        q = (q / 2).max(10);
    }
}

/// The size to scale a `w`×`h` picture to for `width`, or `None` to keep it: never wider
/// than the picture, both sides even, the aspect kept.
pub fn scaled_size(w: u32, h: u32, width: Option<u32>) -> Option<(u32, u32)> {
    let want = width? & !1;
    if want >= w || want < 16 {
        return None;
    }
    let height = ((u64::from(h) * u64::from(want) / u64::from(w)) as u32 & !1).max(2);
    Some((want, height))
}

/// Decode `units` (a keyframe first) and keep the last picture.
pub(super) fn decode_last(units: &[Bytes]) -> Result<I420Frame, String> {
    if units.is_empty() {
        return Err("no keyframe from the camera yet to decode a picture from".into());
    }
    let mut decoder = H264Decoder::new().map_err(|e| format!("{e:#}"))?;
    let mut last = None;
    for unit in units {
        match decoder.decode(unit) {
            Ok(Some(frame)) => last = Some(frame),
            Ok(None) => {}
            // A damaged frame: later ones may still decode (with its errors in them).
            Err(e) => tracing::debug!("snapshot: a frame did not decode: {e}"),
        }
    }
    last.ok_or_else(|| "the camera's H.264 decoded to no picture".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::encoder::{Encoder, EncoderSettings};
    use crate::image::decode_jpeg;

    fn pattern(w: u32, h: u32, shade: u8) -> I420Frame {
        let mut f = I420Frame::black(w, h);
        for (i, y) in f.y.iter_mut().enumerate() {
            *y = if (i % w as usize) < w as usize / 2 {
                shade
            } else {
                30
            };
        }
        f
    }

    #[test]
    fn sizes_scale_down_only_and_stay_even() {
        assert_eq!(scaled_size(1280, 720, None), None);
        assert_eq!(scaled_size(1280, 720, Some(1280)), None);
        assert_eq!(scaled_size(1280, 720, Some(4000)), None, "never up");
        assert_eq!(scaled_size(1280, 720, Some(320)), Some((320, 180)));
        assert_eq!(scaled_size(1280, 720, Some(321)), Some((320, 180)));
        assert_eq!(scaled_size(640, 480, Some(101)), Some((100, 74)));
        assert_eq!(
            scaled_size(640, 480, Some(8)),
            None,
            "too small to mean anything"
        );
    }

    #[test]
    fn the_desk_serves_everyone_waiting_once() {
        let desk = SnapshotDesk::default();
        assert!(!desk.wanted());
        let (a, b) = (desk.order(), desk.order());
        assert!(desk.wanted());
        let mut made = 0;
        desk.serve(|| {
            made += 1;
            Picture::Raw(I420Frame::black(16, 16))
        });
        assert_eq!(made, 1, "one copy for all");
        assert!(!desk.wanted());
        for rx in [a, b] {
            assert!(matches!(rx.blocking_recv(), Ok(Picture::Raw(f)) if f.width == 16));
        }
        desk.serve(|| panic!("nobody waits: no copy"));
    }

    #[test]
    fn a_raw_picture_becomes_a_jpeg_of_the_asked_width() {
        let jpeg = make_jpeg(Picture::Raw(pattern(320, 240, 220)), Some(160), 80, 1 << 20).unwrap();
        let back = decode_jpeg(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (160, 120));
        assert!(back.y[60 * 160 + 20] > 200, "{}", back.y[60 * 160 + 20]);
    }

    #[test]
    fn an_oversized_jpeg_is_made_at_lower_quality_or_refused() {
        let mut noisy = I420Frame::black(320, 240);
        for (i, y) in noisy.y.iter_mut().enumerate() {
            *y = 16 + ((i * 7919 + i / 320 * 104_729) % 219) as u8;
        }
        let full = make_jpeg(Picture::Raw(noisy.clone()), None, 95, 1 << 20).unwrap();
        let capped = make_jpeg(Picture::Raw(noisy.clone()), None, 95, full.len() / 2).unwrap();
        assert!(capped.len() <= full.len() / 2);
        let err = make_jpeg(Picture::Raw(noisy), None, 95, 100).unwrap_err();
        assert!(err.contains("smaller ?width="), "{err}");
    }

    #[test]
    fn passed_through_h264_decodes_to_its_latest_picture() {
        let mut enc = Encoder::new(EncoderSettings {
            width: 64,
            height: 48,
            fps: 30,
            bitrate: 500_000,
            keyframe_interval: std::time::Duration::ZERO,
        })
        .unwrap();
        let mut gop = KeptGop::default();
        assert!(
            matches!(make_jpeg(gop.picture(), None, 80, 1 << 20), Err(e) if e.contains("no keyframe"))
        );
        // Dark frames, then the last one bright: the snapshot is the bright one.
        for shade in [40, 40, 40, 230] {
            let out = enc.encode(&pattern(64, 48, shade)).unwrap().unwrap();
            gop.push(&out.data, out.keyframe);
        }
        let jpeg = make_jpeg(gop.picture(), None, 90, 1 << 20).unwrap();
        let back = decode_jpeg(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (64, 48));
        assert!(back.y[24 * 64 + 8] > 180, "{}", back.y[24 * 64 + 8]);
        // Garbage decodes to nothing, with a reason, not a panic.
        let junk = Picture::H264(vec![Bytes::from_static(&[0, 0, 0, 1, 0x65, 1, 2, 3])]);
        assert!(make_jpeg(junk, None, 80, 1 << 20).is_err());
    }

    #[test]
    fn deltas_without_a_keyframe_are_not_kept_and_a_huge_gop_is_dropped() {
        let mut gop = KeptGop::default();
        gop.push(&Bytes::from_static(&[0, 0, 0, 1, 0x41]), false);
        assert!(matches!(gop.picture(), Picture::H264(u) if u.is_empty()));
        gop.push(&Bytes::from_static(&[0, 0, 0, 1, 0x65]), true);
        gop.push(&vec![0; GOP_LIMIT].into(), false);
        assert!(matches!(gop.picture(), Picture::H264(u) if u.is_empty()));
        gop.push(&Bytes::from_static(&[0, 0, 0, 1, 0x41]), false);
        assert!(
            matches!(gop.picture(), Picture::H264(u) if u.is_empty()),
            "until a keyframe"
        );
        gop.push(&Bytes::from_static(&[0, 0, 0, 1, 0x65]), true);
        assert!(matches!(gop.picture(), Picture::H264(u) if u.len() == 1));
    }
}
