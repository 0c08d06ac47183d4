use super::fixtures::*;
use super::*;

#[test]
fn constrained_baseline_passes_through() {
    let sps = parse_sps(&hex(X264_CONSTRAINED_BASELINE)).unwrap();
    assert_eq!((sps.profile_idc, sps.level_idc), (66, 21));
    assert_eq!(sps.profile_name(), "Constrained Baseline");
    assert_eq!((sps.width, sps.height), (320, 240));
    assert_eq!(sps.max_num_reorder_frames, Some(0));
    // The timing info (num_units_in_tick 1, time_scale 60) is mostly zero bits, so it is
    // where the `00 00 03` escapes sit: 30 fps only if they are undone.
    assert_eq!(sps.fps, Some(30.0));
    assert_eq!(sps.verdict(), Verdict::Passthrough);
    assert_eq!(sps.summary(), "Constrained Baseline 2.1, 320x240");
}

#[test]
fn main_without_reordering_passes_through() {
    let sps = parse_sps(&hex(X264_MAIN_NO_B)).unwrap();
    assert_eq!(sps.profile_name(), "Main");
    assert_eq!(sps.max_num_reorder_frames, Some(0));
    assert_eq!(sps.verdict(), Verdict::Passthrough);
}

#[test]
fn high_with_b_frames_is_re_encoded() {
    let sps = parse_sps(&hex(X264_HIGH_B_FRAMES)).unwrap();
    assert_eq!(sps.profile_name(), "High");
    assert_eq!(sps.level(), "2.0");
    assert_eq!((sps.width, sps.height), (320, 240));
    assert!(sps.max_num_reorder_frames.unwrap() >= 1, "{sps:?}");
    assert_eq!(sps.verdict(), Verdict::ReEncode("profile"));
}

#[test]
fn cropping_gives_the_real_picture_size() {
    let sps = parse_sps(&hex(X264_CB_642X362)).unwrap();
    assert_eq!((sps.width, sps.height), (642, 362));
}

#[test]
fn our_own_encoder_output_is_constrained_baseline_of_its_size() {
    use crate::h264::encoder::{Encoder, EncoderSettings};
    use crate::image::I420Frame;
    for (w, h) in [(320, 240), (642, 362), (1280, 720)] {
        let mut enc = Encoder::new(EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate: 500_000,
            keyframe_interval: std::time::Duration::from_secs(10),
        })
        .unwrap();
        let au = enc.encode(&I420Frame::black(w, h)).unwrap().unwrap();
        let nals = crate::h264::nal::split_annex_b(&au.data);
        let sps_nal = nals.iter().find(|n| n[0] & 0x1f == NAL_SPS).unwrap();
        let sps = parse_sps(sps_nal).unwrap();
        assert_eq!((sps.width, sps.height), (w, h));
        assert_eq!(sps.profile_name(), "Constrained Baseline");
        assert_eq!(sps.verdict(), Verdict::Passthrough);
    }
}

#[test]
fn main_decides_by_its_vui_or_else_by_its_slices() {
    let base = parse_sps(&hex(X264_MAIN_NO_B)).unwrap();
    let with = |reorder, frame_mbs_only| Sps {
        max_num_reorder_frames: reorder,
        frame_mbs_only,
        ..base.clone()
    };
    assert_eq!(with(Some(2), true).verdict(), Verdict::ReEncode("B-frames"));
    assert_eq!(
        with(None, true).verdict(),
        Verdict::PassthroughUnlessBFrames
    );
    assert_eq!(
        with(Some(0), false).verdict(),
        Verdict::ReEncode("interlaced")
    );
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_answer_never_a_panic() {
    for s in [
        X264_CONSTRAINED_BASELINE,
        X264_HIGH_B_FRAMES,
        X264_CB_642X362,
    ] {
        let full = hex(s);
        let whole = parse_sps(&full).unwrap();
        for cut in 0..full.len() {
            match parse_sps(&full[..cut]) {
                // Cut inside the VUI: the core fields are right, the rest is unknown.
                Ok(sps) => {
                    assert_eq!((sps.width, sps.height), (whole.width, whole.height));
                    assert_eq!(sps.profile_idc, whole.profile_idc);
                    assert!(
                        sps.max_num_reorder_frames.is_none()
                            || sps.max_num_reorder_frames == whole.max_num_reorder_frames,
                        "cut {cut}: {sps:?}"
                    );
                }
                Err(e) => assert!(
                    matches!(e, SpsError::Truncated | SpsError::NotAnSps),
                    "cut {cut}: {e}"
                ),
            }
        }
    }
}

#[test]
fn malformed_sps_are_errors() {
    assert_eq!(parse_sps(&[]), Err(SpsError::NotAnSps));
    assert_eq!(parse_sps(&hex("68ce3c80")), Err(SpsError::NotAnSps)); // a PPS
    assert_eq!(parse_sps(&[0x67]), Err(SpsError::Truncated));
    assert_eq!(parse_sps(&[0x67, 0x42, 0xc0]), Err(SpsError::Truncated));
    // seq_parameter_set_id 32 (ue 000001 00001): out of range.
    assert_eq!(
        parse_sps(&[0x67, 0x42, 0xc0, 0x1e, 0b0000_0100, 0b0010_0000]),
        Err(SpsError::Invalid("seq_parameter_set_id"))
    );
    // An endless run of zero bits where a ue(v) should be (escaped, as in a real NAL unit).
    assert_eq!(
        parse_sps(&[0x67, 0x42, 0xc0, 0x1e, 0, 0, 3, 0, 0, 3, 0, 0, 3, 1]),
        Err(SpsError::Truncated)
    );
    // Unescaped, three zero bytes cannot be inside a NAL unit at all.
    assert_eq!(
        parse_sps(&[0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 0, 0, 0xff]),
        Err(SpsError::Invalid("escaping"))
    );
    // Pseudo-random garbage after an SPS header byte: any answer but a panic, and a
    // plausible size when it is accepted.
    let mut x = 0x1234_5678u32;
    for _ in 0..5000 {
        let mut nal = vec![0x67];
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            nal.push(x as u8);
        }
        x = x.wrapping_add(1);
        if let Ok(sps) = parse_sps(&nal) {
            assert!(sps.width > 0 && sps.width <= 16_384 && sps.height <= 16_384);
        }
    }
}

#[test]
fn reads_slice_types_from_real_headers() {
    // x264 High with B-frames: an IDR, a P, a reference B (pyramid) and a plain B slice.
    assert_eq!(slice_type(&hex("658884001aff")), Some(SliceType::I));
    assert_eq!(slice_type(&hex("419a2318835f")), Some(SliceType::P));
    assert_eq!(slice_type(&hex("419e41420d7f")), Some(SliceType::B));
    assert_eq!(slice_type(&hex("019e62441aff")), Some(SliceType::B));
    // Not slices, or too short to say.
    assert_eq!(slice_type(&hex("67640014")), None);
    assert_eq!(slice_type(&[0x41]), None);
    assert_eq!(slice_type(&[]), None);
    // slice_type 10 does not exist.
    assert_eq!(slice_type(&[0x41, 0b1000_1011]), None);
}
