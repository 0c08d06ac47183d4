//! The viewer's WebRTC peer: a str0m client `Rtc` (full ICE, controlling) that receives one
//! H.264 video track in frame mode and, if asked, opens the camera-control data channel
//! (label `control`, see `sightline_protocol::control`). Sans-I/O: the caller moves
//! datagrams and time in and out, so the same code runs under the viewer's async loop and in
//! tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::loss::VideoPts;

/// H.264 Constrained Baseline level 3.1, packetization-mode 1: the one format Sightline
/// negotiates everywhere (see ARCHITECTURE.md, "Media facts that bite").
pub const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;
const H264_PT: u8 = 102;
const H264_RTX_PT: u8 = 103;
/// How often str0m reports receive statistics (NACKs sent): cheap, and often enough for a
/// test of a few seconds to see them.
const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// What the peer reports after being driven.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// One whole access unit (Annex-B) of the video track.
    Frame {
        data: std::sync::Arc<[u8]>,
        /// str0m saw no gap in sequence numbers since the previous frame.
        contiguous: bool,
    },
    /// ICE gave up or the `Rtc` closed: the peer is dead.
    Lost(String),
    /// NACKs sent so far for the video track (str0m's periodic receive statistics).
    NacksSent(u64),
    /// The control data channel is open: [`ViewerPeer::send_control`] works from now on.
    ControlOpen,
    /// One message on the control channel (text; binary messages are passed on as bytes
    /// and are a protocol error for the caller to report).
    ControlMessage { data: Vec<u8>, binary: bool },
    /// The control channel closed while the peer lives on.
    ControlClosed,
}

/// A datagram to send.
#[derive(Debug)]
pub struct Datagram {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

pub struct ViewerPeer {
    rtc: Rtc,
    mid: Mid,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    /// The control data channel, when the offer had one.
    control: Option<ChannelId>,
    control_open: bool,
}

/// An `Rtc` that receives H.264 (or, with `vp8_only`, VP8 only), its only candidate `local`.
fn receiving_rtc(local: SocketAddr, now: Instant, vp8_only: bool) -> anyhow::Result<Rtc> {
    let mut config = RtcConfig::new()
        .clear_codecs()
        .set_stats_interval(Some(STATS_INTERVAL));
    if vp8_only {
        config.codec_config().enable_vp8(true);
    } else {
        config.codec_config().add_h264(
            H264_PT.into(),
            Some(H264_RTX_PT.into()),
            true,
            H264_PROFILE_LEVEL_ID,
        );
    }
    let mut rtc = config.build(now);
    let candidate = Candidate::host(local, "udp").context("host candidate")?;
    rtc.add_local_candidate(candidate)
        .ok_or_else(|| anyhow!("str0m refused the host candidate {local}"))?;
    Ok(rtc)
}

impl ViewerPeer {
    /// A peer whose only candidate is `local` (the UDP socket the caller bound), and its
    /// SDP offer (recvonly H.264 video).
    pub fn new(local: SocketAddr, now: Instant) -> anyhow::Result<(Self, String)> {
        Self::with_control(local, now, false)
    }

    /// Like [`ViewerPeer::new`]; with `control`, the offer also opens the `control` data
    /// channel (the SFU relays it to the camera's publisher).
    pub fn with_control(
        local: SocketAddr,
        now: Instant,
        control: bool,
    ) -> anyhow::Result<(Self, String)> {
        Self::offering(local, now, control, false)
    }

    /// Like [`ViewerPeer::with_control`]; with `vp8_only`, the offer has VP8 and no H.264, as
    /// a browser without H.264 (Debian's Firefox ESR) writes it.
    pub fn offering(
        local: SocketAddr,
        now: Instant,
        control: bool,
        vp8_only: bool,
    ) -> anyhow::Result<(Self, String)> {
        let mut rtc = receiving_rtc(local, now, vp8_only)?;
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let control =
            control.then(|| api.add_channel(sightline_protocol::control::CHANNEL_LABEL.into()));
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("str0m made no offer"))?;
        let peer = ViewerPeer {
            rtc,
            mid,
            local,
            pending: Some(pending),
            control,
            control_open: false,
        };
        Ok((peer, offer.to_sdp_string()))
    }

