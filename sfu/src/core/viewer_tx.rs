//! A viewer's send side: shared, ready-made RTP payloads go into the viewer's own stream.
//!
//! Viewers' `Rtc`s run in str0m's RTP mode, so str0m does not packetise again: it adds the
//! viewer's SSRC and header extensions, encrypts, and keeps each packet in its send buffer
//! to answer NACKs with RTX. The sequence numbers are ours, one continuous series per viewer
//! whatever happens to the publisher.

use std::sync::Arc;

use str0m::media::{Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::Rtc;

use super::feed::FramePackets;

#[derive(Debug)]
pub(crate) struct ViewerTx {
    mid: Mid,
    /// The viewer's H.264 payload type (its offer may number it differently from ours).
    pt: Pt,
    next_seq: SeqNo,
}

impl ViewerTx {
    pub(crate) fn new(mid: Mid, pt: Pt) -> Self {
        ViewerTx {
            mid,
            pt,
            // str0m's default: random, in the lower half so SRTP's rollover counter stays 0
            // for a while.
            next_seq: SeqNo::default(),
        }
    }

    /// Queue one frame's packets; the caller then runs the `Rtc`'s timeout and drains it.
    /// Returns false if the viewer has no send stream (nothing was queued).
    pub(crate) fn write(&mut self, rtc: &mut Rtc, frame: &FramePackets) -> bool {
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return false;
        };
        let last = frame.payloads.len().saturating_sub(1);
        for (i, payload) in frame.payloads.iter().enumerate() {
            let write = RtpWrite::new(
                self.pt,
                self.next_seq.inc(),
                frame.rtp_time,
                frame.wallclock,
                Arc::clone(payload),
            )
            // The marker closes the access unit: decoders render on it.
            .marker(i == last)
            // Kept in str0m's send buffer so the viewer's NACKs are answered with RTX.
            .nackable(true);
            stream.write_rtp(write);
        }
        true
    }
}
