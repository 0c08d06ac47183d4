use std::time::Instant;

use super::*;

fn settings(width: u32, height: u32, bitrate: u32) -> Vp8Settings {
    Vp8Settings {
        width,
        height,
        fps: 30,
        bitrate,
    }
}

/// A frame of a moving scene: a panning gradient with fine texture (motion the encoder must
/// track) and a checkered box moving at its own speed.
fn pattern(width: u32, height: u32, t: u32) -> I420Frame {
    let mut f = I420Frame::black(width, height);
    let (w, h) = (width as usize, height as usize);
    let t = t as usize;
    let (bw, bh) = (w / 5, h / 5);
    let bx = (6 * t) % (w - bw);
    let by = h / 3 + (2 * t) % (h / 3);
    for y in 0..h {
        for x in 0..w {
            let sx = x + 4 * t;
            let ramp = ((sx + y) % 512) as i32;
            let ramp = if ramp > 255 { 511 - ramp } else { ramp };
            let tex = (hash(sx / 2, y / 2) & 31) as i32 - 16;
            let mut l = 16 + ramp * 219 / 255 + tex / 2;
            if (bx..bx + bw).contains(&x) && (by..by + bh).contains(&y) {
                l = if ((x - bx) / 8 + (y - by) / 8).is_multiple_of(2) {
                    40
                } else {
                    210
                };
            }
            f.y[y * w + x] = l.clamp(16, 235) as u8;
        }
    }
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            f.u[y * (w / 2) + x] = (96 + ((x + 2 * t) % 64)) as u8;
            f.v[y * (w / 2) + x] = (96 + (y % 64)) as u8;
        }
    }
    f
}

fn hash(x: usize, y: usize) -> u32 {
    ((x as u32).wrapping_mul(73_856_093) ^ (y as u32).wrapping_mul(19_349_663))
        .wrapping_mul(0x9E37_79B1)
        >> 24
}

/// xorshift64: reproducible garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// 1..=max random bytes.
    fn some_bytes(&mut self, max: u64) -> Vec<u8> {
        let n = 1 + (self.next() % max) as usize;
        self.bytes(n)
    }
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// What the VP8 bitstream itself says (RFC 6386 section 9.1): keyframe or not, and a
/// keyframe's size.
fn header(frame: &[u8]) -> (bool, Option<(u32, u32)>) {
    let key = frame[0] & 1 == 0;
    if !key {
        return (false, None);
    }
    assert_eq!(&frame[3..6], &[0x9d, 0x01, 0x2a], "keyframe start code");
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (true, Some((w, h)))
}

fn encode_frames(enc: &mut Vp8Encoder, from: u32, n: u32) -> Vec<EncodedFrame> {
    let s = enc.settings().clone();
    (from..from + n)
        .map(|t| {
            enc.encode(&pattern(s.width, s.height, t))
                .unwrap()
                .expect("libvpx drops no frames")
        })
        .collect()
}

/// Encode 30 moving frames, check the keyframe pattern against the bitstream, decode them
/// all and compare the luma with the input.
fn round_trip(width: u32, height: u32, bitrate: u32, max_mad: f64) {
    let mut enc = Vp8Encoder::new(settings(width, height, bitrate)).unwrap();
    let frames = encode_frames(&mut enc, 0, 30);
    assert!(frames[0].keyframe, "the first frame is a keyframe");
    let later_keys = frames[1..].iter().filter(|f| f.keyframe).count();
    assert!(later_keys <= 1, "{later_keys} keyframes after the first");
    for f in &frames {
        let (key, size) = header(&f.data);
        assert_eq!(key, f.keyframe, "flag matches the bitstream");
        if let Some(size) = size {
            assert_eq!(size, (width, height));
        }
    }

    let mut dec = Vp8Decoder::new().unwrap();
    let mut worst: f64 = 0.0;
    for (t, f) in frames.iter().enumerate() {
        let pic = dec
            .decode(&f.data)
            .unwrap()
            .expect("every frame shows a picture");
        assert_eq!((pic.width, pic.height), (width, height));
        assert_eq!(pic.y.len(), (width * height) as usize);
        assert_eq!(pic.u.len(), (width / 2 * (height / 2)) as usize);
        assert_eq!(pic.v.len(), pic.u.len());
        let input = pattern(width, height, t as u32);
        worst = worst.max(mean_abs_diff(&pic.y, &input.y));
        // Chroma too, loosely: the planes are not swapped or garbage.
        assert!(mean_abs_diff(&pic.u, &input.u) < 2.0 * max_mad);
        assert!(mean_abs_diff(&pic.v, &input.v) < 2.0 * max_mad);
    }
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "vp8 {width}x{height} @ {bitrate} bit/s: {bytes} bytes for 30 frames \
         (keyframe {}), worst luma MAD {worst:.2}",
        frames[0].data.len()
    );
    assert!(worst < max_mad, "worst luma MAD {worst:.2} ≥ {max_mad}");
}

