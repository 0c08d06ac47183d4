//! New peers from SDP offers (publish, subscribe) and their trickled candidates.

use std::time::Instant;

use std::panic::{catch_unwind, AssertUnwindSafe};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Mid, Pt};
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

use super::membership::Role;
use super::offer::{offers_data_channel, offers_h264, video_mids};
use super::peers::Peer;
use super::rtc_config::negotiated;
use super::viewer_tx::ViewerTx;
use super::Core;
use crate::{PeerAnswer, PeerId, SfuError, VideoCodec, ViewerAccess};

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

    /// A viewer's ICE restart (see [`crate::SfuHandle::restart_ice`]).
    pub(crate) fn restart_ice(
        &mut self,
        now: Instant,
        id: PeerId,
        offer: &str,
    ) -> Result<PeerAnswer, SfuError> {
        self.now = now;
        let answer = self.renegotiate(id, offer);
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
        let has_data_channel = offers_data_channel(offer);
        let h264 = offers_h264(offer);
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| sdp_parse_error(&e.to_string()))?;
        let now = self.now;
        // A viewer is sent H.264 if its offer has it, else VP8 (if its offer has neither,
        // no video m-line matches below and it is refused).
        let config = match role {
            Role::Publisher => &self.publisher_config,
            Role::Viewer if h264 => &self.viewer_configs[VideoCodec::H264.index()],
            Role::Viewer => &self.viewer_configs[VideoCodec::Vp8.index()],
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
        // On a panic the new `Rtc` is simply dropped: nothing else knows of it yet.
        let answer = accept_offer(&mut rtc, offer).map_err(OfferRefused::into_error)?;

        let id = self.peers.insert(Peer::new(rtc, role, now));
        self.drain(id);

        let video = match self.video_mids(id, role, &video_mids) {
            Ok(video) => video,
            Err(e) => {
                // Never announced, so it goes without a PeerClosed.
                self.peers.remove(id);
                self.queue.retain(|(p, _)| *p != id);
                self.dead.retain(|(p, _)| *p != id);
                return Err(e);
            }
        };
        let codec = match role {
            Role::Publisher => {
                if let Some(old) = self.members.set_publisher(camera, id) {
                    self.close(old, "replaced by a new publisher");
                }
                if !has_data_channel {
                    self.members.publisher_without_control(id);
                }
                for &(codec, mid, _) in &video {
                    self.members.set_publisher_mid(id, codec, mid);
                }
                VideoCodec::H264
            }
            Role::Viewer => {
                let access = access.unwrap_or(ViewerAccess::ViewOnly);
                let (codec, mid, pt) = video[0];
                self.members.add_viewer(camera, id, mid, access, now);
                self.members.set_viewer_codec(id, codec);
                if let Some(peer) = self.peers.get_mut(id) {
                    peer.tx = Some(ViewerTx::new(mid, pt));
                }
                codec
            }
        };
        tracing::info!(peer = %id, camera, ?role, ?codec, "peer added");
        Ok(PeerAnswer {
            peer: id,
            codec,
            sdp: answer.to_sdp_string(),
            candidates,
        })
    }

    /// The m-lines this peer's video uses, in the direction its role needs, with their
    /// codec and payload type. A publisher: the first m-line with H.264 (required), and the
    /// next one with VP8 if there is one. A viewer: one m-line, with H.264 if its offer has
    /// it anywhere, else VP8 (browsers without H.264).
    fn video_mids(
        &self,
        id: PeerId,
        role: Role,
        video_mids: &[String],
    ) -> Result<Vec<(VideoCodec, Mid, Pt)>, SfuError> {
        let (verb, want) = match role {
            Role::Publisher => ("receive", "sendonly or sendrecv"),
            Role::Viewer => ("send", "recvonly or sendrecv"),
        };
        let rtc = &self.peers.get(id).ok_or(SfuError::UnknownPeer(id))?.rtc;
        let usable: Vec<Mid> = video_mids
            .iter()
            .map(|m| Mid::from(m.as_str()))
            .filter(|&mid| {
                rtc.media(mid).is_some_and(|media| match role {
                    Role::Publisher => media.direction().is_receiving(),
                    Role::Viewer => media.direction().is_sending(),
                })
            })
            .collect();
        let find = |codec, skip: Option<Mid>| {
            usable
                .iter()
                .filter(|&&m| Some(m) != skip)
                .find_map(|&mid| negotiated(rtc, mid, codec).map(|pt| (codec, mid, pt)))
        };
        let found = match role {
            Role::Publisher => find(VideoCodec::H264, None).map(|h264| {
                let vp8 = find(VideoCodec::Vp8, Some(h264.1));
                std::iter::once(h264).chain(vp8).collect()
            }),
            Role::Viewer => find(VideoCodec::H264, None)
                .or_else(|| find(VideoCodec::Vp8, None))
                .map(|v| vec![v]),
        };
        found.ok_or_else(|| {
            SfuError::InvalidSdp(match (usable.is_empty(), role) {
                (true, _) => {
                    format!("no video m-line the SFU can {verb} on (need a {want} video m-line)")
                }
                (false, Role::Publisher) => {
                    "no H.264 the SFU takes in the video m-line: publishers send H.264 with \
                     packetization-mode 1 in Constrained Baseline, Baseline, Main or High"
                        .into()
                }
                (false, Role::Viewer) => {
                    "no codec in common: the SFU sends H.264 or VP8, and the offer has neither"
                        .into()
                }
            })
        })
    }

    /// Answer a connected viewer's re-offer on its own `Rtc`: str0m sees the new ICE
    /// credentials and restarts ICE, keeping our candidates (the answer lists them under the
    /// new credentials), DTLS and every stream.
    fn renegotiate(&mut self, id: PeerId, offer: &str) -> Result<PeerAnswer, SfuError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| sdp_parse_error(&e.to_string()))?;
        let codec = self
            .members
            .viewer_codec(id)
            .ok_or(SfuError::UnknownPeer(id))?;
        let peer = self.peers.get_mut(id).ok_or(SfuError::UnknownPeer(id))?;
        let answer = match accept_offer(&mut peer.rtc, offer) {
            Ok(answer) => answer,
            Err(refused) => {
                if matches!(refused, OfferRefused::Panicked(_)) {
                    // Its `Rtc` stopped halfway through the offer: of no use any more, and
                    // not to be polled for a graceful close either.
                    self.remove_peer(id, "its re-offer broke its media connection".into());
                }
                return Err(refused.into_error());
            }
        };
        let peer = self.peers.get_mut(id).ok_or(SfuError::UnknownPeer(id))?;
        peer.restarting = true;
        self.drain(id);
        tracing::info!(peer = %id, "ICE restart answered");
        Ok(PeerAnswer {
            peer: id,
            codec,
            sdp: answer.to_sdp_string(),
            candidates: Vec::new(),
        })
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

