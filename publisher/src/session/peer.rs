//! Building the publisher's WebRTC peer connection (webrtc 0.21): one sendonly H.264
//! Constrained Baseline track, and a VP8 track (sent only while viewers without H.264
//! watch; builds without the `vp8` feature have none), the `control` data channel (ours to open: the SFU never
//! opens channels), no STUN/TURN servers, host candidates that include the address facing
//! the server (loopback included, for local and test setups); and the SDP and ICE details
//! the session trades with the server (candidates in and out, the video m-line's mid).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use sightline_protocol::wire::{ClientMessage, IceServer};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use super::keyframe_feedback::{self, KeyframeFeedback};
use super::signaling::Candidate;

/// The one format we send, exactly what the SFU and browsers are told to expect.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
pub const H264_PAYLOAD_TYPE: u8 = 102;
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// Retransmissions (RFC 4588) of each, on a stream of their own: without RTX in our offer
/// the SFU never asks for a lost packet again, and a packet lost on the way in costs every
/// viewer a keyframe round trip.
const H264_RTX_PAYLOAD_TYPE: u8 = 103;
const VP8_RTX_PAYLOAD_TYPE: u8 = 97;
/// How often ICE checks consent on the selected pair once connected.
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// What the peer connection tells the session loop.
pub enum PeerEvent {
    /// A local candidate to trickle to the server.
    LocalCandidate(RTCIceCandidateInit),
    State(RTCPeerConnectionState),
    /// ICE's own state: `Connected` before the DTLS handshake, which the peer connection's
    /// state includes.
    Ice(RTCIceConnectionState),
    /// The other side opened a data channel (a direct viewer's `control`; the SFU opens
    /// none).
    DataChannel(Arc<dyn DataChannel>),
}

/// Hands the peer connection's callbacks to the session loop (into a channel it selects on).
struct Events<F>(F);

#[async_trait::async_trait]
impl<F: Fn(PeerEvent) + Send + Sync + 'static> PeerConnectionEventHandler for Events<F> {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => (self.0)(PeerEvent::LocalCandidate(init)),
            Err(e) => warn!("cannot serialise local candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        (self.0)(PeerEvent::State(state));
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        (self.0)(PeerEvent::Ice(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        (self.0)(PeerEvent::DataChannel(channel));
    }
}

/// A built peer connection with its video track and control channel.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    pub track: Arc<TrackLocalStaticSample>,
    pub sender: Arc<dyn RtpSender>,
    pub ssrc: u32,
    /// The VP8 track, on its own m-line (the SFU sends it to viewers without H.264).
    pub vp8: Option<SendTrack>,
    /// The `control` data channel (ordered, reliable), open once the connection is up.
    pub control: Arc<dyn DataChannel>,
}

/// A sendonly video track on its m-line.
pub struct SendTrack {
    pub track: Arc<TrackLocalStaticSample>,
    pub sender: Arc<dyn RtpSender>,
    pub ssrc: u32,
}

pub fn h264_codec() -> RTCRtpCodec {
    video_codec(MIME_TYPE_H264, H264_FMTP)
}

pub fn vp8_codec() -> RTCRtpCodec {
    video_codec(MIME_TYPE_VP8, "")
}

fn video_codec(mime_type: &str, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime_type.to_owned(),
        clock_rate: VIDEO_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        // `nack` and `nack pli` are added by the default interceptors; FIR we add ourselves
        // so receivers that prefer it can ask for keyframes too.
        rtcp_feedback: vec![RTCPFeedback {
            typ: "ccm".into(),
            parameter: "fir".into(),
        }],
    }
}

