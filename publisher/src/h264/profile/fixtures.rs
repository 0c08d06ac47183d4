//! Real H.264 parameter sets for tests.

/// Real SPS NAL units (header byte included) from x264 through GStreamer (`x264enc ! video/
/// x-h264,profile=...`, 320x240 at 30 fps unless said). Each has emulation-prevention bytes
/// (`00 00 03`) inside its VUI, so reading them right needs the unescaping.
pub const X264_CONSTRAINED_BASELINE: &str =
    "6742c015da0507ec05a830303528000003000800000301e478b175";
pub const X264_MAIN_NO_B: &str = "674d4015da0507ec05a830303528000003000800000301e478b175";
/// `profile=high bframes=2`.
pub const X264_HIGH_B_FRAMES: &str = "67640014acd94141fb016a0c0c0d4a000003000200000300791e28532c";
/// 642x362: not a multiple of 16, so the SPS crops.
pub const X264_CB_642X362: &str = "6742c01eda0290bf8893016a0c0c0d4a000003000200000300791e2c5d40";

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
