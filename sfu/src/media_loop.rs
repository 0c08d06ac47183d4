//! The one task that owns every `Rtc` and every socket.
//!
//! Everything str0m does happens here, in one place, in order: datagrams in, timeouts,
//! commands from [`crate::SfuHandle`]. After each call on an `Rtc` its output is drained
//! until `Timeout` ([`MediaLoop::drain`]): transmits go straight to the socket, the few
//! events we care about are queued and handled once no `Rtc` is borrowed
//! ([`MediaLoop::settle`]), which is where frames fan out to viewers and control messages
//! are relayed (`control_channel`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::sync::{broadcast, mpsc};

use crate::command::Command;
use crate::control_relay::ControlRelay;
use crate::peer::{Peer, CONNECT_TIMEOUT};
use crate::routing::{Role, Routing};
use crate::rtc_config::rtc_config;
use crate::sockets::{Recv, Sockets};
use crate::{PeerId, SfuConfig, SfuEvent, SfuStats};

/// Upper bound on one wait, so a far-away str0m timeout never parks the loop for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Largest datagram we read (str0m's own limit is 2000).
const RECV_BUF: usize = 2048;
/// Datagrams taken in one loop turn after the first, so timers and commands still get
/// their turn under a flood.
const MAX_BURST: usize = 64;

pub(crate) struct MediaLoop {
    pub(crate) sockets: Sockets,
    /// Per role (see `rtc_config`): publishers in frame mode, viewers in RTP mode without
    /// congestion-control extensions.
    pub(crate) publisher_config: RtcConfig,
    pub(crate) viewer_config: RtcConfig,
    pub(crate) peers: HashMap<PeerId, Peer>,
    pub(crate) routing: Routing,
    /// Camera control over data channels: permissions, rate limits, routing, caches.
    pub(crate) control: ControlRelay,
    pub(crate) events: broadcast::Sender<SfuEvent>,
    /// Only the counter fields are used; the gauges are computed in `stats()`.
    pub(crate) counters: SfuStats,
    pub(crate) next_peer: u64,
    /// Events drained from an `Rtc`, handled once it is no longer borrowed.
    pub(crate) queue: VecDeque<(PeerId, Event)>,
    /// Reused buffers, so the per-frame path does not allocate.
    pub(crate) targets: Vec<(PeerId, Mid)>,
    scratch_ids: Vec<PeerId>,
    /// Which peer a remote address belongs to, so most datagrams skip the `accepts` scan.
    by_source: HashMap<SocketAddr, PeerId>,
    /// Peers to remove, with the reason, once the current step is done.
    pub(crate) dead: Vec<(PeerId, String)>,
}

impl MediaLoop {
    pub(crate) fn new(
        sockets: Sockets,
        config: &SfuConfig,
        events: broadcast::Sender<SfuEvent>,
    ) -> Self {
        MediaLoop {
            sockets,
            publisher_config: rtc_config(Role::Publisher),
            viewer_config: rtc_config(Role::Viewer),
            peers: HashMap::new(),
            routing: Routing::new(config.keyframe_request_interval),
            control: ControlRelay::new(config.control_rate_limit),
            events,
            counters: SfuStats::default(),
            next_peer: 1,
            queue: VecDeque::new(),
            targets: Vec::new(),
            scratch_ids: Vec::new(),
            by_source: HashMap::new(),
            dead: Vec::new(),
        }
    }

    /// Runs until every [`crate::SfuHandle`] is dropped.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; RECV_BUF];
        let mut stopped_by = None;
        loop {
            let now = Instant::now();
            self.service_timers(now);
            self.settle();
            // Everything this turn produced leaves in as few syscalls as possible, and
            // before the loop waits.
            self.sockets.flush();
            let deadline = self.next_deadline(now).min(now + MAX_SLEEP);

            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        stopped_by = Some(reply);
                        break;
                    }
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                res = self.sockets.recv(&mut buf) => {
                    self.take_datagram(res, &buf);
                    // Take the rest of a burst now: one loop turn (timer scan, select,
                    // flush) per burst rather than per datagram.
                    for _ in 0..MAX_BURST {
                        let Some(res) = self.sockets.try_recv(&mut buf) else {
                            break;
                        };
                        self.settle();
                        self.take_datagram(res, &buf);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.settle();
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.close(id, "SFU stopped");
        }
        self.sockets.flush();
        // Release the sockets before saying so: a restarted server binds the same port.
        drop(self);
        if let Some(reply) = stopped_by {
            let _ = reply.send(());
        }
    }

    fn take_datagram(&mut self, res: Recv, buf: &[u8]) {
        match res {
            Ok((idx, len, source)) => self.handle_datagram(idx, source, &buf[..len]),
            // ICMP errors (port unreachable from a viewer that left) surface here.
            Err((idx, e)) => tracing::debug!(socket = idx, "udp recv: {e}"),
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let peers = self.peers.values().map(Peer::deadline).min();
        let keyframes = self.routing.next_deadline(now);
        [peers, keyframes]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + MAX_SLEEP)
    }

