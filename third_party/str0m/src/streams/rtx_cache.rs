use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::io::DATAGRAM_MAX_PACKET_SIZE;
use crate::packet::Vp8Patch;
use crate::rtp_::{MediaTime, Pt, RtpHeader, SeqNo, Ssrc};

use super::RtpPacket;
use super::rtx_cache_buf::EvictingBuffer;

const RTX_CACHE_SIZE_QUANTIZER: usize = 25;
const RTX_CACHE_QUANTIZE_SLOTS: usize = DATAGRAM_MAX_PACKET_SIZE / RTX_CACHE_SIZE_QUANTIZER;

#[derive(Debug)]
pub(crate) struct RtxCache {
    // Data, new additions here probably need to be cleared in [`clear`].
    packet_by_seq_no: EvictingBuffer<CachedPacket>,

    // Technically we want [Option<SeqNo>; X] to indicate the absence of
    // a SeqNo. However We can half the storage space by using the sentinel
    // values SeqNo::MAX to indicate None
    seq_no_by_quantized_size: [SeqNo; RTX_CACHE_QUANTIZE_SLOTS],
}

/// A sent packet as the cache keeps it until a NACK asks for it again.
///
/// (Sightline patch.) A whole `RtpPacket` is about 400 bytes, most of it the parsed header's
/// extension values, and a sending stream keeps hundreds of them, for every peer. Most
/// packets' headers are what `write_rtp` makes of four fields, so only those are kept, and a
/// header with anything more (extension values, CSRCs) is boxed whole. A cached packet is
/// about 64 bytes; it becomes an `RtpPacket` again only when it is resent.
#[derive(Debug)]
pub(crate) struct CachedPacket {
    seq_no: SeqNo,
    time: MediaTime,
    payload: Arc<[u8]>,
    header: CachedHeader,
    vp8_patch: Option<Box<Vp8Patch>>,
}

#[derive(Debug)]
enum CachedHeader {
    /// The header is `RtpHeader::default()` with these fields and the packet's sequence number.
    Plain {
        marker: bool,
        payload_type: Pt,
        timestamp: u32,
        ssrc: Ssrc,
    },
    Full(Box<RtpHeader>),
}

impl CachedHeader {
    fn plain_header(
        marker: bool,
        payload_type: Pt,
        timestamp: u32,
        ssrc: Ssrc,
        seq_no: SeqNo,
    ) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type,
            timestamp,
            ssrc,
            sequence_number: *seq_no as u16,
            ..Default::default()
        }
    }

    fn new(header: RtpHeader, seq_no: SeqNo) -> Self {
        let plain = CachedHeader::Plain {
            marker: header.marker,
            payload_type: header.payload_type,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
        };
        if plain.restore(seq_no) == header {
            plain
        } else {
            CachedHeader::Full(Box::new(header))
        }
    }

    fn restore(&self, seq_no: SeqNo) -> RtpHeader {
        match self {
            CachedHeader::Plain {
                marker,
                payload_type,
                timestamp,
                ssrc,
            } => Self::plain_header(*marker, *payload_type, *timestamp, *ssrc, seq_no),
            CachedHeader::Full(header) => (**header).clone(),
        }
    }
}

impl CachedPacket {
    fn new(packet: RtpPacket) -> Self {
        CachedPacket {
            seq_no: packet.seq_no,
            time: packet.time,
            header: CachedHeader::new(packet.header, packet.seq_no),
            payload: packet.payload,
            vp8_patch: packet.vp8_patch.map(Box::new),
        }
    }

    pub fn seq_no(&self) -> SeqNo {
        self.seq_no
    }

    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The packet as it was sent, for a resend. `into` is reused: no allocation but the
    /// header's clone when it was boxed.
    pub fn restore_into(&self, into: &mut RtpPacket) {
        into.seq_no = self.seq_no;
        into.time = self.time;
        into.header = self.header.restore(self.seq_no);
        into.payload = Arc::clone(&self.payload);
        into.vp8_patch = self.vp8_patch.as_deref().cloned();
        into.last_sender_info = None;
        // Only nackable packets are cached.
        into.nackable = true;
    }
}

