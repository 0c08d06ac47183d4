use openh264::decoder::Decoder;

use super::*;
use crate::barcode;
use crate::image::I420Frame;
use crate::source::TestPattern;

fn settings(width: u32, height: u32, bitrate: u32) -> EncoderSettings {
    EncoderSettings {
        width,
        height,
        fps: 30,
        bitrate,
        keyframe_interval: Duration::from_secs(10),
    }
}

fn profile_of(au: &[u8]) -> crate::h264::profile::Sps {
    let sps = nal::split_annex_b(au)
        .into_iter()
        .find(|n| nal::nal_type(n) == Some(NAL_SPS))
        .expect("an IDR access unit carries an SPS");
    crate::h264::profile::parse_sps(sps).unwrap()
}

#[test]
fn sps_is_constrained_baseline_level_3_1() {
    for (w, h, br) in [
        (1280, 720, 2_000_000),
        (640, 360, 600_000),
        (320, 240, 300_000),
    ] {
        let mut enc = Encoder::new(settings(w, h, br)).unwrap();
        let tp = TestPattern::new(w, h, 30, 1).unwrap();
        let first = enc.encode(&tp.render(0, 0)).unwrap().unwrap();
        assert!(first.keyframe);
        let pl = profile_of(&first.data);
        assert_eq!(pl.profile_idc, 66, "{w}x{h}: profile_idc");
        assert!(
            pl.constraints & 0x40 != 0,
            "{w}x{h}: constraint_set1 ({:#04x})",
            pl.constraints
        );
        assert_eq!(pl.level_idc, 31, "{w}x{h}: level_idc");
        // The whole access unit: SPS, PPS, then the IDR slice.
        let types: Vec<u8> = nal::split_annex_b(&first.data)
            .iter()
            .filter_map(|n| nal::nal_type(n))
            .collect();
        assert_eq!(&types[..2], &[NAL_SPS, NAL_PPS], "{types:?}");
        assert!(types.contains(&NAL_IDR));
    }
}

/// Encode `n` test-pattern frames, decode them, and check every decoded frame's barcode.
fn barcode_survives(w: u32, h: u32, bitrate: u32, n: u32) {
    let mut enc = Encoder::new(settings(w, h, bitrate)).unwrap();
    let mut dec = Decoder::new().unwrap();
    let tp = TestPattern::new(w, h, 30, barcode::tag_for("cam")).unwrap();
    let mut bytes = 0usize;
    for i in 0..n {
        let au = enc
            .encode(&tp.render(i, 1_000 + i as u64))
            .unwrap()
            .expect("no skipped frames");
        bytes += au.data.len();
        let yuv = dec
            .decode(&au.data)
            .unwrap()
            .expect("one picture per access unit");
        let (dw, dh) = yuv.dimensions();
        assert_eq!((dw, dh), (w as usize, h as usize));
        let stamp = barcode::read(yuv.y(), yuv.strides().0, dw, dh)
            .unwrap_or_else(|| panic!("{w}x{h}@{bitrate}: frame {i}: barcode unreadable"));
        assert_eq!(stamp.frame, i);
        assert_eq!(stamp.capture_us, 1_000 + i as u64);
        assert_eq!(stamp.tag, barcode::tag_for("cam"));
    }
    // Rate control roughly holds (first IDR included, so allow generous slack).
    let kbps = bytes as f64 * 8.0 / (n as f64 / 30.0) / 1000.0;
    assert!(
        kbps < bitrate as f64 / 1000.0 * 2.0,
        "{w}x{h}: {kbps:.0} kbit/s"
    );
}

#[test]
fn barcode_survives_640x360_at_600k() {
    barcode_survives(640, 360, 600_000, 90);
}

#[test]
fn barcode_survives_1280x720_at_2m() {
    barcode_survives(1280, 720, 2_000_000, 60);
}

#[test]
fn barcode_survives_320x240_at_300k() {
    barcode_survives(320, 240, 300_000, 60);
}

#[test]
fn keyframe_on_request_and_periodically() {
    let mut s = settings(320, 240, 300_000);
    s.fps = 10;
    s.keyframe_interval = Duration::from_secs(1);
    let mut enc = Encoder::new(s).unwrap();
    let tp = TestPattern::new(320, 240, 10, 1).unwrap();
    let handle = enc.keyframe_request();
    let mut keys = Vec::new();
    for i in 0..25u32 {
        if i == 4 {
            handle.request();
        }
        let f = enc.encode(&tp.render(i, 0)).unwrap().unwrap();
        if f.keyframe {
            keys.push(i);
            assert_eq!(profile_of(&f.data).profile_idc, 66);
        }
    }
    // 0 (first), 4 (requested), then every 10 frames after the last IDR.
    assert_eq!(keys, vec![0, 4, 14, 24]);
}

#[test]
fn starved_bitrate_still_sends_every_frame() {
    let mut enc = Encoder::new(settings(640, 360, 50_000)).unwrap();
    let tp = TestPattern::new(640, 360, 30, 1).unwrap();
    for i in 0..60 {
        assert!(
            enc.encode(&tp.render(i, 0)).unwrap().is_some(),
            "frame {i} skipped"
        );
    }
}