    /// Feed due timeouts to every peer that wants one, give up on peers that never
    /// connected, and send due keyframe requests.
    fn service_timers(&mut self, now: Instant) {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        ids.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(id, _)| *id),
        );
        for &id in &ids {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if !peer.connected && now >= peer.created + CONNECT_TIMEOUT {
                self.dead.push((id, "connect timeout".into()));
                continue;
            }
            if peer.next_timeout <= now {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    peer.rtc.disconnect();
                    self.dead.push((id, format!("rtc error: {e}")));
                }
                self.drain(id);
            }
        }
        self.scratch_ids = ids;

        if self.routing.next_deadline(now).is_some_and(|d| d <= now) {
            let mut due = std::mem::take(&mut self.targets);
            self.routing.due_keyframe_requests(now, &mut due);
            for &(publisher, mid) in &due {
                self.request_keyframe(publisher, mid);
            }
            self.targets = due;
        }
    }

    /// Ask a publisher for a keyframe (PLI, FIR if only that was negotiated).
    fn request_keyframe(&mut self, publisher: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if let Some(mut writer) = peer.rtc.writer(mid) {
            let kind = if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                KeyframeRequestKind::Pli
            } else {
                KeyframeRequestKind::Fir
            };
            // Fails until the publisher's first RTP packet told str0m its SSRC; the gate
            // retries after the interval.
            match writer.request_keyframe(None, kind) {
                Ok(()) => self.counters.keyframe_requests_sent += 1,
                Err(e) => tracing::debug!(%publisher, "keyframe request not sent: {e}"),
            }
        }
        self.drain(publisher);
    }

    /// One datagram from the network: find its peer and hand it over.
    fn handle_datagram(&mut self, socket: usize, source: SocketAddr, bytes: &[u8]) {
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.sockets.addr(socket),
                contents,
            },
        );
        let cached = self
            .by_source
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match cached {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
                else {
                    // Common: STUN from a peer whose answer is still on its way.
                    return;
                };
                self.by_source.insert(source, id);
                id
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            peer.rtc.disconnect();
            self.dead.push((id, format!("rtc error: {e}")));
        }
        self.drain(id);
    }

    /// Poll one `Rtc` until it has nothing more to say.
    pub(crate) fn drain(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let viewer = peer.role == Role::Viewer;
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    peer.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if viewer && is_rtp(&t.contents) {
                        self.counters.packets_forwarded += 1;
                    }
                    self.sockets.send(t.source, t.destination, &t.contents);
                }
                Ok(Output::Event(e)) => {
                    if is_interesting(&e) {
                        self.queue.push_back((id, e));
                    }
                }
                Err(e) => {
                    peer.rtc.disconnect();
                    self.dead.push((id, format!("rtc error: {e}")));
                    break;
                }
            }
        }
        if !peer.rtc.is_alive() {
            self.dead.push((id, "connection closed".into()));
        }
    }

    /// Handle queued events (which may queue more), then remove dead peers.
    pub(crate) fn settle(&mut self) {
        while let Some((id, event)) = self.queue.pop_front() {
            self.handle_event(id, event);
        }
        while let Some((id, reason)) = self.dead.pop() {
            self.remove_peer(id, reason);
        }
    }

    fn handle_event(&mut self, id: PeerId, event: Event) {
        match event {
            Event::MediaData(data) => self.forward(id, data),
            Event::Connected => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                if !peer.connected {
                    peer.connected = true;
                    self.routing.peer_connected(id);
                    let _ = self.events.send(SfuEvent::PeerConnected { peer: id });
                }
            }
            // Before the first connection str0m may pass through Disconnected while
            // trickled candidates come and go; CONNECT_TIMEOUT covers that phase.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.peers.get(&id).is_some_and(|p| p.connected) =>
            {
                self.dead.push((id, "ICE disconnected".into()));
            }
            Event::KeyframeRequest(_) if self.routing.role(id) == Some(Role::Viewer) => {
                self.counters.keyframe_requests_received += 1;
                self.routing.keyframe_wanted_by(id);
            }
            Event::Closed => self.dead.push((id, "closed by remote".into())),
            Event::ChannelOpen(channel, label) => self.control_channel_open(id, channel, &label),
            Event::ChannelData(data) => self.control_channel_data(id, data),
            Event::ChannelClose(channel) => self.control_channel_closed(id, channel),
            _ => {}
        }
    }

    /// Remove a peer at once: its routes, its queued events, and announce it.
    pub(crate) fn remove_peer(&mut self, id: PeerId, reason: String) -> bool {
        if self.peers.remove(&id).is_none() {
            return false;
        }
        self.routing.remove_peer(id);
        self.control.remove_peer(id);
        self.by_source.retain(|_, p| *p != id);
        self.queue.retain(|(p, _)| *p != id);
        tracing::info!(peer = %id, %reason, "peer removed");
        let _ = self.events.send(SfuEvent::PeerClosed { peer: id, reason });
        true
    }

    /// Close gracefully (DTLS close_notify, RTCP BYE go out now) then remove.
    pub(crate) fn close(&mut self, id: PeerId, reason: &str) {
        if let Some(peer) = self.peers.get_mut(&id) {
            let _ = peer.rtc.close();
            self.drain(id);
        }
        self.remove_peer(id, reason.to_owned());
    }
}

/// SRTP media (not RTCP, STUN or DTLS): RTP version 2, payload type outside the RTCP range.
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 2 && (128..192).contains(&datagram[0]) && {
        let pt = datagram[1] & 0x7f;
        !(64..96).contains(&pt)
    }
}

/// Events the loop acts on; everything else is dropped in `drain`.
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
mod tests {
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
