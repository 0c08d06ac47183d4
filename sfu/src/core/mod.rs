//! The SFU's core: a sans-I/O state machine that owns every `Rtc` and all media and control
//! state, and no sockets, tasks, channels or clocks. (Its one helper is a pool of worker
//! threads that a frame's fan-out is shared over, `fan_out`: still no I/O, and each call
//! returns with the work done.)
//!
//! Everything str0m does happens here, in one place, in order. The caller (the driver, or
//! a test) feeds it inputs with the time they happen at and collects what comes out:
//!
//! * in: [`Core::handle_datagram`], [`Core::handle_timeout`], plain commands
//!   ([`Core::publish`], [`Core::subscribe`], [`Core::add_remote_candidate`],
//!   [`Core::close_peer`], [`Core::stats`]) that return their result directly, and an API
//!   caller's control command ([`Core::control`], which returns a ticket, and
//!   [`Core::forget_control`] when its caller stops waiting);
//! * out: [`Core::transmits`] (datagrams to send, queued in one reused buffer),
//!   [`Core::poll_event`] ([`SfuEvent`]s), [`Core::poll_api_reply`] (an API caller's
//!   answer, by ticket), [`Core::poll_watch`] (frames and control text for watchers, the
//!   viewers outside WebRTC) and [`Core::poll_timeout`] (when to call
//!   [`Core::handle_timeout`] next).
//!
//! After each call on an `Rtc` its output is drained until `Timeout` ([`Core::drain`]):
//! transmits are queued, the few events we care about are queued and handled once no `Rtc`
//! is borrowed ([`Core::settle`]), which is where frames fan out to viewers (`forward`) and
//! control messages are relayed (`control`). Every input ends settled.
//!
//! Files by concept: `peers` (the peer table), `negotiate` (offers, candidates), `drain`
//! (an `Rtc`'s output), `forward` (frame fan-out) and `fan_out` (the same over worker
//! threads), `watch` (viewers without an `Rtc`), `control` (data-channel and API glue to
//! the relay), `timers` (timeouts and keyframe requests); plain state: `membership` (one
//! table of who belongs to which camera, read by its `routing` for media and its
//! `control_relay` for control), `keyframe`, `feed` and its `gop_cache`. A viewer's control
//! message is judged by the protocol's relay rules (`sightline_protocol::control::relay`),
//! shared with publishers serving direct viewers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, RtcConfig};

use crate::{PeerId, SfuEvent, SfuStats, VideoCodec, WatchMessage};
use membership::control_relay::Clock;
use membership::{Membership, Role};
use peers::PeerTable;
use rtc_config::rtc_config;

mod camera_stats;
mod control;
mod control_wire;
mod drain;
mod fan_out;
mod feed;
mod forward;
mod gop_cache;
mod keyframe;
mod membership;
mod negotiate;
mod offer;
mod peers;
mod rtc_config;
#[cfg(test)]
mod tests;
mod timers;
mod transmit;
mod viewer_tx;
mod watch;

pub use sightline_protocol::control::RateLimit;
pub(crate) use transmit::{Queued, Transmits};

/// What the core is built from: addresses and limits, no sockets.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// Each socket's local address, by socket index: `handle_datagram` names the socket a
    /// datagram arrived on by this index, and each transmit the socket it leaves from.
    pub(crate) local_addrs: Vec<SocketAddr>,
    /// A 1:1 NAT public address, advertised too, and the socket index its traffic uses.
    pub(crate) public: Option<(SocketAddr, usize)>,
    /// Addresses advertised as passive ICE-TCP candidates (RFC 6544): each listener's,
    /// then the public one. Empty: no ICE-TCP.
    pub(crate) tcp_addrs: Vec<SocketAddr>,
    pub(crate) keyframe_request_interval: Duration,
    pub(crate) control_rate_limit: RateLimit,
    /// Threads a frame's viewers are shared out to (see `fan_out`); 0 or 1: the core's own.
    pub(crate) fan_out_threads: usize,
}

