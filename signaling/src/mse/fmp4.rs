//! Fragmented MP4 (ISO BMFF) for one live H.264 track: an init segment (`ftyp` + `moov`,
//! the decoder configuration in `avcC`) and one `moof` + `mdat` fragment per frame. The
//! boxes are `mp4-atom`'s; this only fills them in.

use mp4_atom::{
    Avc1, Avcc, Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mvex, Mvhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunSamples, Url, Visual, Vmhd,
};

/// Media time units per second: H.264's RTP clock, so RTP time maps one to one.
pub(crate) const TIMESCALE: u32 = 90_000;
const TRACK: u32 = 1;
/// `sample_depends_on` = 2 (an IDR depends on nothing).
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_depends_on` = 1, `sample_is_non_sync_sample`.
const DELTA_SAMPLE: u32 = 0x0101_0000;

fn encode(boxes: &[&dyn EncodeDyn]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for b in boxes {
        b.encode_into(&mut out)?;
    }
    Ok(out)
}

/// `Encode` for a list of different boxes.
trait EncodeDyn {
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), String>;
}

impl<T: Encode> EncodeDyn for T {
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), String> {
        self.encode(out).map_err(|e| format!("mp4 encoding: {e}"))
    }
}

/// `ftyp` + `moov` for a `width`×`height` H.264 track with these parameter sets (NAL units
/// with their header byte).
pub(crate) fn init_segment(
    width: u32,
    height: u32,
    sps: &[u8],
    pps: &[u8],
) -> Result<Vec<u8>, String> {
    let avcc = Avcc::new(sps, pps).map_err(|e| format!("avcC: {e}"))?;
    let (w, h) = (
        u16::try_from(width).map_err(|_| "width over 65535")?,
        u16::try_from(height).map_err(|_| "height over 65535")?,
    );
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 0x200,
        compatible_brands: vec![
            FourCC::new(b"isom"),
            FourCC::new(b"iso6"),
            FourCC::new(b"avc1"),
            FourCC::new(b"mp41"),
        ],
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            trex: vec![Trex {
                track_id: TRACK,
                default_sample_description_index: 1,
                ..Default::default()
            }],
            ..Default::default()
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK,
                enabled: true,
                in_movie: true,
                width: w.into(),
                height: h.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"vide"),
                    name: "Sightline".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![Url {
                                location: String::new(),
                            }
                            .into()],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![Avc1 {
                                visual: Visual {
                                    data_reference_index: 1,
                                    width: w,
                                    height: h,
                                    ..Default::default()
                                },
                                avcc,
                                btrt: None,
                                colr: None,
                                pasp: None,
                                taic: None,
                                fiel: None,
                                spatial: None,
                            }
                            .into()],
                        },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    encode(&[&ftyp, &moov])
}

/// One sample: `moof` (fragment `sequence`, decode time `decode_time` in [`TIMESCALE`]
/// units, lasting `duration`) + `mdat` holding `avcc_sample` (length-prefixed NAL units).
pub(crate) fn fragment(
    sequence: u32,
    decode_time: u64,
    duration: u32,
    keyframe: bool,
    avcc_sample: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let size = u32::try_from(avcc_sample.len()).map_err(|_| "sample over 4 GiB")?;
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK,
                default_sample_duration: Some(duration),
                default_sample_size: Some(size),
                default_sample_flags: Some(if keyframe { SYNC_SAMPLE } else { DELTA_SAMPLE }),
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Inherited {
                    count: 1,
                    first_flags: None,
                },
            }],
            ..Default::default()
        }],
    };
    // The sample starts right after the mdat header, which follows the moof: its size is
    // the same whatever the offset's value, so measure it once with a placeholder.
    let moof_len = encode(&[&moof])?.len();
    let offset = i32::try_from(moof_len + 8).map_err(|_| "moof too large")?;
    moof.traf[0].trun[0].data_offset = Some(offset);
    encode(&[&moof, &Mdat { data: avcc_sample }])
}
