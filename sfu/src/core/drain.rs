//! Polling one `Rtc` until it has nothing more to say, into outputs the caller lends: the
//! core's own ([`super::Core::drain`]), or a fan-out worker's share (`fan_out`), so the same
//! code runs on the core's thread and on the workers.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::net::Protocol;
use str0m::{Event, Input, Output};

use super::membership::Role;
use super::peers::Peer;
use super::transmit::Transmits;
use crate::PeerId;

/// Where draining puts what an `Rtc` produced.
pub(super) struct Sink<'a> {
    pub(super) transmits: &'a mut Transmits,
    /// Events the core acts on once no `Rtc` is borrowed (`Core::settle`).
    pub(super) queue: &'a mut VecDeque<(PeerId, Event)>,
    /// Peers to remove, with the reason.
    pub(super) dead: &'a mut Vec<(PeerId, String)>,
    pub(super) packets_forwarded: &'a mut u64,
    pub(super) nacks_sent: &'a mut u64,
}

/// Run str0m's timeout on a peer at `now`, so what was just queued on it (RTP, data channel
/// writes) leaves now rather than at its next timeout; then drain it.
pub(super) fn poke(id: PeerId, peer: &mut Peer, now: Instant, sink: &mut Sink<'_>) {
    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
        peer.rtc.disconnect();
        sink.dead.push((id, format!("rtc error: {e}")));
    }
    drain(id, peer, sink);
}

/// Poll one `Rtc` until it has nothing more to say.
pub(super) fn drain(id: PeerId, peer: &mut Peer, sink: &mut Sink<'_>) {
    let viewer = peer.role == Role::Viewer;
    let rtx_ssrc = peer.tx.as_ref().and_then(|tx| tx.rtx_ssrc());
    loop {
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                peer.next_timeout = t;
                break;
            }
            Ok(Output::Transmit(t)) => {
                if viewer && is_rtp(&t.contents) {
                    *sink.packets_forwarded += 1;
                    peer.sent.count(&t.contents, rtx_ssrc);
                }
                match t.proto {
                    Protocol::Udp => sink.transmits.push(t.source, t.destination, &t.contents),
                    _ => sink
                        .transmits
                        .push_tcp(t.source, t.destination, &t.contents),
                }
            }
            Ok(Output::Event(Event::MediaIngressStats(s))) => {
                *sink.nacks_sent += peer.nacks_since_last_report(s.mid, s.nacks);
            }
            Ok(Output::Event(Event::MediaEgressStats(s))) => {
                peer.sent.nacks_received += peer.nacks_since_last_report(s.mid, s.nacks);
            }
            Ok(Output::Event(e)) => {
                if is_interesting(&e) {
                    sink.queue.push_back((id, e));
                }
            }
            Err(e) => {
                peer.rtc.disconnect();
                sink.dead.push((id, format!("rtc error: {e}")));
                break;
            }
        }
    }
    if !peer.rtc.is_alive() {
        sink.dead.push((id, "connection closed".into()));
    }
}

/// SRTP media (not RTCP, STUN or DTLS): RTP version 2, payload type outside the RTCP range.
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 2 && (128..192).contains(&datagram[0]) && {
        let pt = datagram[1] & 0x7f;
        !(64..96).contains(&pt)
    }
}

/// Events the core acts on; everything else is dropped here.
fn is_interesting(e: &Event) -> bool {
    matches!(
        e,
        Event::Connected
            | Event::IceConnectionStateChange(_)
            | Event::MediaAdded(_)
            | Event::MediaData(_)
            | Event::KeyframeRequest(_)
            | Event::Closed
            | Event::ChannelOpen(..)
            | Event::ChannelData(_)
            | Event::ChannelClose(_)
    )
}

#[cfg(test)]
mod rtp_tests {
    use super::is_rtp;

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        assert!(is_rtp(&[0x80, 108, 0, 1]));
        assert!(is_rtp(&[0x80, 0x80 | 108, 0, 1]), "marker bit");
        assert!(!is_rtp(&[0x80, 200, 0, 1]), "sender report");
        assert!(!is_rtp(&[0x81, 206, 0, 1]), "PLI");
        assert!(!is_rtp(&[0x00, 0x01, 0, 0]), "STUN");
        assert!(!is_rtp(&[22, 0xfe, 0xfd]), "DTLS");
        assert!(!is_rtp(&[0x80]));
    }
}
