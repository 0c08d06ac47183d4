//! Can an H.264 stream go to browsers as it is? Decided from its sequence parameter set:
//! the profile (Baseline and Constrained Baseline always; Main only without B-frames; High
//! and the rest are re-encoded) and, for Main, the VUI's `max_num_reorder_frames` (0 means no
//! B-frames). When the SPS does not say, the slices do: [`slice_type`] reads a slice header.
//!
//! Syntax per ITU-T H.264 §7.3.2.1.1 (SPS), Annex E.1.1 (VUI), §7.3.3 (slice header).

use std::fmt;

use crate::h264::nal::{NAL_IDR, NAL_SPS};
use crate::h264::rbsp::{unescape, BitReader, Truncated};

/// What the SPS says that matters for passthrough.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags, most significant bit first (the second byte of an SDP
    /// `profile-level-id`).
    pub constraints: u8,
    pub level_idc: u8,
    /// Picture size after cropping.
    pub width: u32,
    pub height: u32,
    /// False for interlaced (field or MBAFF) coding.
    pub frame_mbs_only: bool,
    /// From the VUI bitstream restriction; `None` when the SPS does not say.
    pub max_num_reorder_frames: Option<u32>,
    /// Frame rate from the VUI timing info, if given.
    pub fps: Option<f64>,
}

/// Why an SPS could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpsError {
    NotAnSps,
    Truncated,
    Invalid(&'static str),
}

impl fmt::Display for SpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpsError::NotAnSps => write!(f, "not an SPS NAL unit"),
            SpsError::Truncated => write!(f, "SPS is truncated"),
            SpsError::Invalid(what) => write!(f, "SPS has an invalid {what}"),
        }
    }
}

impl std::error::Error for SpsError {}

impl From<Truncated> for SpsError {
    fn from(_: Truncated) -> Self {
        SpsError::Truncated
    }
}

/// Profiles whose SPS carries chroma format, bit depth and scaling lists (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parse an SPS NAL unit (header byte included, no start code).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, SpsError> {
    if nal.first().map(|b| b & 0x1f) != Some(NAL_SPS) {
        return Err(SpsError::NotAnSps);
    }
    let rbsp = unescape(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    if r.ue()? > 31 {
        return Err(SpsError::Invalid("seq_parameter_set_id"));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(SpsError::Invalid("chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let _bit_depth_luma_minus8 = r.ue()?;
        let _bit_depth_chroma_minus8 = r.ue()?;
        let _qpprime_y_zero_transform_bypass = r.bit()?;
        if r.bit()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_pic_order_cnt_lsb_minus4 = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.bit()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(SpsError::Invalid("num_ref_frames_in_pic_order_cnt_cycle"));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(SpsError::Invalid("pic_order_cnt_type")),
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.bit()?;
    let width_mbs = r.ue()? as u64 + 1;
    let height_map_units = r.ue()? as u64 + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.bit()?;
    }
    let _direct_8x8_inference = r.bit()?;
    let crop = if r.bit()? {
        [r.ue()?, r.ue()?, r.ue()?, r.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    // Crop units (§7.4.2.1.1): chroma subsampling, doubled vertically for field coding.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let full_w = width_mbs * 16;
    let full_h = height_map_units * 16 * field_factor;
    let crop_w = sub_w * (crop[0] + crop[1]);
    let crop_h = sub_h * field_factor * (crop[2] + crop[3]);
    if crop_w >= full_w || crop_h >= full_h || full_w > 16_384 || full_h > 16_384 {
        return Err(SpsError::Invalid("picture size or cropping"));
    }
    let mut sps = Sps {
        profile_idc,
        constraints,
        level_idc,
        width: (full_w - crop_w) as u32,
        height: (full_h - crop_h) as u32,
        frame_mbs_only,
        max_num_reorder_frames: None,
        fps: None,
    };
    if r.bit()? {
        // The VUI is optional information; cameras are known to cut it short. What was
        // read before the end still counts, the rest stays unknown.
        let _ = read_vui(&mut r, &mut sps);
    }
    Ok(sps)
}

/// Skip one scaling list (§7.3.2.1.1.1): only its length matters here.
fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), SpsError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::Invalid("scaling list"));
            }
            next = (last + delta + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Ok(())
}

/// VUI parameters (Annex E.1.1), far enough to reach the bitstream restriction.
fn read_vui(r: &mut BitReader, sps: &mut Sps) -> Result<(), Truncated> {
    if r.bit()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.bits(32)?; // sar_width, sar_height
        }
    }
    if r.bit()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.bit()? {
        // video_signal_type_present_flag
        r.bits(4)?; // video_format, video_full_range_flag
        if r.bit()? {
            r.bits(24)?; // colour primaries, transfer, matrix
        }
    }
    if r.bit()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // ..._bottom_field
    }
    if r.bit()? {
        let num_units_in_tick = r.bits(32)?;
        let time_scale = r.bits(32)?;
        r.bit()?; // fixed_frame_rate_flag
        if num_units_in_tick > 0 && time_scale > 0 {
            // Two ticks per frame for frame-coded video (field pairs).
            sps.fps = Some(time_scale as f64 / (2.0 * num_units_in_tick as f64));
        }
    }
    let nal_hrd = r.bit()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.bit()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    if r.bit()? {
        // bitstream_restriction_flag
        r.bit()?; // motion_vectors_over_pic_boundaries_flag
        for _ in 0..4 {
            r.ue()?; // max_bytes_per_pic_denom .. log2_max_mv_length_vertical
        }
        let reorder = r.ue()?;
        let _max_dec_frame_buffering = r.ue()?;
        sps.max_num_reorder_frames = Some(reorder);
    }
    Ok(())
}