pub(crate) struct Core {
    local_addrs: Vec<SocketAddr>,
    /// Host candidates for every new peer: each socket's address, then the public one.
    advertised: Vec<SocketAddr>,
    /// Passive TCP host candidates for every new peer.
    advertised_tcp: Vec<SocketAddr>,
    /// Per role (see `rtc_config`): publishers in frame mode with both codecs, viewers in
    /// RTP mode without congestion-control extensions, one config per codec (by
    /// [`crate::VideoCodec::index`]) so a viewer's answer names only the codec it is sent.
    publisher_config: RtcConfig,
    viewer_configs: [RtcConfig; 2],
    peers: PeerTable,
    /// Who belongs to which camera, with each side's state: media routing (keyframe gate,
    /// feed) and camera control (permissions, rate limits, caches).
    members: Membership,
    /// Only the counter fields are used; the gauges are computed in `stats()`.
    counters: SfuStats,
    /// Per camera id, never forgotten (see `camera_stats`).
    camera_counters: HashMap<String, crate::CameraStats>,
    /// Events drained from an `Rtc`, handled once it is no longer borrowed.
    queue: VecDeque<(PeerId, Event)>,
    /// Reused buffers, so the per-frame path does not allocate.
    targets: Vec<(PeerId, Mid)>,
    scratch_ids: Vec<PeerId>,
    sent_ids: Vec<PeerId>,
    /// Worker threads a frame's viewers are shared out to.
    fan_out: fan_out::FanOut,
    /// Peers to remove, with the reason, once the current step is done.
    dead: Vec<(PeerId, String)>,
    transmits: Transmits,
    events: VecDeque<SfuEvent>,
    /// Answers to API callers' control commands, by ticket.
    api_replies: VecDeque<(PeerId, String)>,
    /// Viewers without an `Rtc` (see `watch`), and what is queued for them.
    watchers: HashSet<PeerId>,
    watch_out: VecDeque<(PeerId, WatchMessage)>,
    /// When each frame forwarded since the last [`Core::frames_sent`] came in whole.
    frames_in: Vec<Instant>,
    /// The time of the latest input.
    now: Instant,
    /// An instant and the Unix time (ms) it corresponds to: control replies' timestamps.
    epoch: (Instant, u64),
}

impl Core {
    /// `now` and `unix_ms` are the same moment on the monotonic and the wall clock.
    pub(crate) fn new(config: CoreConfig, now: Instant, unix_ms: u64) -> Self {
        let advertised = config
            .local_addrs
            .iter()
            .copied()
            .chain(config.public.map(|(a, _)| a))
            .collect();
        let cert = rtc_config::server_certificate();
        let fan_out =
            fan_out::FanOut::new(config.fan_out_threads, &config.local_addrs, config.public);
        Core {
            transmits: Transmits::new(config.local_addrs.clone(), config.public)
                .retaining(fan_out::retained_per_queue(fan_out.workers())),
            local_addrs: config.local_addrs,
            advertised,
            advertised_tcp: config.tcp_addrs,
            publisher_config: rtc_config(Role::Publisher, &VideoCodec::ALL, cert.as_ref()),
            viewer_configs: VideoCodec::ALL.map(|c| rtc_config(Role::Viewer, &[c], cert.as_ref())),
            peers: PeerTable::new(),
            members: Membership::new(config.keyframe_request_interval, config.control_rate_limit),
            counters: SfuStats::default(),
            camera_counters: HashMap::new(),
            queue: VecDeque::new(),
            targets: Vec::new(),
            scratch_ids: Vec::new(),
            sent_ids: Vec::new(),
            fan_out,
            dead: Vec::new(),
            events: VecDeque::new(),
            api_replies: VecDeque::new(),
            watchers: HashSet::new(),
            watch_out: VecDeque::new(),
            frames_in: Vec::new(),
            now,
            epoch: (now, unix_ms),
        }
    }

    /// Datagrams to send. The caller sends them and then [`Transmits::clear`]s the queue.
    pub(crate) fn transmits(&mut self) -> &mut Transmits {
        &mut self.transmits
    }

    /// The caller has sent every transmit, at `at`: the frames forwarded since the last
    /// call have left, and their dwell is recorded.
    pub(crate) fn frames_sent(&mut self, at: Instant) {
        for came_in in self.frames_in.drain(..) {
            self.counters
                .forward_dwell
                .0
                .record(at.saturating_duration_since(came_in));
        }
    }

