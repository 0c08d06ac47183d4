//! One camera's outgoing video, packetised once for all its viewers. Plain state, no I/O.
//!
//! str0m's frame API packetises a written frame inside each `Rtc`, so with fifty viewers
//! the same Annex-B frame was searched for start codes and cut into RTP payloads fifty
//! times. Here each publisher frame is cut once into shared payloads ([`FramePackets`]);
//! each viewer's `Rtc` (in RTP mode) only puts its own SSRC and sequence numbers on them.
//!
//! The feed also owns the camera's RTP timeline: viewers see one continuous clock even
//! when the publisher is replaced and the new one starts its RTP time anywhere.

use std::sync::Arc;
use std::time::Instant;

use str0m::unversioned::{H264Packetizer, Packetizer, Vp8Packetizer};

use super::gop_cache::GopCache;
use crate::VideoCodec;

/// RTP payload budget, as str0m's own packetiser computes it: its 1150-byte datagram target
/// less the 16-byte SRTP tag, rounded down to the 16-byte SRTP block.
pub(crate) const PAYLOAD_MTU: usize = 1120;

/// The video RTP clock (H.264 and VP8 alike).
const CLOCK_RATE: u128 = 90_000;

/// One frame, ready for every viewer: the payloads of one access unit in order; the last
/// one carries the marker bit.
#[derive(Debug)]
pub(crate) struct FramePackets {
    /// On the camera's timeline (see [`Feed`]), 90 kHz.
    pub(crate) rtp_time: u32,
    /// When the frame reached the SFU (str0m maps RTP time to wall clock in sender reports).
    pub(crate) wallclock: Instant,
    pub(crate) payloads: Vec<Arc<[u8]>>,
}

/// str0m's packetiser for the feed's codec.
#[derive(Debug)]
enum CodecPacketizer {
    /// Stateful: an SPS/PPS pair waits for the next slice to share a STAP-A with it.
    H264(H264Packetizer),
    /// Stateful: numbers pictures (the payload descriptor's picture id).
    Vp8(Vp8Packetizer),
}

