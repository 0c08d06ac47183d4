//! One camera's live stream as fragmented MP4: Annex-B access units in, an init segment
//! whenever the parameter sets change and one fragment per frame out. Plain state, no I/O.

use super::fmp4;
use super::h264::{nal_type, nal_units, parse_sps, StreamFormat, NAL_AUD, NAL_PPS, NAL_SPS};

/// A frame's length when nothing better is known: 30 fps.
const DEFAULT_DURATION: u32 = fmp4::TIMESCALE / 30;
/// A gap between frames longer than this (or time running backwards) is not taken as the
/// frame's length: the timeline moves on by the last good length instead.
const MAX_DURATION: u32 = fmp4::TIMESCALE * 10;

/// What the muxer gives for one access unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Muxed {
    /// A new decoder configuration: the player (re)initialises with it before the next
    /// fragment. First at the first keyframe, then whenever the parameter sets change
    /// (a new resolution, a new publisher).
    Init {
        codec: String,
        width: u32,
        height: u32,
        segment: Vec<u8>,
    },
    /// `moof` + `mdat` with one frame.
    Fragment(Vec<u8>),
}

#[derive(Debug)]
struct Config {
    sps: Vec<u8>,
    pps: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Muxer {
    config: Option<Config>,
    sequence: u32,
    /// The last frame's RTP time and its decode time on our timeline (which starts at 0).
    last: Option<(u32, u64)>,
    duration: Option<u32>,
}

impl Muxer {
    pub fn new() -> Self {
        Muxer::default()
    }

    /// One access unit at `rtp_time` (90 kHz). Nothing comes out until the first keyframe
    /// that carries its parameter sets. A frame that cannot be muxed (an unreadable SPS) is
    /// an error and changes nothing.
    pub fn push(&mut self, annex_b: &[u8], rtp_time: u32) -> Result<Vec<Muxed>, String> {
        let mut out = Vec::new();
        let (mut sps, mut pps) = (None, None);
        let mut sample = Vec::with_capacity(annex_b.len());
        let mut keyframe = false;
        for nal in nal_units(annex_b) {
            match nal_type(nal) {
                NAL_SPS => sps = Some(nal),
                NAL_PPS => pps = Some(nal),
                // In-band delimiters mean nothing inside a sample.
                NAL_AUD => {}
                t => {
                    keyframe |= t == super::h264::NAL_IDR;
                    let len = u32::try_from(nal.len()).map_err(|_| "NAL unit over 4 GiB")?;
                    sample.extend_from_slice(&len.to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let changed = self
                .config
                .as_ref()
                .is_none_or(|c| c.sps != sps || c.pps != pps);
            if changed {
                let StreamFormat {
                    width,
                    height,
                    codec,
                } = parse_sps(sps)?;
                let segment = fmp4::init_segment(width, height, sps, pps)?;
                self.config = Some(Config {
                    sps: sps.to_vec(),
                    pps: pps.to_vec(),
                });
                out.push(Muxed::Init {
                    codec,
                    width,
                    height,
                    segment,
                });
            }
        }
        if self.config.is_none() || sample.is_empty() {
            return Ok(out);
        }
        if self.last.is_none() && !keyframe {
            // A decoder cannot start on a delta frame.
            return Ok(out);
        }
        let decode_time = self.advance(rtp_time);
        self.sequence = self.sequence.wrapping_add(1);
        let duration = self.duration.unwrap_or(DEFAULT_DURATION);
        out.push(Muxed::Fragment(fmp4::fragment(
            self.sequence,
            decode_time,
            duration,
            keyframe,
            sample,
        )?));
        Ok(out)
    }

    /// This frame's decode time; learns the frame length from the step since the last one.
    fn advance(&mut self, rtp_time: u32) -> u64 {
        let decode_time = match self.last {
            None => 0,
            Some((last_rtp, last_decode)) => {
                let step = rtp_time.wrapping_sub(last_rtp);
                let step = if step == 0 || step > MAX_DURATION {
                    self.duration.unwrap_or(DEFAULT_DURATION)
                } else {
                    self.duration = Some(step);
                    step
                };
                last_decode + u64::from(step)
            }
        };
        self.last = Some((rtp_time, decode_time));
        decode_time
    }
}

#[cfg(test)]
mod tests {
    use mp4_atom::{Any, Decode, Moof, Moov};

    use super::super::h264::tests::{PPS, SPS_320X240, SPS_640X480};
    use super::*;

    fn annex_b(nalus: &[&[u8]]) -> Vec<u8> {
        nalus
            .iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect()
    }

    fn keyframe(sps: &[u8]) -> Vec<u8> {
        annex_b(&[&[0x09, 0xf0], sps, PPS, &[0x65, 0x88, 1, 2, 3]])
    }

    fn delta() -> Vec<u8> {
        annex_b(&[&[0x41, 0x9a, 4, 5]])
    }

    /// The fragment's sequence number, decode time, duration, flags and sample.
    fn read_fragment(bytes: &[u8]) -> (u32, u64, u32, u32, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes);
        let moof = Moof::decode(&mut cursor).unwrap();
        let mdat = match Any::decode(&mut cursor).unwrap() {
            Any::Mdat(m) => m,
            other => panic!("mdat expected, got {other:?}"),
        };
        let traf = &moof.traf[0];
        let offset = traf.trun[0].data_offset.unwrap() as usize;
        assert_eq!(
            &bytes[offset..],
            &mdat.data[..],
            "data offset points at the sample"
        );
        (
            moof.mfhd.sequence_number,
            traf.tfdt.as_ref().unwrap().base_media_decode_time,
            traf.tfhd.default_sample_duration.unwrap(),
            traf.tfhd.default_sample_flags.unwrap(),
            mdat.data,
        )
    }

    fn init_size(out: &Muxed) -> (u32, u32) {
        let Muxed::Init { segment, .. } = out else {
            panic!("init expected: {out:?}");
        };
        let mut cursor = std::io::Cursor::new(&segment[..]);
        let _ftyp = mp4_atom::Ftyp::decode(&mut cursor).unwrap();
        let moov = Moov::decode(&mut cursor).unwrap();
        let tkhd = &moov.trak[0].tkhd;
        (
            u32::from(tkhd.width.integer()),
            u32::from(tkhd.height.integer()),
        )
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut m = Muxer::new();
        assert!(m.push(&delta(), 0).unwrap().is_empty());
        // Parameter sets without an IDR give the configuration but no frame.
        let out = m.push(&annex_b(&[SPS_640X480, PPS]), 10).unwrap();
        assert_eq!(out.len(), 1);
        assert!(
            m.push(&delta(), 20).unwrap().is_empty(),
            "still no keyframe"
        );
    }

    #[test]
    fn a_keyframe_gives_init_then_fragment_and_deltas_follow_on_the_timeline() {
        let mut m = Muxer::new();
        let out = m.push(&keyframe(SPS_640X480), 1000).unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], Muxed::Init { codec, width: 640, height: 480, .. } if codec == "avc1.42c01f")
        );
        assert_eq!(init_size(&out[0]), (640, 480));
        let Muxed::Fragment(f) = &out[1] else {
            panic!()
        };
        let (seq, time, duration, flags, sample) = read_fragment(f);
        assert_eq!((seq, time, duration, flags), (1, 0, 3000, SYNC_FLAGS));
        // Length-prefixed, without the delimiter and parameter sets.
        assert_eq!(sample, [&[0, 0, 0, 5][..], &[0x65, 0x88, 1, 2, 3]].concat());