#[test]
fn round_trip_320x240() {
    round_trip(320, 240, 500_000, 6.0);
}

#[test]
fn round_trip_1280x720() {
    round_trip(1280, 720, 2_500_000, 6.0);
}

#[test]
fn force_keyframe_makes_the_next_frame_a_keyframe() {
    let mut enc = Vp8Encoder::new(settings(320, 240, 500_000)).unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    for f in encode_frames(&mut enc, 0, 10) {
        dec.decode(&f.data).unwrap().unwrap();
    }
    enc.force_keyframe();
    let forced = encode_frames(&mut enc, 10, 3);
    assert!(
        forced[0].keyframe,
        "the frame after the request is a keyframe"
    );
    assert!(header(&forced[0].data).0);
    assert!(!forced[1].keyframe && !forced[2].keyframe, "only one");
    // A fresh decoder (a new viewer) starts at the forced keyframe.
    let mut fresh = Vp8Decoder::new().unwrap();
    for f in &forced {
        let pic = fresh.decode(&f.data).unwrap().unwrap();
        assert_eq!((pic.width, pic.height), (320, 240));
    }
}

#[test]
fn refuses_odd_zero_and_oversized_settings() {
    for (w, h) in [
        (0, 240),
        (320, 0),
        (0, 0),
        (321, 240),
        (320, 241),
        (1, 1),
        (16384, 16),
    ] {
        let err = Vp8Encoder::new(settings(w, h, 500_000))
            .err()
            .unwrap_or_else(|| panic!("{w}x{h} accepted"));
        assert!(err.to_string().contains(&format!("{w}x{h}")), "{err}");
    }
    assert!(Vp8Encoder::new(Vp8Settings {
        fps: 0,
        ..settings(320, 240, 500_000)
    })
    .is_err());
    assert!(Vp8Encoder::new(settings(320, 240, 0)).is_err());
    assert!(Vp8Encoder::new(settings(320, 240, 200_000_000)).is_err());
    // Small but even is fine.
    let mut tiny = Vp8Encoder::new(settings(2, 2, 100_000)).unwrap();
    let f = tiny.encode(&I420Frame::black(2, 2)).unwrap().unwrap();
    let pic = Vp8Decoder::new().unwrap().decode(&f.data).unwrap().unwrap();
    assert_eq!((pic.width, pic.height), (2, 2));
}

#[test]
fn refuses_frames_that_do_not_fit() {
    let mut enc = Vp8Encoder::new(settings(320, 240, 500_000)).unwrap();
    let err = enc.encode(&I420Frame::black(640, 480)).unwrap_err();
    assert!(err.to_string().contains("640x480"), "{err}");
    let mut short = I420Frame::black(320, 240);
    short.v.truncate(10);
    assert!(enc.encode(&short).is_err());
    // The encoder is still usable, and still starts with a keyframe.
    let f = enc.encode(&pattern(320, 240, 0)).unwrap().unwrap();
    assert!(f.keyframe);
}