    /// The next thing the SFU tells its user without being asked.
    pub(crate) fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    /// One datagram that arrived on socket `socket` (an index into the configured local
    /// addresses) from `source`: find its peer and hand it over.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        socket: usize,
        source: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(&destination) = self.local_addrs.get(socket) else {
            return;
        };
        self.receive(now, Protocol::Udp, source, destination, bytes);
    }

    /// One RFC 4571 frame from the ICE-TCP connection `remote` opened to our `local`
    /// listener address.
    pub(crate) fn handle_tcp_frame(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        self.receive(now, Protocol::Tcp, remote, local, bytes);
    }

    /// The ICE-TCP connection to `remote` could not take a packet (its send queue is
    /// full): the viewer on it lost part of a frame, so it waits for the next keyframe,
    /// which is asked for (coalesced with everyone else's).
    pub(crate) fn tcp_congested(&mut self, remote: SocketAddr) {
        self.counters.tcp_packets_dropped += 1;
        if let Some(id) = self.peers.by_source(remote) {
            self.members.restart_at_keyframe(id);
        }
    }

    /// The driver's count of open ICE-TCP connections, for [`Core::stats`].
    pub(crate) fn set_tcp_connections(&mut self, n: usize) {
        self.counters.tcp_connections = n;
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.now = now;
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        // Common miss: STUN from a peer whose answer is still on its way.
        if let Some(id) = self.peers.find(source, &input) {
            if let Some(peer) = self.peers.get_mut(id) {
                if let Err(e) = peer.rtc.handle_input(input) {
                    peer.rtc.disconnect();
                    self.dead.push((id, format!("rtc error: {e}")));
                }
            }
            self.drain(id);
        }
        self.settle();
    }

    /// Remove a peer and everything it owns. Unknown peers are ignored.
    pub(crate) fn close_peer(&mut self, peer: PeerId) {
        self.close(peer, "closed by signaling");
        self.settle();
    }

    /// Close every peer (the SFU stops).
    pub(crate) fn close_all(&mut self) {
        for id in self.peers.ids() {
            self.close(id, "SFU stopped");
        }
        self.settle();
    }

    pub(crate) fn stats(&self) -> SfuStats {
        let counts = self.members.counts();
        SfuStats {
            peers: self.peers.len(),
            publishers: counts.publishers,
            viewers: counts.viewers,
            tracks: counts.tracks,
            cameras: self.camera_stats(),
            control_commands: self.members.control_counts(),
            media_threads: self.fan_out.threads(),
            ..self.counters.clone()
        }
    }

    /// The control relay's clock at `now`.
    fn clock(&self) -> Clock {
        let (at, unix_ms) = self.epoch;
        Clock {
            at: self.now,
            unix_ms: unix_ms + self.now.saturating_duration_since(at).as_millis() as u64,
        }
    }

    /// The peer table and the core's own outputs, borrowed apart: to drain a peer into them.
    fn peers_and_sink(&mut self) -> (&mut PeerTable, drain::Sink<'_>) {
        let sink = drain::Sink {
            transmits: &mut self.transmits,
            queue: &mut self.queue,
            dead: &mut self.dead,
            packets_forwarded: &mut self.counters.packets_forwarded,
            nacks_sent: &mut self.counters.nacks_sent,
        };
        (&mut self.peers, sink)
    }

    /// See [`drain::poke`].
    fn poke(&mut self, id: PeerId) {
        let now = self.now;
        let (peers, mut sink) = self.peers_and_sink();
        if let Some(peer) = peers.get_mut(id) {
            drain::poke(id, peer, now, &mut sink);
        }
    }

    /// See [`drain::drain`].
    fn drain(&mut self, id: PeerId) {
        let (peers, mut sink) = self.peers_and_sink();
        if let Some(peer) = peers.get_mut(id) {
            drain::drain(id, peer, &mut sink);
        }
    }

    /// Handle queued events (which may queue more), then remove dead peers.
    fn settle(&mut self) {
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
                let Some(peer) = self.peers.get_mut(id) else {
                    return;
                };
                if !peer.connected {
                    peer.connected = true;
                    let replay = self.members.peer_connected(id, Some(self.now));
                    self.events.push_back(SfuEvent::PeerConnected { peer: id });
                    if let Some(frames) = replay {
                        self.replay(id, &frames);
                    }
                }
            }
            // Back after an ICE restart: frames sent while the path moved are lost, so the
            // viewer resumes at a keyframe, asked for now.
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                if let Some(peer) = self.peers.get_mut(id).filter(|p| p.restarting) {
                    peer.restarting = false;
                    self.members.restart_at_keyframe(id);
                }
            }
            // Before the first connection str0m may pass through Disconnected while
            // trickled candidates come and go; CONNECT_TIMEOUT covers that phase.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.peers.get(id).is_some_and(|p| p.connected) =>
            {
                self.dead.push((id, "ICE disconnected".into()));
            }
            Event::KeyframeRequest(_) if self.members.role(id) == Some(Role::Viewer) => {
                self.counters.keyframe_requests_received += 1;
                if let Some(camera) = self.camera_counters(id) {
                    camera.keyframe_requests_received += 1;
                }
                self.members.keyframe_wanted_by(id);
            }
            Event::Closed => self.dead.push((id, "closed by remote".into())),
            Event::ChannelOpen(channel, label) => self.control_channel_open(id, channel, &label),
            Event::ChannelData(data) => self.control_channel_data(id, data),
            Event::ChannelClose(channel) => self.control_channel_closed(id, channel),
            _ => {}
        }
    }

    /// Remove a peer at once: its routes, its queued events, and announce it.
    fn remove_peer(&mut self, id: PeerId, reason: String) -> bool {
        let Some(peer) = self.peers.remove(id) else {
            return false;
        };
        self.retire_counters(id, &peer);
        self.members.remove_peer(id);
        self.queue.retain(|(p, _)| *p != id);
        tracing::info!(peer = %id, %reason, "peer removed");
        self.events
            .push_back(SfuEvent::PeerClosed { peer: id, reason });
        true
    }

    /// Close gracefully (DTLS close_notify, RTCP BYE go out now) then remove.
    fn close(&mut self, id: PeerId, reason: &str) {
        if let Some(peer) = self.peers.get_mut(id) {
            let _ = peer.rtc.close();
            self.drain(id);
        }
        self.remove_peer(id, reason.to_owned());
    }
}