/// Gather candidates through these STUN/TURN servers (from the server's `hello`); with
/// `relay_only`, only through TURN. Called before the offer, so gathering uses them.
pub async fn use_ice_servers(
    pc: &dyn PeerConnection,
    servers: &[IceServer],
    relay_only: bool,
) -> anyhow::Result<()> {
    let servers = servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let mut config = RTCConfigurationBuilder::new().with_ice_servers(servers);
    if relay_only {
        config = config.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    pc.set_configuration(config.build())
        .await
        .context("the server's ICE servers")
}

/// Build the peer connection to the SFU, with a sendonly H.264 track (the first video
/// m-line), a VP8 track if this build has VP8 (the second), and the control channel.
/// `bind_ips` are the local addresses to gather host candidates on, in addition to every
/// non-loopback interface.
pub async fn build(
    stream_id: &str,
    bind_ips: &[IpAddr],
    events: mpsc::UnboundedSender<PeerEvent>,
) -> anyhow::Result<Peer> {
    let vp8 = crate::pipeline::vp8_lane::AVAILABLE;
    let pc = connection(bind_ips, vp8, move |e| {
        let _ = events.send(e);
    })
    .await?;
    // webrtc-rs (like pion) learns the codecs it may send from the first video m-line of
    // the answer only: that one lists VP8 too, so the VP8 track's sender may use it.
    let mut first_line = vec![
        codec_parameters(h264_codec()),
        rtx_parameters(&h264_codec()),
    ];
    if vp8 {
        first_line.push(codec_parameters(vp8_codec()));
        first_line.push(rtx_parameters(&vp8_codec()));
    }
    let h264 = send_track(pc.as_ref(), stream_id, "video", h264_codec(), first_line).await?;
    let vp8 = match vp8 {
        true => {
            let only = vec![codec_parameters(vp8_codec()), rtx_parameters(&vp8_codec())];
            Some(send_track(pc.as_ref(), stream_id, "video-vp8", vp8_codec(), only).await?)
        }
        false => None,
    };
    // Created before the offer, so the offer has its m=application section.
    let control = pc
        .create_data_channel(sightline_protocol::control::CHANNEL_LABEL, None)
        .await
        .context("creating the control data channel")?;
    Ok(Peer {
        pc,
        track: h264.track,
        sender: h264.sender,
        ssrc: h264.ssrc,
        vp8,
        control,
    })
}

/// Our payload type for `codec`.
fn codec_parameters(codec: RTCRtpCodec) -> RTCRtpCodecParameters {
    let payload_type = if codec.mime_type == MIME_TYPE_VP8 {
        VP8_PAYLOAD_TYPE
    } else {
        H264_PAYLOAD_TYPE
    };
    RTCRtpCodecParameters {
        rtp_codec: codec,
        payload_type,
    }
}

/// The RTX format that repairs `codec` (`apt` names its payload type).
fn rtx_parameters(codec: &RTCRtpCodec) -> RTCRtpCodecParameters {
    let primary = codec_parameters(codec.clone()).payload_type;
    let payload_type = if primary == VP8_PAYLOAD_TYPE {
        VP8_RTX_PAYLOAD_TYPE
    } else {
        H264_RTX_PAYLOAD_TYPE
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: VIDEO_CLOCK_RATE,
            channels: 0,
            sdp_fmtp_line: format!("apt={primary}"),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

/// Add a sendonly video track for `codec` on an m-line of its own, which offers `offered`.
async fn send_track(
    pc: &dyn PeerConnection,
    stream_id: &str,
    track_id: &str,
    codec: RTCRtpCodec,
    offered: Vec<RTCRtpCodecParameters>,
) -> anyhow::Result<SendTrack> {
    let (track, ssrc) = video_track(stream_id, track_id, codec)?;
    let transceiver = pc
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id.to_owned()],
                send_encodings: vec![],
            }),
        )
        .await
        .with_context(|| format!("adding the {track_id} transceiver"))?;
    transceiver
        .set_codec_preferences(offered)
        .await
        .with_context(|| format!("codecs of the {track_id} transceiver"))?;
    let sender = transceiver
        .sender()
        .await
        .with_context(|| format!("{track_id} transceiver"))?
        .with_context(|| format!("{track_id} transceiver has no sender"))?;
    Ok(SendTrack {
        track,
        sender,
        ssrc,
    })
}