/// An offer str0m could not parse. Its message names the failing position by a memory
/// address (`at PointerOffset(0x…)`), which means nothing to the sender and is left out.
/// Why str0m did not answer an offer.
enum OfferRefused {
    /// It said why.
    Invalid(String),
    /// It panicked.
    Panicked(String),
}

impl OfferRefused {
    fn into_error(self) -> SfuError {
        match self {
            OfferRefused::Invalid(why) => SfuError::InvalidSdp(why),
            OfferRefused::Panicked(why) => SfuError::InvalidSdp(format!(
                "the offer contradicts itself and could not be answered ({why})"
            )),
        }
    }
}

/// str0m's `accept_offer`, for an offer from outside. str0m panics on some offers instead of
/// refusing them (two m-lines giving one payload type different parameters: "Pt locked
/// multiple times", found by fuzzing). A panic here would end the media loop and every
/// stream with it, so it is caught and becomes the sender's `invalid_sdp`. The `Rtc` it
/// happened in is left in an unknown state: callers must drop it.
fn accept_offer(rtc: &mut Rtc, offer: SdpOffer) -> Result<SdpAnswer, OfferRefused> {
    match catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer))) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(OfferRefused::Invalid(e.to_string())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic in str0m")
                .to_owned();
            tracing::warn!("str0m panicked on an offer; refused it: {why}");
            Err(OfferRefused::Panicked(why))
        }
    }
}

fn sdp_parse_error(message: &str) -> SfuError {
    let mut text = message.to_owned();
    if let Some(start) = text.find(" at PointerOffset(") {
        if let Some(len) = text[start..].find(')') {
            text.replace_range(start..start + len + 1, "");
        }
    }
    SfuError::InvalidSdp(text)
}

#[cfg(test)]
mod parse_error_tests {
    use super::sdp_parse_error;

    #[test]
    fn parse_errors_lose_the_memory_address() {
        let e = sdp_parse_error(
            "SDP parse: Parse error at PointerOffset(0x7f355c0087a0) Unexpected `n` Expected `v` sdp line",
        );
        assert_eq!(
            e.to_string(),
            "invalid SDP: SDP parse: Parse error Unexpected `n` Expected `v` sdp line"
        );
        assert_eq!(sdp_parse_error("plain").to_string(), "invalid SDP: plain");
    }
}