#[test]
fn decoder_refuses_garbage_and_truncated_frames() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // A fresh decoder: nothing but a complete keyframe starts a stream.
    let mut dec = Vp8Decoder::new().unwrap();
    assert!(dec.decode(&[]).is_err());
    for len in [1, 2, 3, 9, 10, 11, 100, 1000, 5000, 100_000] {
        for _ in 0..20 {
            let junk = rng.bytes(len);
            assert!(dec.decode(&junk).is_err(), "{len} random bytes decoded");
        }
    }

    let mut enc = Vp8Encoder::new(settings(320, 240, 500_000)).unwrap();
    let frames = encode_frames(&mut enc, 0, 10);
    let key = &frames[0].data;
    for cut in [1, 3, 10, key.len() / 4, key.len() / 2, key.len() * 3 / 4] {
        let mut fresh = Vp8Decoder::new().unwrap();
        assert!(
            fresh.decode(&key[..cut]).is_err(),
            "keyframe cut to {cut} of {} bytes decoded",
            key.len()
        );
    }

    // Mid-stream: a truncated inter frame is an error too.
    let mut dec = Vp8Decoder::new().unwrap();
    for f in &frames[..5] {
        dec.decode(&f.data).unwrap().unwrap();
    }
    let inter = &frames[5].data;
    assert!(!frames[5].keyframe);
    assert!(dec.decode(&inter[..inter.len() / 2]).is_err());

    // Whatever garbage comes mid-stream (random bytes, real frames with flipped bytes, a
    // valid keyframe header over random data), the decoder reports or shrugs, never
    // crashes...
    for i in 0..300 {
        let data = match i % 3 {
            0 => rng.some_bytes(4000),
            1 => {
                let mut d = frames[(rng.next() % 10) as usize].data.to_vec();
                for _ in 0..1 + rng.next() % 8 {
                    let at = (rng.next() as usize) % d.len();
                    d[at] ^= 1 << (rng.next() % 8);
                }
                d
            }
            _ => {
                let mut d = rng.bytes(10);
                d.extend(rng.some_bytes(3000));
                d[0] &= !1; // keyframe
                d[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                let (w, h) = (1 + rng.next() % 200, 1 + rng.next() % 200);
                d[6..8].copy_from_slice(&(w as u16).to_le_bytes());
                d[8..10].copy_from_slice(&(h as u16).to_le_bytes());
                d
            }
        };
        let _ = dec.decode(&data);
    }
    // ...and a keyframe brings it back.
    enc.force_keyframe();
    let next = encode_frames(&mut enc, 10, 3);
    assert!(next[0].keyframe);
    for (t, f) in next.iter().enumerate() {
        let pic = dec.decode(&f.data).unwrap().unwrap();
        let input = pattern(320, 240, 10 + t as u32);
        assert!(mean_abs_diff(&pic.y, &input.y) < 6.0);
    }
}

#[test]
fn set_bitrate_changes_frame_sizes() {
    let mut enc = Vp8Encoder::new(settings(640, 360, 2_000_000)).unwrap();
    let high = encode_frames(&mut enc, 0, 40);
    assert!(enc.set_bitrate(5_000).is_err());
    assert!(enc.set_bitrate(500_000_000).is_err());
    assert_eq!(
        enc.settings().bitrate,
        2_000_000,
        "a refused change changes nothing"
    );
    enc.set_bitrate(150_000).unwrap();
    assert_eq!(enc.settings().bitrate, 150_000);
    let low = encode_frames(&mut enc, 40, 60);
    assert!(
        low.iter().all(|f| !f.keyframe),
        "no keyframe for a rate change"
    );
    let avg = |fs: &[EncodedFrame]| fs.iter().map(|f| f.data.len()).sum::<usize>() / fs.len();
    let (before, after) = (avg(&high[20..]), avg(&low[30..]));
    eprintln!("vp8 640x360: {before} bytes/frame at 2 Mbit/s, {after} at 150 kbit/s");
    assert!(
        after * 3 < before,
        "{before} bytes/frame before, {after} after"
    );
    // About 150 kbit/s at 30 fps is 625 bytes per frame; allow the rate control slack.
    assert!(after < 1500, "{after} bytes/frame at 150 kbit/s");
    // And it still decodes from the start.
    let mut dec = Vp8Decoder::new().unwrap();
    for f in high.iter().chain(&low) {
        dec.decode(&f.data).unwrap().unwrap();
    }
}

#[test]
fn encoder_and_decoder_are_send() {
    fn send<T: Send>() {}
    send::<Vp8Encoder>();
    send::<Vp8Decoder>();
}

/// Not a benchmark, a sanity number: prints the 720p encode time per frame (run with
/// `--nocapture`; meaningful in release builds).
#[test]
fn encode_time_720p() {
    let frames: Vec<I420Frame> = (0..60).map(|t| pattern(1280, 720, t)).collect();
    let mut enc = Vp8Encoder::new(settings(1280, 720, 2_500_000)).unwrap();
    let start = Instant::now();
    for f in &frames {
        enc.encode(f).unwrap().unwrap();
    }
    let per_frame = start.elapsed() / frames.len() as u32;
    eprintln!(
        "vp8 1280x720: {per_frame:?} per frame over {} frames",
        frames.len()
    );
}