    /// A peer answering another server's offer (Janus's, in `bench janus`) that sends one
    /// H.264 video track: its answer, with `local` as its only candidate.
    pub fn answering(
        local: SocketAddr,
        now: Instant,
        offer: &str,
    ) -> anyhow::Result<(Self, String)> {
        let mut rtc = receiving_rtc(local, now, false)?;
        let offer = SdpOffer::from_sdp_string(offer).context("parsing the SDP offer")?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .context("answering the offer")?
            .to_sdp_string();
        let mid = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(|m| Mid::from(m.trim()))
            .context("no media in the offer")?;
        let peer = ViewerPeer {
            rtc,
            mid,
            local,
            pending: None,
            control: None,
            control_open: false,
        };
        Ok((peer, answer))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Apply the server's SDP answer (once).
    pub fn accept_answer(&mut self, sdp: &str) -> anyhow::Result<()> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| anyhow!("answer already applied"))?;
        let answer = SdpAnswer::from_sdp_string(sdp).context("parsing the SDP answer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .context("applying the SDP answer")
    }

    /// The payload types the answer settled for the video track (media and RTX), once the
    /// answer is applied; `None` before or if no H.264 was negotiated.
    pub fn video_pts(&self) -> Option<VideoPts> {
        let remote = self.rtc.media(self.mid)?.remote_pts();
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| {
                matches!(p.spec().codec, Codec::H264 | Codec::Vp8) && remote.contains(&p.pt())
            })
            .map(|p| VideoPts {
                media: *p.pt(),
                rtx: p.resend().map(|r| *r),
            })
    }

    /// A trickled server candidate (`candidate:...`, with or without `a=`). Empty means
    /// end-of-candidates and is ignored.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> anyhow::Result<()> {
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return Ok(());
        }
        let c = Candidate::from_sdp_string(line)
            .with_context(|| format!("parsing candidate `{line}`"))?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Feed a received datagram. Anything str0m does not recognise is dropped.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            tracing::trace!(%source, len = data.len(), "not a WebRTC datagram");
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("str0m refused a datagram: {e}");
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!("str0m timeout handling failed: {e}");
        }
    }

    /// Ask the sender for a keyframe (RTCP PLI). False if not possible yet (not connected
    /// or PLI not negotiated).
    pub fn request_keyframe(&mut self) -> bool {
        let Some(mut writer) = self.rtc.writer(self.mid) else {
            return false;
        };
        if !writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            return false;
        }
        writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
    }

    /// Write one text message on the control channel. False when there is none, it is not
    /// open yet, or its send buffer is full (the caller keeps the message and retries).
    pub fn send_control(&mut self, text: &str) -> bool {
        if !self.control_open {
            return false;
        }
        let Some(mut channel) = self.control.and_then(|c| self.rtc.channel(c)) else {
            return false;
        };
        match channel.write(false, text.as_bytes()) {
            Ok(written) => written,
            Err(e) => {
                tracing::debug!("control channel write failed: {e}");
                false
            }
        }
    }

    pub fn control_is_open(&self) -> bool {
        self.control_open
    }

    /// Drain everything str0m wants to do: datagrams go to `send`, events to `events`.
    /// Returns when str0m next needs [`ViewerPeer::handle_timeout`].
    pub fn drain(&mut self, send: &mut Vec<Datagram>, events: &mut Vec<PeerEvent>) -> Instant {
        loop {
            if !self.rtc.is_alive() {
                events.push(PeerEvent::Lost("the Rtc closed".into()));
                return Instant::now() + std::time::Duration::from_secs(3600);
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => send.push(Datagram {
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => self.on_event(e, events),
                Err(e) => {
                    events.push(PeerEvent::Lost(format!("str0m failed: {e}")));
                    self.rtc.disconnect();
                }
            }
        }
    }

    fn on_event(&mut self, event: Event, events: &mut Vec<PeerEvent>) {
        match event {
            Event::Connected => events.push(PeerEvent::Connected),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                events.push(PeerEvent::Lost("ICE disconnected".into()));
                self.rtc.disconnect();
            }
            Event::MediaData(m) if m.mid == self.mid => events.push(PeerEvent::Frame {
                data: m.data,
                contiguous: m.contiguous,
            }),
            Event::MediaIngressStats(s) if s.mid == self.mid => {
                events.push(PeerEvent::NacksSent(s.nacks))
            }
            Event::ChannelOpen(id, _) if Some(id) == self.control => {
                self.control_open = true;
                events.push(PeerEvent::ControlOpen);
            }
            Event::ChannelData(d) if Some(d.id) == self.control => {
                events.push(PeerEvent::ControlMessage {
                    data: d.data,
                    binary: d.binary,
                })
            }
            Event::ChannelClose(id) if Some(id) == self.control => {
                self.control_open = false;
                events.push(PeerEvent::ControlClosed);
            }
            Event::Closed => events.push(PeerEvent::Lost("closed".into())),
            other => tracing::trace!(?other, "str0m event"),
        }
    }

    /// Stop the peer (no more output). Dropping it has the same effect.
    pub fn close(&mut self) {
        self.rtc.disconnect();
    }
}