#[test]
fn bad_settings_and_frames_are_errors() {
    assert!(Encoder::new(settings(641, 360, 600_000)).is_err());
    assert!(Encoder::new(settings(4096, 2304, 600_000)).is_err());
    assert!(Encoder::new(settings(640, 360, 0)).is_err());
    let mut enc = Encoder::new(settings(640, 360, 600_000)).unwrap();
    assert!(enc.encode(&I420Frame::black(320, 240)).is_err());
    let mut short = I420Frame::black(640, 360);
    short.y.truncate(100);
    assert!(enc.encode(&short).is_err());
}

#[test]
fn level_above_720p30_is_raised_by_openh264() {
    // Level 3.1 stops at 720p30 (108 000 macroblocks/s). openh264 raises the level for
    // larger frames rather than produce a non-conforming stream; the profile stays
    // Constrained Baseline, and the SDP's level-asymmetry-allowed=1 covers the difference.
    let mut enc = Encoder::new(settings(1920, 1080, 4_000_000)).unwrap();
    let tp = TestPattern::new(1920, 1080, 30, 1).unwrap();
    let first = enc.encode(&tp.render(0, 0)).unwrap().unwrap();
    let pl = profile_of(&first.data);
    assert_eq!(pl.profile_idc, 66);
    assert!(pl.constraints & 0x40 != 0);
    assert!(pl.level_idc >= 40, "level_idc {}", pl.level_idc);
}

/// One still picture of noise with fresh grain on every frame: content no encoder can
/// squeeze, so the bytes it spends follow the bitrate it is given (the test pattern
/// compresses far below any sane bitrate), yet frames are alike enough that openh264 sees
/// no scene change (which would make it send an IDR).
fn noise(w: u32, h: u32, seed: u32) -> I420Frame {
    let mut f = I420Frame::black(w, h);
    let mut still = 0x9e37_79b9_u32;
    let mut grain = seed.wrapping_mul(2_654_435_761) | 1;
    let next = |x: &mut u32| {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        *x >> 24
    };
    for p in f.y.iter_mut().chain(f.u.iter_mut()).chain(f.v.iter_mut()) {
        *p = (64 + next(&mut still) / 2 + next(&mut grain) / 16) as u8;
    }
    f
}

/// Bytes of the `n` frames after `from`, with whether any was a keyframe.
fn encode_range(enc: &mut Encoder, from: u32, n: u32) -> (usize, bool) {
    let (w, h) = (enc.settings().width, enc.settings().height);
    let mut bytes = 0;
    let mut any_key = false;
    for i in from..from + n {
        let out = enc.encode(&noise(w, h, i)).unwrap().unwrap();
        bytes += out.data.len();
        any_key |= out.keyframe;
    }
    (bytes, any_key)
}

#[test]
fn bitrate_and_frame_rate_change_live_without_a_keyframe() {
    let mut enc = Encoder::new(settings(320, 240, 1_000_000)).unwrap();
    let _ = encode_range(&mut enc, 0, 30); // past the first IDR, rate control settled
    let (high, _) = encode_range(&mut enc, 30, 30);
    enc.set_rates(250_000, 30).unwrap();
    let _ = encode_range(&mut enc, 60, 30);
    let (low, key) = encode_range(&mut enc, 90, 30);
    assert!(!key, "a bitrate change needs no keyframe");
    // 30 frames at 30 fps are one second: bytes × 8 is the bitrate.
    let within = |bytes: usize, target: f64| ((bytes * 8) as f64 / target - 1.0).abs() < 0.25;
    assert!(within(high, 1e6), "1 Mbit/s gave {} bit/s", high * 8);
    assert!(within(low, 250e3), "250 kbit/s gave {} bit/s", low * 8);
    // Per frame, the budget is bitrate / fps: telling the encoder frames come 3x less often
    // gives each frame more bytes at the same bitrate.
    enc.set_rates(250_000, 10).unwrap();
    let _ = encode_range(&mut enc, 120, 20);
    let (slow, key) = encode_range(&mut enc, 140, 20);
    assert!(!key);
    let (per_fast, per_slow) = (low / 30, slow / 20);
    assert!(
        per_slow * 2 > per_fast * 3,
        "10 fps frames should be larger than 30 fps ones: {per_slow} vs {per_fast} bytes"
    );
    assert_eq!((enc.settings().bitrate, enc.settings().fps), (250_000, 10));
    // And back up.
    enc.set_rates(1_000_000, 30).unwrap();
    let _ = encode_range(&mut enc, 160, 30);
    let (again, key) = encode_range(&mut enc, 190, 30);
    assert!(!key);
    assert!(again > low * 2, "raised again: {again} vs {low}");
}

#[test]
fn live_rates_outside_the_limits_are_refused() {
    let mut enc = Encoder::new(settings(320, 240, 500_000)).unwrap();
    assert!(enc.set_rates(500_000, 0).is_err());
    assert!(enc.set_rates(500_000, 241).is_err());
    assert!(enc.set_rates(5_000, 30).is_err());
    assert_eq!(enc.settings().bitrate, 500_000, "a refusal changes nothing");
}