impl CodecPacketizer {
    fn new(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::H264 => CodecPacketizer::H264(H264Packetizer::default()),
            VideoCodec::Vp8 => CodecPacketizer::Vp8(Vp8Packetizer::default()),
        }
    }

    fn codec(&self) -> VideoCodec {
        match self {
            CodecPacketizer::H264(_) => VideoCodec::H264,
            CodecPacketizer::Vp8(_) => VideoCodec::Vp8,
        }
    }

    fn packetize(&mut self, mtu: usize, frame: &[u8]) -> Vec<Vec<u8>> {
        let chunks = match self {
            CodecPacketizer::H264(p) => p.packetize(mtu, frame),
            CodecPacketizer::Vp8(p) => p.packetize(mtu, frame),
        };
        // str0m's packetisers do not fail on these codecs (an empty frame gives nothing).
        chunks.unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct Feed {
    packetizer: CodecPacketizer,
    /// Added to the publisher's RTP time. Recomputed on the first frame of a new publisher.
    offset: u32,
    rebase: bool,
    /// The last frame's time on the camera's timeline, and when it arrived.
    last: Option<(u32, Instant)>,
    /// The frames since the last keyframe, for viewers who connect next.
    gop: GopCache,
}

impl Feed {
    pub(crate) fn new(codec: VideoCodec) -> Self {
        Feed {
            packetizer: CodecPacketizer::new(codec),
            offset: 0,
            rebase: true,
            last: None,
            gop: GopCache::default(),
        }
    }

    /// Another publisher feeds the camera: forget the old one's parameter sets and re-anchor
    /// its clock on the next frame.
    pub(crate) fn publisher_changed(&mut self) {
        self.packetizer = CodecPacketizer::new(self.packetizer.codec());
        self.rebase = true;
        self.gop.close();
    }

    /// The publisher's stream lost packets beyond repair: the frames kept so far no longer
    /// lead to the live picture.
    pub(crate) fn stream_broken(&mut self) {
        self.gop.close();
    }

    /// Whether a frame is worth packetising when no viewer is sent it (it would be kept for
    /// the next viewers).
    pub(crate) fn keeps(&self, keyframe: bool) -> bool {
        self.gop.keeps(keyframe)
    }

    /// The last keyframe and every frame since, if they are still kept and the camera is
    /// still sending at `now`.
    pub(crate) fn since_keyframe(&self, now: Instant) -> Option<&[Arc<FramePackets>]> {
        self.gop.frames(now)
    }

    /// Cut one frame (an Annex-B access unit, or a VP8 frame; publisher RTP time `time`,
    /// 90 kHz) into RTP payloads, and keep it for the next viewers when it belongs to the
    /// cache (see [`GopCache`]).
    pub(crate) fn packetize(
        &mut self,
        time: u32,
        wallclock: Instant,
        frame: &[u8],
        keyframe: bool,
    ) -> Arc<FramePackets> {
        let rtp_time = self.map_time(time, wallclock);
        let payloads = self
            .packetizer
            .packetize(PAYLOAD_MTU, frame)
            .into_iter()
            .map(Arc::<[u8]>::from)
            .collect();
        let packets = Arc::new(FramePackets {
            rtp_time,
            wallclock,
            payloads,
        });
        self.gop.push(&packets, keyframe);
        packets
    }

    fn map_time(&mut self, time: u32, wallclock: Instant) -> u32 {
        if self.rebase {
            self.rebase = false;
            // Continue where the previous publisher stopped, advanced by the wall-clock time
            // in between, so viewers' jitter buffers see time go on, not jump.
            let start = match self.last {
                Some((t, at)) => {
                    let gap = wallclock.saturating_duration_since(at).as_micros();
                    let ticks = (gap * CLOCK_RATE / 1_000_000).max(1);
                    t.wrapping_add(ticks as u32)
                }
                None => time,
            };
            self.offset = start.wrapping_sub(time);
        }
        let out = time.wrapping_add(self.offset);
        self.last = Some((out, wallclock));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Annex-B with 4-byte start codes.
    fn annex_b(nalus: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nalus {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    fn nalu(header: u8, len: usize) -> Vec<u8> {
        let mut n = vec![header];
        n.extend((1..len).map(|i| (i % 251) as u8 + 1));
        n
    }

    #[test]
    fn small_frame_is_one_single_nal_packet() {
        let mut f = Feed::new(VideoCodec::H264);
        let slice = nalu(0x41, 300);
        let frame = f.packetize(1000, Instant::now(), &annex_b(&[&slice]), false);
        assert_eq!(frame.payloads.len(), 1);
        assert_eq!(&frame.payloads[0][..], &slice[..]);
    }

    #[test]
    fn keyframe_puts_parameter_sets_in_stap_a_and_fragments_the_idr() {
        let mut f = Feed::new(VideoCodec::H264);
        let sps = nalu(0x67, 10);
        let pps = nalu(0x68, 4);
        let idr = nalu(0x65, 3000);
        let frame = f.packetize(0, Instant::now(), &annex_b(&[&sps, &pps, &idr]), true);
        let p = &frame.payloads;
        assert_eq!(p[0][0] & 0x1f, 24, "STAP-A first");
        assert!(p.len() >= 4, "STAP-A + at least 3 FU-A");
        assert!(p.iter().all(|x| x.len() <= PAYLOAD_MTU));
        for (i, x) in p[1..].iter().enumerate() {
            assert_eq!(x[0] & 0x1f, 28, "FU-A");
            assert_eq!(x[1] & 0x1f, 5, "carries the IDR");
            assert_eq!(x[1] & 0x80 != 0, i == 0, "start bit on the first fragment");
            assert_eq!(x[1] & 0x40 != 0, i == p.len() - 2, "end bit on the last");
        }
        // The fragments rebuild the NAL unit.
        let mut rebuilt = vec![(p[1][0] & 0xe0) | (p[1][1] & 0x1f)];
        for x in &p[1..] {
            rebuilt.extend_from_slice(&x[2..]);
        }
        assert_eq!(rebuilt, idr);
    }

    #[test]
    fn a_vp8_frame_is_cut_with_payload_descriptors() {
        let mut f = Feed::new(VideoCodec::Vp8);
        // A keyframe's frame tag (P bit clear) and filler.
        let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        frame.resize(3000, 7);
        let p = f
            .packetize(0, Instant::now(), &frame, true)
            .payloads
            .clone();
        assert!(p.len() >= 3, "split to fit the MTU");
        assert!(p.iter().all(|x| x.len() <= PAYLOAD_MTU));
        // The S bit (start of partition) marks the first packet only.
        assert!(p[0][0] & 0x10 != 0);
        assert!(p[1..].iter().all(|x| x[0] & 0x10 == 0));
        f.publisher_changed();
        assert_eq!(f.packetizer.codec(), VideoCodec::Vp8, "stays VP8");
    }

    #[test]
    fn time_passes_through_for_the_first_publisher() {
        let mut f = Feed::new(VideoCodec::H264);
        let t0 = Instant::now();
        assert_eq!(f.packetize(5000, t0, &[], false).rtp_time, 5000);
        assert_eq!(f.packetize(8000, t0, &[], false).rtp_time, 8000);
    }

    #[test]
    fn timeline_continues_across_a_publisher_change() {
        let mut f = Feed::new(VideoCodec::H264);
        let t0 = Instant::now();
        assert_eq!(
            f.packetize(u32::MAX - 100, t0, &[], false).rtp_time,
            u32::MAX - 100
        );
        f.publisher_changed();
        // 100 ms later the new publisher starts at an unrelated time.
        let t1 = t0 + Duration::from_millis(100);
        let a = f.packetize(77, t1, &[], false).rtp_time;
        assert_eq!(a, (u32::MAX - 100).wrapping_add(9000));
        // Its own spacing is kept.
        let b = f.packetize(77 + 3000, t1, &[], false).rtp_time;
        assert_eq!(b, a.wrapping_add(3000));
    }

    #[test]
    fn a_change_without_time_passing_still_moves_forward() {
        let mut f = Feed::new(VideoCodec::H264);
        let t0 = Instant::now();
        f.packetize(100, t0, &[], false);
        f.publisher_changed();
        assert_eq!(f.packetize(100, t0, &[], false).rtp_time, 101);
    }
}
