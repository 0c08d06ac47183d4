//! Can an H.264 stream go to browsers as it is? Decided from its sequence parameter set:
//! the profile (Baseline and Constrained Baseline always; Main only without B-frames; High
//! and the rest are re-encoded) and, for Main, the VUI's `max_num_reorder_frames` (0 means no
//! B-frames). When the SPS does not say, the slices do: [`slice_type`] reads a slice header.
//!
//! The SPS and its VUI are read by `h264-reader` (ITU-T H.264 §7.3.2.1.1, Annex E.1.1); the
//! two fields of a slice header (§7.3.3) we need, with its bit reader.

use std::fmt;

use h264_reader::nal::sps::{
    FrameMbsFlags, PicOrderCntError, ScalingMatrixError, SeqParameterSet,
    SpsError as ReaderSpsError,
};
use h264_reader::rbsp::{decode_nal, BitRead, BitReader, BitReaderError, Numeric, Primitive};

use crate::h264::nal::{NAL_IDR, NAL_SPS};

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

/// The largest picture side we take a camera at its word for.
const MAX_SIDE: u32 = 16_384;

/// Parse an SPS NAL unit (header byte included, no start code) with `h264-reader`.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, SpsError> {
    if nal.first().map(|b| b & 0x1f) != Some(NAL_SPS) {
        return Err(SpsError::NotAnSps);
    }
    let rbsp = decode_nal(nal).map_err(|_| SpsError::Invalid("escaping"))?;
    let parsed = match SeqParameterSet::from_bits(BitReader::new(&rbsp[..])) {
        Ok(parsed) => parsed,
        // The VUI is optional information, and cameras are known to cut it short: when the
        // SPS reads without it, its core fields count and the rest stays unknown.
        Err(whole) => SeqParameterSet::from_bits(WithoutVui(BitReader::new(&rbsp[..])))
            .map_err(|_| sps_error(whole))?,
    };
    let (width, height) = parsed
        .pixel_dimensions()
        .map_err(|_| SpsError::Invalid("picture size or cropping"))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(SpsError::Invalid("picture size or cropping"));
    }
    let vui = parsed.vui_parameters.as_ref();
    Ok(Sps {
        profile_idc: parsed.profile_idc.into(),
        constraints: parsed.constraint_flags.into(),
        level_idc: parsed.level_idc,
        width,
        height,
        frame_mbs_only: matches!(parsed.frame_mbs_flags, FrameMbsFlags::Frames),
        max_num_reorder_frames: vui
            .and_then(|v| v.bitstream_restrictions.as_ref())
            .map(|b| b.max_num_reorder_frames),
        // Two ticks per frame for frame-coded video (field pairs).
        fps: vui
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
            .map(|t| t.time_scale as f64 / (2.0 * t.num_units_in_tick as f64)),
    })
}

/// Our three kinds of failure from the reader's many: running out of bits (or an Exp-Golomb
/// code longer than any valid one, which is what a cut-off run of zeros looks like) is a
/// truncation; anything else names the field that was out of range.
fn sps_error(e: ReaderSpsError) -> SpsError {
    let bits = |e: &BitReaderError| match e {
        BitReaderError::ReaderErrorFor(_, io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SpsError::Truncated
        }
        BitReaderError::ExpGolombTooLarge(_) => SpsError::Truncated,
        BitReaderError::ReaderErrorFor(name, _) => SpsError::Invalid(name),
        _ => SpsError::Invalid("trailing bits"),
    };
    match e {
        ReaderSpsError::RbspReaderError(e)
        | ReaderSpsError::PicOrderCnt(PicOrderCntError::ReaderError(e))
        | ReaderSpsError::ScalingMatrix(ScalingMatrixError::ReaderError(e)) => bits(&e),
        ReaderSpsError::BadSeqParamSetId(_) | ReaderSpsError::UnknownSeqParamSetId(_) => {
            SpsError::Invalid("seq_parameter_set_id")
        }
        ReaderSpsError::BitDepthOutOfRange(_) => SpsError::Invalid("bit depth"),
        ReaderSpsError::PicOrderCnt(_) => SpsError::Invalid("picture order count"),
        ReaderSpsError::ScalingMatrix(_) => SpsError::Invalid("scaling list"),
        ReaderSpsError::Log2MaxFrameNumMinus4OutOfRange(_) => {
            SpsError::Invalid("log2_max_frame_num_minus4")
        }
        ReaderSpsError::FieldValueTooLarge { name, .. }
        | ReaderSpsError::FieldValueTooSmall { name, .. } => SpsError::Invalid(name),
        ReaderSpsError::CroppingError(_) => SpsError::Invalid("picture size or cropping"),
        ReaderSpsError::CpbCountOutOfRange(_) => SpsError::Invalid("cpb_cnt_minus1"),
    }
}

/// A bit reader that says the SPS has no VUI and does not look past where it would begin:
/// the second reading of an SPS whose VUI did not parse.
struct WithoutVui<R>(R);

impl<R: BitRead> BitRead for WithoutVui<R> {
    fn read_ue(&mut self, name: &'static str) -> Result<u32, BitReaderError> {
        self.0.read_ue(name)
    }
    fn read_se(&mut self, name: &'static str) -> Result<i32, BitReaderError> {
        self.0.read_se(name)
    }
    fn read_bool(&mut self, name: &'static str) -> Result<bool, BitReaderError> {
        if name == "vui_parameters_present_flag" {
            return Ok(false);
        }
        self.0.read_bool(name)
    }
    fn read<U: Numeric>(&mut self, bits: u32, name: &'static str) -> Result<U, BitReaderError> {
        self.0.read(bits, name)
    }
    fn read_to<V: Primitive>(&mut self, name: &'static str) -> Result<V, BitReaderError> {
        self.0.read_to(name)
    }
    fn skip(&mut self, bits: u32, name: &'static str) -> Result<(), BitReaderError> {
        self.0.skip(bits, name)
    }
    fn has_more_rbsp_data(&mut self, name: &'static str) -> Result<bool, BitReaderError> {
        self.0.has_more_rbsp_data(name)
    }
    fn finish_rbsp(self) -> Result<(), BitReaderError> {
        Ok(())
    }
    fn finish_sei_payload(self) -> Result<(), BitReaderError> {
        Ok(())
    }
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
    let head = decode_nal(&nal[..nal.len().min(12)]).ok()?;
    let mut r = BitReader::new(&head[..]);
    let _first_mb_in_slice = r.read_ue("first_mb_in_slice").ok()?;
    let raw = r.read_ue("slice_type").ok()?;
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
