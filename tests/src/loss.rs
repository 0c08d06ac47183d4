//! Deterministic packet loss on a viewer's way in, to prove that the SFU repairs it with
//! retransmissions (RTX) when the viewer sends NACKs.
//!
//! Only plain media RTP on the negotiated video payload type is dropped: STUN, DTLS, RTCP and
//! RTX must all get through, or the test would measure something else (a dead connection, or
//! losses nobody can repair). SRTP leaves the RTP header in clear, so the payload type can be
//! read from the raw datagram.

/// Which incoming media packets to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropPattern {
    /// Drop media packets number `every_nth`, `2 × every_nth`, ... (counting from 1). Values
    /// below 2 are raised to 2: dropping everything would leave nothing to repair from.
    pub every_nth: u32,
}

impl DropPattern {
    pub fn every_nth(n: u32) -> Self {
        DropPattern { every_nth: n }
    }
}

/// What a received datagram is, as far as loss simulation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP on the video payload type: the only thing ever dropped.
    Media,
    /// RTP on the video's RTX payload type: a retransmission (or padding).
    Rtx,
    /// STUN, DTLS, RTCP, RTP on other payload types, garbage.
    Other,
}

/// The payload types negotiated for the video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPts {
    pub media: u8,
    pub rtx: Option<u8>,
}

/// Classify a datagram by its first bytes (RFC 7983 demultiplexing, RFC 5761 RTP/RTCP split).
pub fn classify(datagram: &[u8], pts: VideoPts) -> PacketKind {
    // 12 bytes: the fixed RTP header. First byte 128..=191: RTP or RTCP (version 2).
    if datagram.len() < 12 || !(128..=191).contains(&datagram[0]) {
        return PacketKind::Other;
    }
    let pt = datagram[1] & 0x7f;
    // RTCP packet types 192..=223 show up as 64..=95 once the marker bit is masked off.
    if (64..=95).contains(&pt) {
        return PacketKind::Other;
    }
    if pt == pts.media {
        PacketKind::Media
    } else if Some(pt) == pts.rtx {
        PacketKind::Rtx
    } else {
        PacketKind::Other
    }
}

/// Sits between a viewer's socket and its peer: counts media and RTX packets, notices media
/// sequence numbers that never arrived, and drops media packets by pattern.
#[derive(Debug)]
pub struct IncomingFilter {
    pts: Option<VideoPts>,
    pattern: Option<DropPattern>,
    media_seen: u64,
    /// The highest media sequence number seen (RTP's 16-bit series, compared with wrap).
    highest_seq: Option<u16>,
}

/// What [`IncomingFilter::admit`] decided about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub kind: PacketKind,
    /// Hand it to the peer (false: simulate its loss).
    pub deliver: bool,
    /// Media sequence numbers this packet skipped over: packets lost on the way (or still
    /// to come, reordered), before any repair. Counted on arrival, so packets this filter
    /// drops on purpose are not among them.
    pub skipped: u64,
}

impl IncomingFilter {
    /// `pts: None` (payload types unknown) makes every packet [`PacketKind::Other`]: nothing
    /// is dropped rather than guessing.
    pub fn new(pts: Option<VideoPts>, pattern: Option<DropPattern>) -> Self {
        IncomingFilter {
            pts,
            pattern,
            media_seen: 0,
            highest_seq: None,
        }
    }