        let out = m.push(&delta(), 1000 + 1500).unwrap();
        let [Muxed::Fragment(f)] = &out[..] else {
            panic!("{out:?}")
        };
        let (seq, time, duration, flags, _) = read_fragment(f);
        assert_eq!((seq, time, duration, flags), (2, 1500, 1500, DELTA_FLAGS));
        // RTP time wraps; the timeline does not.
        let mut m = Muxer::new();
        m.push(&keyframe(SPS_640X480), u32::MAX - 999).unwrap();
        let out = m.push(&delta(), 2000).unwrap();
        let [Muxed::Fragment(f)] = &out[..] else {
            panic!()
        };
        assert_eq!(read_fragment(f).1, 3000);
    }

    const SYNC_FLAGS: u32 = 0x0200_0000;
    const DELTA_FLAGS: u32 = 0x0101_0000;

    #[test]
    fn time_never_runs_backwards() {
        let mut m = Muxer::new();
        m.push(&keyframe(SPS_640X480), 9000).unwrap();
        m.push(&delta(), 12000).unwrap();
        for (rtp, want) in [(12000, 6000), (3000, 9000), (12000 + 90_000 * 60, 12000)] {
            let out = m.push(&delta(), rtp).unwrap();
            let [Muxed::Fragment(f)] = &out[..] else {
                panic!()
            };
            assert_eq!(read_fragment(f).1, want, "rtp {rtp}");
        }
    }

    #[test]
    fn new_parameter_sets_give_a_new_init_and_the_same_ones_do_not() {
        let mut m = Muxer::new();
        m.push(&keyframe(SPS_640X480), 0).unwrap();
        let out = m.push(&keyframe(SPS_640X480), 3000).unwrap();
        assert_eq!(out.len(), 1, "same configuration: just the frame");
        let out = m.push(&keyframe(SPS_320X240), 6000).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(init_size(&out[0]), (320, 240));
        let Muxed::Fragment(f) = &out[1] else {
            panic!()
        };
        assert_eq!(read_fragment(f).1, 6000, "the timeline goes on");
    }

    #[test]
    fn malformed_frames_are_errors_or_nothing_never_a_panic() {
        let mut m = Muxer::new();
        assert!(m.push(&[], 0).unwrap().is_empty());
        assert!(m.push(&[0xff; 64], 0).unwrap().is_empty());
        assert!(m.push(&[0, 0, 1], 0).unwrap().is_empty());
        let bad_sps = annex_b(&[&[0x67, 0x42], PPS, &[0x65, 1]]);
        assert!(m.push(&bad_sps, 0).is_err());
        // Still waiting for a good configuration; a good keyframe then works.
        assert!(m.push(&delta(), 10).unwrap().is_empty());
        assert_eq!(m.push(&keyframe(SPS_640X480), 20).unwrap().len(), 2);
        // Every truncation of a keyframe: no panic.
        let k = keyframe(SPS_320X240);
        for n in 0..k.len() {
            let _ = Muxer::new().push(&k[..n], 0);
        }
    }
}
