//! New peers from SDP offers (publish, subscribe) and their trickled candidates.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::{Mid, Pt};
use str0m::net::TcpType;
use str0m::Candidate;

use super::membership::Role;
use super::offer::video_mids;
use super::peers::Peer;
use super::rtc_config::negotiated_h264;
use super::viewer_tx::ViewerTx;
use super::Core;
use crate::{PeerAnswer, PeerId, SfuError, ViewerAccess};

impl Core {
    /// A publisher's offer for `camera`; a publisher already on it is closed and replaced.
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        camera: &str,
        offer: &str,
    ) -> Result<PeerAnswer, SfuError> {
        self.now = now;
        let answer = self.add_peer(camera, offer, Role::Publisher, None);
        self.settle();
        answer
    }

    /// A viewer's offer for `camera` (which need not be live yet), with what it may do on
    /// its control channel.
    pub(crate) fn subscribe(
        &mut self,
        now: Instant,
        camera: &str,
        offer: &str,
        access: ViewerAccess,
    ) -> Result<PeerAnswer, SfuError> {
        self.now = now;
        let answer = self.add_peer(camera, offer, Role::Viewer, Some(access));
        self.settle();
        answer
    }

    /// A trickled candidate (see [`crate::SfuHandle::add_remote_candidate`]).
    pub(crate) fn add_remote_candidate(
        &mut self,
        now: Instant,
        id: PeerId,
        candidate: &str,
    ) -> Result<(), SfuError> {
        self.now = now;
        let result = self.add_candidate(id, candidate);
        self.settle();
        result
    }

    /// Build the peer's `Rtc` here, inside the loop, before the answer leaves: the remote
    /// may send STUN as soon as it has the answer, and it must find an `Rtc` to take it.
    /// An `m=application` section (the `control` data channel) is answered by str0m itself.
    fn add_peer(
        &mut self,
        camera: &str,
        offer: &str,
        role: Role,
        access: Option<ViewerAccess>,
    ) -> Result<PeerAnswer, SfuError> {
        let video_mids = video_mids(offer);
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let now = self.now;
        let config = match role {
            Role::Publisher => &self.publisher_config,
            Role::Viewer => &self.viewer_config,
        };
        let mut rtc = config.clone().build(now);
        let mut candidates = Vec::new();
        let udp = self.advertised.iter().map(|&a| Candidate::host(a, "udp"));
        // Passive: the viewer connects to us (RFC 6544). Lower priority than UDP, so a
        // viewer uses TCP only when UDP does not get through.
        let tcp = self.advertised_tcp.iter().map(|&a| {
            Candidate::builder()
                .tcp()
                .host(a)
                .tcptype(TcpType::Passive)
                .build()
        });
        for candidate in udp.chain(tcp) {
            match candidate {
                Ok(c) => {
                    if let Some(c) = rtc.add_local_candidate(c) {
                        candidates.push(c.to_sdp_string());
                    }
                }
                Err(e) => tracing::warn!("candidate not advertised: {e}"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;

        let id = self.peers.insert(Peer::new(rtc, role, now));
        self.drain(id);

        let mid = match self.video_mid(id, role, &video_mids) {
            Ok(mid) => mid,
            Err(e) => {
                // Never announced, so it goes without a PeerClosed.
                self.peers.remove(id);
                self.queue.retain(|(p, _)| *p != id);
                self.dead.retain(|(p, _)| *p != id);
                return Err(e);
            }
        };
        match role {
            Role::Publisher => {
                if let Some(old) = self.members.set_publisher(camera, id) {
                    self.close(old, "replaced by a new publisher");
                }
                self.members.set_publisher_mid(id, mid.0);
            }
            Role::Viewer => {
                let access = access.unwrap_or(ViewerAccess::ViewOnly);
                self.members.add_viewer(camera, id, mid.0, access, now);
                if let Some(peer) = self.peers.get_mut(id) {
                    peer.tx = Some(ViewerTx::new(mid.0, mid.1));
                }
            }
        }
        tracing::info!(peer = %id, camera, ?role, "peer added");
        Ok(PeerAnswer {
            peer: id,
            sdp: answer.to_sdp_string(),
            candidates,
        })
    }

    /// The m-line this peer's video uses: the first H.264 video m-line in the direction
    /// its role needs, and its H.264 payload type.
    fn video_mid(
        &self,
        id: PeerId,
        role: Role,
        video_mids: &[String],
    ) -> Result<(Mid, Pt), SfuError> {
        let (verb, want) = match role {
            Role::Publisher => ("receive", "sendonly or sendrecv"),
            Role::Viewer => ("send", "recvonly or sendrecv"),
        };
        let rtc = &self.peers.get(id).ok_or(SfuError::UnknownPeer(id))?.rtc;
        let mut saw_video = false;
        for mid in video_mids {
            let mid = Mid::from(mid.as_str());
            let Some(media) = rtc.media(mid) else {
                continue;
            };
            let usable = match role {
                Role::Publisher => media.direction().is_receiving(),
                Role::Viewer => media.direction().is_sending(),
            };
            if !usable {
                continue;
            }
            saw_video = true;
            if let Some(pt) = negotiated_h264(rtc, mid) {
                return Ok((mid, pt));
            }
        }
        Err(SfuError::InvalidSdp(if saw_video {
            "no H.264 in the video m-line (the SFU forwards H.264 only)".into()
        } else {
            format!("no video m-line the SFU can {verb} on (need a {want} video m-line)")
        }))
    }

    fn add_candidate(&mut self, id: PeerId, candidate: &str) -> Result<(), SfuError> {
        let Some(peer) = self.peers.get_mut(id) else {
            return Err(SfuError::UnknownPeer(id));
        };
        let c = candidate.trim();
        let c = c.strip_prefix("a=").unwrap_or(c);
        // An empty candidate is the end-of-candidates marker.
        if c.is_empty() || c == "end-of-candidates" {
            return Ok(());
        }
        // mDNS host names (Chrome hides local IPs as `<uuid>.local`) cannot be resolved
        // here, and ice-lite does not need them: the peer's own checks reach us and str0m
        // learns its address from those.
        if c.split_whitespace()
            .nth(4)
            .is_some_and(|a| a.ends_with(".local"))
        {
            return Ok(());
        }
        let parsed =
            Candidate::from_sdp_string(c).map_err(|e| SfuError::InvalidCandidate(e.to_string()))?;
        peer.rtc.add_remote_candidate(parsed);
        self.drain(id);
        Ok(())
    }
}
