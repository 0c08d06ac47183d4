//! Sightline SFU: forwards H.264 from one publisher per camera to any number of viewers,
//! without decoding, over one UDP port, on str0m (ice-lite).
//!
//! The public surface is [`Sfu::start`] and the cloneable [`SfuHandle`]. Signaling hands
//! the SFU SDP offers and trickled candidates; the SFU answers and runs the media.
//!
//! Peers that add a data channel labelled `control` to their offer take part in camera
//! control (the protocol is `sightline_protocol::control`): the SFU relays viewers' commands
//! to the camera's publisher (tagged with the viewer's id), the publisher's replies back to
//! the one viewer, its broadcasts to all, and enforces each viewer's [`ViewerAccess`] and
//! [`RateLimit`]. It reads only a command's envelope and type (who may send it, whether the
//! SFU answers it itself: pause and resume); the publisher checks the settings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

mod command;
mod control_channel;
mod control_relay;
mod control_wire;
mod feed;
mod forward;
mod keyframe;
mod media_loop;
mod negotiate;
mod offer;
mod peer;
mod rate_limit;
mod routing;
mod rtc_config;
mod send_batch;
mod sockets;
mod viewer_tx;

use command::Command;
pub use rate_limit::RateLimit;

/// Identifies one peer connection (a publisher's or a viewer's) inside the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

/// `peer-7`, as [`PeerId`] displays (control messages name viewers so).
impl std::str::FromStr for PeerId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("peer-").unwrap_or("x").parse().map(PeerId)
    }
}

/// What a viewer may do on its control channel; decided by signaling per viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerAccess {
    /// Watch, read the camera's state, pause/resume its own video. Commands that change the
    /// camera are refused with `forbidden`.
    ViewOnly,
    /// Everything, including changing the camera's settings.
    Control,
}

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// UDP port for all media. 0 picks a free port (tests).
    pub udp_port: u16,
    /// Addresses to bind (one socket per address, all on `udp_port`) and advertise as host
    /// candidates. Empty means every local IPv4 interface address, loopback included.
    pub bind_ips: Vec<IpAddr>,
    /// An address to advertise in addition (a 1:1 NAT's public address). Packets to it arrive
    /// on the first non-loopback socket.
    pub public_ip: Option<IpAddr>,
    /// Least time between two keyframe requests sent to one publisher: many viewers joining
    /// at once cause one request.
    pub keyframe_request_interval: Duration,
    /// Control messages each viewer may send.
    pub control_rate_limit: RateLimit,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            udp_port: 0,
            bind_ips: Vec::new(),
            public_ip: None,
            keyframe_request_interval: Duration::from_millis(250),
            control_rate_limit: RateLimit::default(),
        }
    }
}

/// The SDP answer for a new peer, and the candidates it advertises.
#[derive(Debug, Clone)]
pub struct PeerAnswer {
    pub peer: PeerId,
    pub sdp: String,
    /// The SFU's host candidates as `candidate:...` strings (also inside `sdp`), so signaling
    /// can trickle them too.
    pub candidates: Vec<String>,
}

/// Counters for tests, `/api/stats` and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SfuStats {
    /// Live `Rtc` instances.
    pub peers: usize,
    pub publishers: usize,
    pub viewers: usize,
    /// Media tracks (m-lines carrying video) across all peers.
    pub tracks: usize,
    /// Video frames received from publishers (whether or not anyone watches): an on-demand
    /// publisher that is idle sends none.
    pub frames_received: u64,
    /// Video frames written to viewers.
    pub frames_forwarded: u64,
    /// RTP packets sent to viewers (media and RTX).
    pub packets_forwarded: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests_sent: u64,
    /// Keyframe requests from viewers (PLI/FIR) received, before coalescing.
    pub keyframe_requests_received: u64,
}

/// Something the SFU tells signaling without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// The peer's media connected (ICE + DTLS up).
    PeerConnected { peer: PeerId },
    /// The peer was removed: ICE timed out, DTLS failed, or it was closed.
    PeerClosed { peer: PeerId, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    #[error("the SFU has stopped")]
    Stopped,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Entry point.
pub struct Sfu;

impl Sfu {
    /// Bind the UDP sockets and spawn the media loop on the current tokio runtime.
    /// The loop stops when the last [`SfuHandle`] is dropped.
    pub async fn start(config: SfuConfig) -> Result<SfuHandle, SfuError> {
        let sockets = sockets::Sockets::bind(&config)?;
        let addrs: Arc<[SocketAddr]> = sockets.local_addrs().into();
        let (commands, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let media_loop = media_loop::MediaLoop::new(sockets, &config, events.clone());
        tokio::spawn(media_loop.run(rx));
        tracing::info!(?addrs, "SFU started");
        Ok(SfuHandle {
            commands,
            events,
            addrs,
        })
    }
}

/// Cheap to clone; every method talks to the media loop.
#[derive(Clone)]
pub struct SfuHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<SfuEvent>,
    addrs: Arc<[SocketAddr]>,
}

impl SfuHandle {
    /// The addresses media arrives on (one per bound socket, all on one port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.to_vec()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SfuError::Stopped)?;
        answer.await.map_err(|_| SfuError::Stopped)
    }

    /// A publisher's offer (sendonly H.264 video) for `camera_id`. Viewers already subscribed
    /// to that camera start receiving its video once it connects. A publisher already on
    /// that camera is closed and replaced.
    pub async fn publish(&self, camera_id: &str, offer_sdp: &str) -> Result<PeerAnswer, SfuError> {
        self.ask(|reply| Command::Publish {
            camera: camera_id.to_owned(),
            offer: offer_sdp.to_owned(),
            reply,
        })
        .await?
    }

    /// A viewer's offer (recvonly video, optionally a `control` data channel) for
    /// `camera_id`. The camera need not be live yet. `access` says what the viewer may do on
    /// its control channel.
    pub async fn subscribe(
        &self,
        camera_id: &str,
        offer_sdp: &str,
        access: ViewerAccess,
    ) -> Result<PeerAnswer, SfuError> {
        self.ask(|reply| Command::Subscribe {
            camera: camera_id.to_owned(),
            offer: offer_sdp.to_owned(),
            access,
            reply,
        })
        .await?
    }

    /// A trickled candidate from the peer (`candidate:...`, `a=` prefix allowed). An empty
    /// string (end of candidates) and mDNS (`.local`) candidates are accepted and ignored:
    /// ice-lite learns the peer's address from its connectivity checks.
    pub async fn add_remote_candidate(
        &self,
        peer: PeerId,
        candidate: &str,
    ) -> Result<(), SfuError> {
        self.ask(|reply| Command::AddCandidate {
            peer,
            candidate: candidate.to_owned(),
            reply,
        })
        .await?
    }

    /// Remove a peer and everything it owns. Unknown peers are ignored.
    pub async fn close_peer(&self, peer: PeerId) {
        let _ = self.ask(|reply| Command::Close { peer, reply }).await;
    }

    /// Current counters; all zero once the SFU has stopped.
    pub async fn stats(&self) -> SfuStats {
        self.ask(|reply| Command::Stats { reply })
            .await
            .unwrap_or_default()
    }

    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        self.events.subscribe()
    }

    /// Close every peer, stop the media loop and wait until its UDP sockets are closed, so
    /// a restarted server can bind the same port at once. Later calls on any clone fail
    /// with [`SfuError::Stopped`] or do nothing.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}