    pub fn admit(&mut self, datagram: &[u8]) -> Verdict {
        let kind = match self.pts {
            Some(pts) => classify(datagram, pts),
            None => PacketKind::Other,
        };
        let (mut deliver, mut skipped) = (true, 0);
        if kind == PacketKind::Media {
            let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
            if let Some(highest) = self.highest_seq {
                let ahead = seq.wrapping_sub(highest) as i16;
                if ahead > 0 {
                    skipped = u64::from(ahead as u16 - 1);
                }
            }
            if self
                .highest_seq
                .is_none_or(|h| (seq.wrapping_sub(h) as i16) > 0)
            {
                self.highest_seq = Some(seq);
            }
            self.media_seen += 1;
            if let Some(p) = self.pattern {
                deliver = !self
                    .media_seen
                    .is_multiple_of(u64::from(p.every_nth.max(2)));
            }
        }
        Verdict {
            kind,
            deliver,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTS: VideoPts = VideoPts {
        media: 102,
        rtx: Some(103),
    };

    fn rtp(pt: u8, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.resize(40, 0);
        p
    }

    #[test]
    fn tells_media_rtx_rtcp_and_the_rest_apart() {
        assert_eq!(classify(&rtp(102, false), PTS), PacketKind::Media);
        assert_eq!(classify(&rtp(102, true), PTS), PacketKind::Media);
        assert_eq!(classify(&rtp(103, true), PTS), PacketKind::Rtx);
        assert_eq!(classify(&rtp(96, false), PTS), PacketKind::Other);
        // RTCP receiver report (201) and NACK (205).
        assert_eq!(classify(&rtp(201 & 0x7f, true), PTS), PacketKind::Other);
        assert_eq!(classify(&rtp(205 & 0x7f, true), PTS), PacketKind::Other);
        // STUN (first byte 0..=3), DTLS (20..=63), too short, empty.
        let mut stun = rtp(102, false);
        stun[0] = 0x00;
        assert_eq!(classify(&stun, PTS), PacketKind::Other);
        let mut dtls = rtp(102, false);
        dtls[0] = 22;
        assert_eq!(classify(&dtls, PTS), PacketKind::Other);
        assert_eq!(classify(&[0x80, 102, 0, 0], PTS), PacketKind::Other);
        assert_eq!(classify(&[], PTS), PacketKind::Other);
        let no_rtx = VideoPts {
            media: 102,
            rtx: None,
        };
        assert_eq!(classify(&rtp(103, false), no_rtx), PacketKind::Other);
    }

    #[test]
    fn drops_every_nth_media_packet_and_nothing_else() {
        let mut f = IncomingFilter::new(Some(PTS), Some(DropPattern::every_nth(3)));
        let mut dropped = Vec::new();
        for i in 1..=9 {
            assert!(f.admit(&rtp(103, false)).deliver, "RTX is never dropped");
            assert!(f.admit(&[0u8; 20]).deliver, "STUN is never dropped");
            let v = f.admit(&rtp(102, false));
            assert_eq!(v.kind, PacketKind::Media);
            if !v.deliver {
                dropped.push(i);
            }
        }
        assert_eq!(dropped, [3, 6, 9]);
    }

    #[test]
    fn skipped_sequence_numbers_are_counted_once_across_the_wrap() {
        let mut f = IncomingFilter::new(Some(PTS), None);
        let mut with_seq = |seq: u16, pt: u8| {
            let mut p = rtp(pt, false);
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            f.admit(&p).skipped
        };
        assert_eq!(with_seq(65_533, 102), 0, "the first packet skips nothing");
        assert_eq!(with_seq(65_534, 102), 0);
        assert_eq!(with_seq(1, 102), 2, "65535 and 0 missing, across the wrap");
        assert_eq!(with_seq(0, 102), 0, "a late one is not a new gap");
        assert_eq!(with_seq(9, 103), 0, "RTX is not media");
        assert_eq!(with_seq(2, 102), 0);
    }

    #[test]
    fn without_a_pattern_or_payload_types_everything_passes() {
        let mut f = IncomingFilter::new(Some(PTS), None);
        assert!((0..50).all(|_| f.admit(&rtp(102, false)).deliver));
        let mut f = IncomingFilter::new(None, Some(DropPattern::every_nth(2)));
        assert!((0..50).all(|_| f.admit(&rtp(102, false)).deliver));
        let mut f = IncomingFilter::new(Some(PTS), Some(DropPattern::every_nth(0)));
        let delivered = (0..10)
            .filter(|_| f.admit(&rtp(102, false)).deliver)
            .count();
        assert_eq!(delivered, 5, "every_nth below 2 means every 2nd");
    }
}
