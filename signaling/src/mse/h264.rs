//! The little of H.264 the MSE door reads: NAL units in an Annex-B access unit (split by
//! the SFU's [`nal_units`]), and a sequence parameter set's picture size and RFC 6381 codec string (parsed by
//! `h264-reader`).

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};
pub(crate) use sightline_sfu::annex_b::nal_units;

pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
pub(crate) const NAL_AUD: u8 = 9;

/// The NAL unit type in a NAL header byte.
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// What a sequence parameter set says about the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamFormat {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// For `MediaSource.isTypeSupported` and `addSourceBuffer`: `avc1.PPCCLL`.
    pub(crate) codec: String,
}

/// Read a sequence parameter set NAL unit (with its header byte).
pub(crate) fn parse_sps(sps: &[u8]) -> Result<StreamFormat, String> {
    if nal_type(sps) != NAL_SPS || sps.len() < 4 {
        return Err("not a sequence parameter set".into());
    }
    let rbsp = decode_nal(sps).map_err(|e| format!("bad SPS escaping: {e}"))?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
        .map_err(|e| format!("unreadable SPS: {e:?}"))?;
    let (width, height) = parsed
        .pixel_dimensions()
        .map_err(|e| format!("SPS without a valid size: {e:?}"))?;
    Ok(StreamFormat {
        width,
        height,
        codec: format!("avc1.{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Constrained Baseline 3.1 parameter sets, written bit by bit: 640×480 and 320×240.
    pub(crate) const SPS_640X480: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x02, 0x80, 0xf6, 0x40];
    pub(crate) const SPS_320X240: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x05, 0x07, 0xe4];
    pub(crate) const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn sps_gives_size_and_codec() {
        let f = parse_sps(SPS_640X480).unwrap();
        assert_eq!((f.width, f.height), (640, 480));
        assert_eq!(f.codec, "avc1.42c01f");
        let f = parse_sps(SPS_320X240).unwrap();
        assert_eq!((f.width, f.height), (320, 240));
    }

    #[test]
    fn bad_sps_is_an_error_not_a_panic() {
        assert!(parse_sps(&[]).is_err());
        assert!(parse_sps(PPS).is_err());
        assert!(parse_sps(&[0x67, 0x42]).is_err());
        assert!(parse_sps(&[0x67, 0x42, 0xc0, 0x1f, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Truncated anywhere: never a panic.
        for n in 0..SPS_640X480.len() {
            let _ = parse_sps(&SPS_640X480[..n]);
        }
    }
}