impl RtxCache {
    pub fn new(max_packet_count: usize, max_packet_age: Duration) -> Self {
        Self {
            packet_by_seq_no: EvictingBuffer::new(10, max_packet_age, max_packet_count),
            seq_no_by_quantized_size: [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS],
        }
    }

    pub fn cache_sent_packet(&mut self, packet: RtpPacket, now: Instant) {
        assert!(packet.nackable);
        let seq_no = packet.seq_no;
        let quantized_size = packet.payload.len() / RTX_CACHE_SIZE_QUANTIZER;
        self.packet_by_seq_no
            .push(*seq_no, now, CachedPacket::new(packet));
        self.seq_no_by_quantized_size[quantized_size] = seq_no;
        self.remove_old_packets(now);
    }

    pub fn last_cached_seq_no(&self) -> Option<SeqNo> {
        Some(self.packet_by_seq_no.last_position()?.into())
    }

    pub fn get_cached_packet_by_seq_no(&self, seq_no: SeqNo) -> Option<&CachedPacket> {
        self.packet_by_seq_no.get(*seq_no)
    }

    pub fn get_cached_packet_smaller_than(&self, max_size: usize) -> Option<&CachedPacket> {
        let quantized_size = max_size / RTX_CACHE_SIZE_QUANTIZER;

        let seq_no = self.seq_no_by_quantized_size[..quantized_size]
            .iter()
            .rev()
            .filter(|seq_no| !seq_no.is_max())
            .find(|seq_no| self.packet_by_seq_no.contains(***seq_no))?;

        self.get_cached_packet_by_seq_no(*seq_no)
    }

    fn remove_old_packets(&mut self, now: Instant) {
        self.packet_by_seq_no.maybe_evict(now);
    }

    pub(crate) fn last_packet(&self) -> Option<&[u8]> {
        let packet = self.packet_by_seq_no.last()?;
        Some(packet.payload.as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.packet_by_seq_no.clear();
        self.seq_no_by_quantized_size = [SeqNo::MAX; RTX_CACHE_QUANTIZE_SLOTS];
    }
}

#[cfg(test)]
mod test {
    use crate::rtp_::MediaTime;
    use crate::rtp_::RtpHeader;

    use super::*;

    fn after(now: Instant, millis: u64) -> Instant {
        now + Duration::from_millis(millis)
    }

    /// What a resend of the cached packet would carry: its sequence number and payload.
    fn sent(cached: Option<&CachedPacket>) -> Option<(SeqNo, Vec<u8>)> {
        let mut restored = RtpPacket::blank();
        cached?.restore_into(&mut restored);
        Some((restored.seq_no, restored.payload.to_vec()))
    }

    fn packet(now: Instant, seq_no: u64, millis: u64) -> RtpPacket {
        RtpPacket {
            header: RtpHeader::default(),
            seq_no: seq_no.into(),
            time: MediaTime::from_90khz(0),
            payload: millis.to_be_bytes().into(),
            vp8_patch: None,
            timestamp: after(now, millis),
            last_sender_info: None,
            nackable: true,
        }
    }

    fn expect(seq_no: u64, millis: u64) -> Option<(SeqNo, Vec<u8>)> {
        Some((seq_no.into(), millis.to_be_bytes().to_vec()))
    }

    #[test]
    fn rtx_cache_0_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(0, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            expect(1, 10),
            sent(rtx_cache.get_cached_packet_by_seq_no(1.into()))
        );
        assert_eq!(
            expect(1, 10),
            sent(rtx_cache.get_cached_packet_smaller_than(1000))
        );
    }

