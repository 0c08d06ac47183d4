//! A viewer's send side: shared, ready-made RTP payloads go into the viewer's own stream.
//!
//! Viewers' `Rtc`s run in str0m's RTP mode, so str0m does not packetise again: it adds the
//! viewer's SSRC and header extensions, encrypts, and keeps each packet in its send buffer
//! to answer NACKs with RTX. The sequence numbers are ours, one continuous series per viewer
//! whatever happens to the publisher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{ExtensionValues, MediaTime, Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::Rtc;

use super::feed::FramePackets;

/// Sent packets each viewer keeps to answer NACKs, at most this many and this old. str0m's
/// default (2000 packets, 3 s: ~700 entries at 2 Mbit/s) repairs losses noticed long after a
/// browser's jitter buffer has given up on them, and its entries were whole parsed packets
/// (~400 bytes; 64 with our patched str0m, the payloads shared). Half a second answers a
/// NACK over any round trip under ~400 ms; 256 packets hold that much up to about 4 Mbit/s.
const RTX_CACHE_PACKETS: usize = 256;
const RTX_CACHE_AGE: Duration = Duration::from_millis(500);
/// Resends stop when they pass this share of what is sent (str0m's default).
const RTX_RATIO_CAP: Option<f32> = Some(0.15);
/// The playout delay each frame asks for (RTP header extension `playout-delay`, in 10 ms
/// units), where the viewer's offer has it (Chromium's does). A minimum of 0 and a maximum
/// of at most 500 ms puts Chromium in its low-latency rendering mode: a frame is shown as
/// soon as it is decoded instead of at a smoothed render time. Its jitter buffer still
/// grows with the network's jitter, up to the maximum.
const PLAYOUT_DELAY_MIN_10MS: u64 = 0;
const PLAYOUT_DELAY_MAX_10MS: u64 = 50;

#[derive(Debug)]
pub(crate) struct ViewerTx {
    mid: Mid,
    /// The viewer's H.264 payload type (its offer may number it differently from ours).
    pt: Pt,
    next_seq: SeqNo,
    /// The send stream's RTX cache is sized (on the first write: the stream exists then).
    rtx_cache_sized: bool,
    /// The SSRC retransmissions go out on, learnt on the first write.
    rtx_ssrc: Option<u32>,
}

impl ViewerTx {
    pub(crate) fn new(mid: Mid, pt: Pt) -> Self {
        ViewerTx {
            mid,
            pt,
            // str0m's default: random, in the lower half so SRTP's rollover counter stays 0
            // for a while.
            next_seq: SeqNo::default(),
            rtx_cache_sized: false,
            rtx_ssrc: None,
        }
    }

    pub(crate) fn rtx_ssrc(&self) -> Option<u32> {
        self.rtx_ssrc
    }

    /// Queue one frame's packets; the caller then runs the `Rtc`'s timeout and drains it.
    /// Returns false if the viewer has no send stream (nothing was queued).
    pub(crate) fn write(&mut self, rtc: &mut Rtc, frame: &FramePackets) -> bool {
        self.write_at(rtc, frame, frame.rtp_time, frame.wallclock)
    }

    /// [`Self::write`], stamped with another RTP time and wall clock (a replayed frame).
    pub(crate) fn write_at(
        &mut self,
        rtc: &mut Rtc,
        frame: &FramePackets,
        rtp_time: u32,
        wallclock: Instant,
    ) -> bool {
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return false;
        };
        if !self.rtx_cache_sized {
            stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, RTX_RATIO_CAP);
            self.rtx_cache_sized = true;
            self.rtx_ssrc = stream.rtx().map(|s| *s);
        }
        let last = frame.payloads.len().saturating_sub(1);
        for (i, payload) in frame.payloads.iter().enumerate() {
            let mut write = RtpWrite::new(
                self.pt,
                self.next_seq.inc(),
                rtp_time,
                wallclock,
                Arc::clone(payload),
            )
            // The marker closes the access unit: decoders render on it.
            .marker(i == last)
            // Kept in str0m's send buffer so the viewer's NACKs are answered with RTX.
            .nackable(true);
            if i == 0 || i == last {
                // Chromium takes a frame's playout delay from its first packet, str0m from
                // its last.
                write = write.ext_vals(playout_delay());
            }
            stream.write_rtp(write);
        }
        true
    }
}

fn playout_delay() -> ExtensionValues {
    ExtensionValues {
        play_delay_min: Some(MediaTime::from_hundredths(PLAYOUT_DELAY_MIN_10MS)),
        play_delay_max: Some(MediaTime::from_hundredths(PLAYOUT_DELAY_MAX_10MS)),
        ..ExtensionValues::default()
    }
}
