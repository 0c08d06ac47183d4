//! The peer table: every peer connection's `Rtc` and the little the core keeps beside it,
//! and which remote address belongs to which peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::media::Mid;
use str0m::{Input, Rtc};

use super::camera_stats::SentCounters;
use super::membership::Role;
use super::viewer_tx::ViewerTx;
use crate::PeerId;

/// A peer whose ICE+DTLS never come up is given up on after this long (str0m's own ICE
/// timeout only runs once checks have started).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One peer connection as the core holds it.
pub(super) struct Peer {
    pub(super) rtc: Rtc,
    pub(super) role: Role,
    /// A viewer's send side, once its m-line is known.
    pub(super) tx: Option<ViewerTx>,
    /// Its open `control` data channel.
    pub(super) control: Option<ChannelId>,
    /// ICE+DTLS came up at least once.
    pub(super) connected: bool,
    /// An ICE restart was answered and ICE is not back yet.
    pub(super) restarting: bool,
    pub(super) created: Instant,
    /// When str0m next wants `Input::Timeout`.
    pub(super) next_timeout: Instant,
    /// NACKs per m-line, as str0m last reported them (running totals): a publisher's
    /// that we sent, a viewer's that we received.
    pub(super) nacks_reported: Vec<(Mid, u64)>,
    /// A viewer's: what it was sent (see `camera_stats`).
    pub(super) sent: SentCounters,
    /// A viewer's first frame was written to it (and its time to it recorded).
    pub(super) first_frame_sent: bool,
    /// A publisher's last H.264 sequence parameter set (see `SfuEvent::SequenceParameters`).
    pub(super) sps: Option<Vec<u8>>,
}

impl Peer {
    pub(super) fn new(rtc: Rtc, role: Role, now: Instant) -> Self {
        Peer {
            rtc,
            role,
            tx: None,
            control: None,
            connected: false,
            restarting: false,
            created: now,
            next_timeout: now,
            nacks_reported: Vec::new(),
            sent: SentCounters::default(),
            first_frame_sent: false,
            sps: None,
        }
    }

    /// How many of a running total of NACKs on `mid` are new since its last report.
    pub(super) fn nacks_since_last_report(&mut self, mid: Mid, total: u64) -> u64 {
        let slot = match self.nacks_reported.iter_mut().find(|(m, _)| *m == mid) {
            Some((_, reported)) => reported,
            None => {
                self.nacks_reported.push((mid, 0));
                &mut self.nacks_reported.last_mut().unwrap().1
            }
        };
        let new = total.saturating_sub(*slot);
        *slot = (*slot).max(total);
        new
    }

    /// The earliest instant this peer needs attention.
    pub(super) fn deadline(&self) -> Instant {
        if self.connected {
            self.next_timeout
        } else {
            self.next_timeout.min(self.created + CONNECT_TIMEOUT)
        }
    }
}

/// Every live peer by id, new ids, and a cache of who sends from which address.
pub(super) struct PeerTable {
    peers: HashMap<PeerId, Peer>,
    next_id: u64,
    /// Which peer a remote address belongs to, so most datagrams skip the `accepts` scan.
    by_source: HashMap<SocketAddr, PeerId>,
}

impl PeerTable {
    pub(super) fn new() -> Self {
        PeerTable {
            peers: HashMap::new(),
            next_id: 1,
            by_source: HashMap::new(),
        }
    }

    /// A fresh id, never given before: for a new peer, or an API caller's ticket.
    pub(super) fn new_id(&mut self) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Add a peer under a fresh id.
    pub(super) fn insert(&mut self, peer: Peer) -> PeerId {
        let id = self.new_id();
        self.peers.insert(id, peer);
        id
    }

    pub(super) fn get(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(&id)
    }

    /// The peers named in `sorted_ids`, each borrowed mutably, all at once.
    pub(super) fn many_mut(&mut self, sorted_ids: &[PeerId]) -> Vec<(PeerId, &mut Peer)> {
        self.peers
            .iter_mut()
            .filter(|(id, _)| sorted_ids.binary_search(id).is_ok())
            .map(|(id, peer)| (*id, peer))
            .collect()
    }

    pub(super) fn remove(&mut self, id: PeerId) -> Option<Peer> {
        let peer = self.peers.remove(&id)?;
        self.by_source.retain(|_, p| *p != id);
        Some(peer)
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers.iter().map(|(id, p)| (*id, p))
    }

    pub(super) fn ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Peers whose deadline has come, into `out` (cleared first).
    pub(super) fn due(&self, now: Instant, out: &mut Vec<PeerId>) {
        out.clear();
        out.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(id, _)| *id),
        );
    }

    /// The earliest deadline of any peer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.peers.values().map(Peer::deadline).min()
    }

    /// The peer that last sent from `source`.
    pub(super) fn by_source(&self, source: SocketAddr) -> Option<PeerId> {
        self.by_source.get(&source).copied()
    }

    /// The peer a received datagram belongs to: the one that sent from `source` last if
    /// it still accepts it, else the first that does (remembered for next time).
    pub(super) fn find(&mut self, source: SocketAddr, input: &Input) -> Option<PeerId> {
        let cached = self
            .by_source
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(input)));
        if cached.is_some() {
            return cached;
        }
        let id = self
            .peers
            .iter()
            .find(|(_, p)| p.rtc.accepts(input))
            .map(|(id, _)| *id)?;
        self.by_source.insert(source, id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nacks_are_counted_once_per_m_line_from_running_totals() {
        let now = Instant::now();
        let mut peer = Peer::new(Rtc::builder().build(now), Role::Publisher, now);
        let (video, vp8) = (Mid::from("0"), Mid::from("1"));
        assert_eq!(peer.nacks_since_last_report(video, 3), 3);
        assert_eq!(peer.nacks_since_last_report(video, 3), 0, "no news");
        assert_eq!(peer.nacks_since_last_report(vp8, 2), 2, "its own total");
        assert_eq!(peer.nacks_since_last_report(video, 7), 4);
        // A total that goes back (a stream replaced) counts nothing and does not double
        // count when it climbs again past the old total.
        assert_eq!(peer.nacks_since_last_report(vp8, 1), 0);
        assert_eq!(peer.nacks_since_last_report(vp8, 3), 1);
    }
}