/// HRD parameters (Annex E.1.2): skipped.
fn skip_hrd(r: &mut BitReader) -> Result<(), Truncated> {
    let cpb_cnt = r.ue()? + 1;
    if cpb_cnt > 32 {
        return Err(Truncated);
    }
    r.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?;
        r.ue()?;
        r.bit()?;
    }
    r.bits(20)?; // four 5-bit delay/offset lengths
    Ok(())
}

impl Sps {
    /// The profile's name as people say it ("Constrained Baseline", "High"...).
    pub fn profile_name(&self) -> &'static str {
        let set1 = self.constraints & 0x40 != 0;
        let set3 = self.constraints & 0x10 != 0;
        match self.profile_idc {
            66 if set1 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 if set3 => "High 10 Intra",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4",
            44 => "CAVLC 4:4:4 Intra",
            _ => "other",
        }
    }

    /// The level as written ("3.1"; level 1b is 1.1 with constraint_set3 in Baseline/Main).
    pub fn level(&self) -> String {
        if self.level_idc == 11 && self.constraints & 0x10 != 0 && self.profile_idc != 100 {
            return "1b".into();
        }
        format!("{}.{}", self.level_idc / 10, self.level_idc % 10)
    }

    /// Whether browsers can take this stream as it is.
    pub fn verdict(&self) -> Verdict {
        if !self.frame_mbs_only {
            return Verdict::ReEncode("interlaced");
        }
        match (self.profile_idc, self.max_num_reorder_frames) {
            (66, _) => Verdict::Passthrough,
            (77, Some(0)) => Verdict::Passthrough,
            (77, Some(_)) => Verdict::ReEncode("B-frames"),
            (77, None) => Verdict::PassthroughUnlessBFrames,
            _ => Verdict::ReEncode("profile"),
        }
    }

    /// "Constrained Baseline 3.1, 640x480".
    pub fn summary(&self) -> String {
        format!(
            "{} {}, {}x{}",
            self.profile_name(),
            self.level(),
            self.width,
            self.height
        )
    }
}

/// What to do with a stream, from its SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Baseline, Constrained Baseline, or Main that declares no frame reordering.
    Passthrough,
    /// Main without a bitstream restriction: safe until a B slice shows up.
    PassthroughUnlessBFrames,
    /// Not browser-safe, with the reason ("profile", "B-frames", "interlaced").
    ReEncode(&'static str),
}

/// Slice types (§7.4.3, `slice_type % 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    P,
    B,
    I,
    Sp,
    Si,
}

/// The type of a coded slice NAL unit (types 1 and 5), from its header's first two fields.
/// `None` for other NAL units and unreadable headers.
pub fn slice_type(nal: &[u8]) -> Option<SliceType> {
    let nal_type = nal.first()? & 0x1f;
    if nal_type != 1 && nal_type != NAL_IDR {
        return None;
    }
    // The two fields fit in a few bytes; unescape only those.
    let head = unescape(&nal[1..nal.len().min(12)]);
    let mut r = BitReader::new(&head);
    let _first_mb_in_slice = r.ue().ok()?;
    let raw = r.ue().ok()?;
    if raw > 9 {
        return None;
    }
    Some(match raw % 5 {
        0 => SliceType::P,
        1 => SliceType::B,
        2 => SliceType::I,
        3 => SliceType::Sp,
        _ => SliceType::Si,
    })
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