    #[test]
    fn rtx_cache_0_duration() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(0));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(None, sent(rtx_cache.get_cached_packet_by_seq_no(1.into())));
        assert_eq!(None, sent(rtx_cache.get_cached_packet_smaller_than(1000)));
    }

    #[test]
    fn rtx_cache_1_sized() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(1, Duration::from_secs(3));
        rtx_cache.cache_sent_packet(packet(now, 1, 10), after(now, 10));
        assert_eq!(
            expect(1, 10),
            sent(rtx_cache.get_cached_packet_by_seq_no(1.into()))
        );
        assert_eq!(
            expect(1, 10),
            sent(rtx_cache.get_cached_packet_smaller_than(1000))
        );
        assert_eq!(
            expect(1, 10),
            sent(rtx_cache.get_cached_packet_smaller_than(25))
        );
        assert_eq!(None, sent(rtx_cache.get_cached_packet_smaller_than(24)));
        rtx_cache.cache_sent_packet(packet(now, 2, 20), after(now, 20));
        assert_eq!(
            expect(2, 20),
            sent(rtx_cache.get_cached_packet_by_seq_no(2.into()))
        );
    }

    #[test]
    fn rtx_cache_100_sized_backwards() {
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(100, Duration::from_secs(3));

        for i in 1..=200 {
            let seq_no = 201 - i;
            let pkt = packet(now, seq_no, (201 - i) * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(
            expect(200, 2000),
            sent(rtx_cache.get_cached_packet_by_seq_no(200.into()))
        );
        assert_eq!(
            None,
            sent(rtx_cache.get_cached_packet_by_seq_no(100.into()))
        );
        assert_eq!(
            None,
            sent(rtx_cache.get_cached_packet_by_seq_no(101.into()))
        );
    }

    #[test]
    fn rtx_cache_eviction() {
        let now = Instant::now();
        // Cache can take all entries
        let mut rtx_cache = RtxCache::new(400, Duration::from_secs(1));
        for i in 1..=200 {
            let seq_no = i;
            let pkt = packet(now, seq_no, i * 10);
            let now = after(now, i * 10);
            rtx_cache.cache_sent_packet(pkt, now);
        }

        assert_eq!(None, sent(rtx_cache.get_cached_packet_by_seq_no(99.into())));

        assert_eq!(
            expect(100, 1000),
            sent(rtx_cache.get_cached_packet_by_seq_no(100.into()))
        );
        assert_eq!(
            expect(200, 2000),
            sent(rtx_cache.get_cached_packet_by_seq_no(200.into()))
        );
    }

    /// (Sightline patch.) A resent packet's header is the header it was sent with, whether
    /// the cache kept it compact or whole.
    #[test]
    fn headers_come_back_as_sent() {
        use crate::rtp_::ExtensionValues;
        let now = Instant::now();
        let mut rtx_cache = RtxCache::new(10, Duration::from_secs(3));

        let mut plain = packet(now, 1, 10);
        plain.header = RtpHeader {
            marker: true,
            payload_type: 96.into(),
            timestamp: 1234,
            ssrc: 42.into(),
            sequence_number: 1,
            ..Default::default()
        };
        let mut rich = packet(now, 2, 20);
        rich.header = RtpHeader {
            payload_type: 97.into(),
            sequence_number: 2,
            csrc_count: 1,
            csrc: [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ext_vals: ExtensionValues {
                play_delay_max: Some(MediaTime::from_hundredths(50)),
                ..Default::default()
            },
            ..Default::default()
        };
        let expected = [plain.header.clone(), rich.header.clone()];
        rtx_cache.cache_sent_packet(plain, after(now, 10));
        rtx_cache.cache_sent_packet(rich, after(now, 20));

        let cached = rtx_cache.get_cached_packet_by_seq_no(1.into()).unwrap();
        assert!(matches!(cached.header, CachedHeader::Plain { .. }));
        let cached = rtx_cache.get_cached_packet_by_seq_no(2.into()).unwrap();
        assert!(matches!(cached.header, CachedHeader::Full(_)));
        for (seq_no, header) in [1u64, 2].into_iter().zip(expected) {
            let mut restored = RtpPacket::blank();
            let cached = rtx_cache
                .get_cached_packet_by_seq_no(seq_no.into())
                .unwrap();
            cached.restore_into(&mut restored);
            assert_eq!(restored.header, header);
            assert!(restored.nackable);
        }
        assert!(std::mem::size_of::<CachedPacket>() <= 72);
    }
}