/// A peer connection that sends H.264 Constrained Baseline (and VP8 with `vp8`), gathering
/// host candidates on `bind_ips` and every non-loopback interface; `on_event` gets its
/// events.
pub async fn connection(
    bind_ips: &[IpAddr],
    vp8: bool,
    on_event: impl Fn(PeerEvent) + Send + Sync + 'static,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let mut media = MediaEngine::default();
    let mut codecs = vec![h264_codec()];
    if vp8 {
        codecs.push(vp8_codec());
    }
    for codec in codecs {
        let name = codec.mime_type.clone();
        for parameters in [rtx_parameters(&codec), codec_parameters(codec)] {
            media
                .register_codec(parameters, RtpCodecKind::Video)
                .with_context(|| format!("registering {name}"))?;
        }
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .context("default interceptors")?
        .with(keyframe_feedback::slot(), KeyframeFeedback::default());
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        // No mDNS: candidates must be plain addresses the SFU can use, and a multicast
        // socket is one more thing that can fail in a sandbox.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // A consent check every second, not every 2 s: ICE calls the link `disconnected`
        // after 5 s without an answer, which on a lossy link took only two checks lost in
        // a row; now it takes four or five. Timeouts stay webrtc-rs's (5 s, 25 s).
        .with_ice_timeouts(None, None, Some(ICE_KEEPALIVE))
        .build();
    // No ICE servers unless configured: the SFU has a reachable address.
    let config = RTCConfigurationBuilder::new().build();

    let mut addrs: Vec<String> = bind_ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, 0).to_string())
        .collect();
    addrs.push("0.0.0.0:0".into());

    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Events(on_event)))
        .with_udp_addrs(addrs)
        .build()
        .await
        .context("building the peer connection")?;
    Ok(Arc::new(pc))
}

/// A video track for `codec` samples, with its SSRC.
pub fn video_track(
    stream_id: &str,
    track_id: &str,
    codec: RTCRtpCodec,
) -> anyhow::Result<(Arc<TrackLocalStaticSample>, u32)> {
    let ssrc = rand::random::<u32>();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            stream_id.to_owned(),
            track_id.to_owned(),
            format!("{stream_id} {track_id}"),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx: Some(RTCRtpRtxParameters {
                        ssrc: rand::random::<u32>(),
                    }),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        ),
    )
    .context("creating the video track")?;
    Ok((Arc::new(track), ssrc))
}

/// The payload type the other side chose for `codec` on this sender's m-line (from the
/// negotiated parameters), else our own.
pub async fn payload_type(sender: &dyn RtpSender, codec: &RTCRtpCodec) -> u8 {
    let ours = codec_parameters(codec.clone()).payload_type;
    match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type))
            .map_or(ours, |c| c.payload_type),
        Err(e) => {
            debug!("sender parameters: {e}; using payload type {ours}");
            ours
        }
    }
}

/// The local address the OS would use to reach `server` (no packet is sent): the address the
/// SFU, which usually shares the server's host, can reach us on. Loopback for a local server.
pub fn local_ip_towards(server: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let sock = std::net::UdpSocket::bind(any).ok()?;
    sock.connect(server).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// Add a server candidate (a bad one is logged, not fatal).
pub async fn add_candidate(pc: &dyn PeerConnection, c: Candidate) {
    let candidate = c.candidate.trim().trim_start_matches("a=").to_owned();
    let init = RTCIceCandidateInit {
        candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index.or(Some(0)),
        ..Default::default()
    };
    if let Err(e) = pc.add_ice_candidate(init).await {
        warn!("rejected a server candidate: {e}");
    }
}

/// A local candidate as a signaling message, with our m-line's mid when the gatherer leaves
/// it empty.
pub fn candidate_message(init: RTCIceCandidateInit, mid: Option<&str>) -> ClientMessage {
    let sdp_mid = init
        .sdp_mid
        .filter(|m| !m.is_empty())
        .or_else(|| mid.map(str::to_owned));
    ClientMessage::Candidate {
        candidate: init.candidate,
        sdp_mid,
        sdp_mline_index: init.sdp_mline_index.or(Some(0)),
    }
}

/// The first `a=mid:` in an SDP.
pub fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_server_gives_loopback_address() {
        let ip = local_ip_towards("127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(ip.is_loopback(), "{ip}");
    }

    #[test]
    fn codec_matches_the_sdp_contract() {
        let c = h264_codec();
        assert_eq!(c.mime_type.to_ascii_lowercase(), "video/h264");
        assert_eq!(c.clock_rate, 90_000);
        assert!(c.sdp_fmtp_line.contains("profile-level-id=42e01f"));
        assert!(c.sdp_fmtp_line.contains("packetization-mode=1"));
    }

    #[test]
    fn local_candidates_get_our_mid() {
        let init = RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".into(),
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        match candidate_message(init, Some("0")) {
            ClientMessage::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                assert!(candidate.starts_with("candidate:"));
                assert_eq!(sdp_mid.as_deref(), Some("0"));
                assert_eq!(sdp_mline_index, Some(0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            first_mid("v=0\r\nm=video 9\r\na=mid:0\r\n"),
            Some("0".into())
        );
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
