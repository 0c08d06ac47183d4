//! Viewers served straight from this publisher (P2P direct mode). The server grants a viewer
//! a direct path (up to `--p2p-max`) and relays its offer and candidates here
//! (`direct_offer`, `direct_candidate`); we answer with a peer connection of our own per
//! viewer (`direct_answer`, `direct_candidate` back).
//!
//! - Video: the same encoded frames the SFU track gets (no second encoder). The track
//!   writer ([`super::media`]) hands each frame to every [`Outlet`] too; an outlet starts,
//!   and restarts after `resume`, on a keyframe ([`Gate`]).
//! - Control: the viewer's `control` channel is served as the SFU would serve it: a
//!   welcome, the capabilities and state, then each message judged by the relay's rules
//!   (`sightline_protocol::control::relay`) with the access the server vouched for
//!   (`may_control`) and the same rate limit. Commands go to the station tagged
//!   `direct-<viewer>`; the reply comes back on this channel, broadcasts go to everyone.
//! - Ending: the server's `direct_close`, or the connection failing (then we tell the server
//!   `direct_ended`, and the viewer falls back to the SFU).
//!
//! [`DirectPeers`] lives in the session's [`super::resources::Resources`], so direct
//! connections close with the session however it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use sightline_protocol::control::relay::{admit, welcome_text, Admission, Sender};
use sightline_protocol::control::unix_millis;
use sightline_protocol::control::{ControlMessage, RateLimit, TokenBucket, CHANNEL_LABEL};
use sightline_protocol::wire::{ClientMessage, IceServer, MAX_SOURCE_ERROR_LEN};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use super::control_channel::{ControlChannel, ControlEvent};
use super::media::listen_for_keyframe_requests;
use super::peer::{self, PeerEvent};
use super::signaling::Candidate;
use super::{websocket, Session};
use crate::h264::encoder::KeyframeRequest;

/// Something one direct viewer's connection or channel did.
pub(super) struct DirectEvent {
    pub(super) viewer: u64,
    pub(super) kind: DirectKind,
}

pub(super) enum DirectKind {
    Peer(PeerEvent),
    Control(ControlEvent),
}

/// Whether a viewer's video gets the next frame: not while it paused, and a new or resumed
/// viewer only from a keyframe (a decoder cannot start on anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gate {
    paused: bool,
    need_keyframe: bool,
}

impl Gate {
    pub(super) fn new() -> Self {
        Gate {
            paused: false,
            need_keyframe: true,
        }
    }

    pub(super) fn passes(&mut self, keyframe: bool) -> bool {
        if self.paused || (self.need_keyframe && !keyframe) {
            return false;
        }
        self.need_keyframe = false;
        true
    }

    fn pause(&mut self, pause: bool) {
        self.paused = pause;
        self.need_keyframe = true;
    }
}

/// Where the track writer puts a frame: a track, with the SSRC and payload type to send as.
#[derive(Clone)]
pub(super) struct Sink {
    pub(super) track: Arc<TrackLocalStaticSample>,
    pub(super) ssrc: u32,
    pub(super) payload_type: u8,
}

/// One direct viewer's video as the track writer sees it.
pub(super) struct Outlet {
    viewer: u64,
    pub(super) sink: Sink,
    pub(super) gate: Gate,
}

/// The outlets, shared between the session loop (which adds, pauses and drops them) and the
/// track writer (which feeds them).
pub(super) type Outlets = Arc<Mutex<Vec<Outlet>>>;

struct DirectPeer {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    sender: Arc<dyn RtpSender>,
    /// The offer's first mid: our candidates carry it.
    mid: Option<String>,
    may_control: bool,
    bucket: TokenBucket,
    channel: Option<ControlChannel>,
    tasks: Vec<JoinHandle<()>>,
}

impl DirectPeer {
    async fn close(self) {
        for t in self.tasks {
            t.abort();
        }
        if let Err(e) = self.pc.close().await {
            debug!("closing a direct connection: {e}");
        }
    }
}

/// The direct viewers of one session.
pub(super) struct DirectPeers {
    peers: HashMap<u64, DirectPeer>,
    events: mpsc::UnboundedSender<DirectEvent>,
    /// Until the session takes it ([`Self::take_events`]).
    events_rx: Option<mpsc::UnboundedReceiver<DirectEvent>>,
    pub(super) outlets: Outlets,
    limit: RateLimit,
}

impl Default for DirectPeers {
    fn default() -> Self {
        let (events, rx) = mpsc::unbounded_channel();
        DirectPeers {
            peers: HashMap::new(),
            events,
            events_rx: Some(rx),
            outlets: Outlets::default(),
            limit: RateLimit::default(),
        }
    }
}

impl DirectPeers {
    /// The events of every direct connection, for the session loop (once).
    pub(super) fn take_events(&mut self) -> mpsc::UnboundedReceiver<DirectEvent> {
        self.events_rx
            .take()
            .expect("the session takes the events once")
    }

    /// Answer a direct viewer's offer with a new connection (replacing any it had); returns
    /// the answer's SDP. Refused beyond `max` viewers.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &mut self,
        viewer: u64,
        offer: String,
        may_control: bool,
        max: u32,
        ice_servers: &[IceServer],
        relay_only: bool,
        stream_id: &str,
        keyframes: &KeyframeRequest,
    ) -> anyhow::Result<String> {
        self.close(viewer).await;
        if self.peers.len() >= max as usize {
            bail!("this publisher already serves {max} direct viewers (--p2p-max)");
        }
        let events = self.events.clone();
        // H.264 only: a viewer without it is served through the SFU (its VP8).
        let pc = peer::connection(&[], false, move |e| {
            let _ = events.send(DirectEvent {
                viewer,
                kind: DirectKind::Peer(e),
            });
        })
        .await?;
        let peer = async {
            if !ice_servers.is_empty() {
                peer::use_ice_servers(pc.as_ref(), ice_servers, relay_only).await?;
            }
            let (track, ssrc) = peer::video_track(stream_id, "video", peer::h264_codec())?;
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .context("adding the video track")?;
            let mid = peer::first_mid(&offer);
            let offer = RTCSessionDescription::offer(offer).context("parsing the offer")?;
            pc.set_remote_description(offer)
                .await
                .context("the viewer's offer")?;
            let answer = pc.create_answer(None).await.context("create_answer")?;
            let sdp = answer.sdp.clone();
            pc.set_local_description(answer)
                .await
                .context("set_local_description")?;
            let tasks = vec![tokio::spawn(listen_for_keyframe_requests(
                Arc::clone(&track),
                keyframes.clone(),
            ))];
            anyhow::Ok((
                DirectPeer {
                    pc: Arc::clone(&pc),
                    track,
                    ssrc,
                    sender,
                    mid,
                    may_control,
                    bucket: TokenBucket::new(self.limit, Instant::now()),
                    channel: None,
                    tasks,
                },
                sdp,
            ))
        }
        .await;
        match peer {
            Ok((peer, sdp)) => {
                self.peers.insert(viewer, peer);
                Ok(sdp)
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Close one viewer's connection; false if it had none.
    pub(super) async fn close(&mut self, viewer: u64) -> bool {
        self.outlets.lock().unwrap().retain(|o| o.viewer != viewer);
        match self.peers.remove(&viewer) {
            Some(peer) => {
                peer.close().await;
                true
            }
            None => false,
        }
    }

    pub(super) async fn close_all(&mut self) {
        self.outlets.lock().unwrap().clear();
        for (_, peer) in self.peers.drain() {
            peer.close().await;
        }
    }

    /// What can be released without awaiting (the session future was dropped).
    pub(super) fn abandon(&mut self) {
        self.outlets.lock().unwrap().clear();
        for (_, peer) in self.peers.drain() {
            for t in &peer.tasks {
                t.abort();
            }
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = peer.pc.close().await;
                });
            }
        }
    }

    fn channel(&self, viewer: u64) -> Option<&ControlChannel> {
        self.peers.get(&viewer)?.channel.as_ref()
    }

    /// Every open direct control channel (for broadcasts).
    pub(super) fn channels(&self) -> Vec<ControlChannel> {
        self.peers
            .values()
            .filter_map(|p| p.channel.clone())
            .collect()
    }
}

/// The id a direct viewer's commands carry in `from` (and replies in `to`).
fn sender_id(viewer: u64) -> String {
    format!("direct-{viewer}")
}

impl Session<'_> {
    /// The server relayed a direct viewer's offer: answer it, or say why not.
    pub(super) async fn on_direct_offer(
        &mut self,
        viewer: u64,
        sdp: String,
        may_control: bool,
    ) -> anyhow::Result<()> {
        let answered = self
            .res
            .direct
            .answer(
                viewer,
                sdp,
                may_control,
                self.config.p2p_max,
                &self.ice_servers,
                self.config.relay_only,
                &self.config.camera_id,
                &self.keyframes,
            )
            .await;
        let msg = match answered {
            Ok(sdp) => {
                info!(camera = %self.config.camera_id, viewer, may_control, "direct viewer: offer answered");
                ClientMessage::DirectAnswer { viewer, sdp }
            }
            Err(e) => {
                warn!(camera = %self.config.camera_id, viewer, "direct viewer refused: {e:#}");
                ended(viewer, format!("{e:#}"))
            }
        };
        websocket::send(&mut self.ws, &msg).await
    }

    pub(super) async fn on_direct_candidate(&mut self, viewer: u64, c: Candidate) {
        match self.res.direct.peers.get(&viewer) {
            Some(peer) => peer::add_candidate(peer.pc.as_ref(), c).await,
            None => debug!(viewer, "a candidate for a direct viewer we do not serve"),
        }
    }

    pub(super) async fn on_direct_close(&mut self, viewer: u64) {
        if self.res.direct.close(viewer).await {
            info!(camera = %self.config.camera_id, viewer, "direct viewer left");
        }
    }

    pub(super) async fn on_direct_event(&mut self, ev: Option<DirectEvent>) -> anyhow::Result<()> {
        // The sender lives in `res.direct`: the stream never ends while the session runs.
        let Some(DirectEvent { viewer, kind }) = ev else {
            return Ok(());
        };
        if !self.res.direct.peers.contains_key(&viewer) {
            return Ok(()); // closed meanwhile
        }
        match kind {
            DirectKind::Peer(PeerEvent::LocalCandidate(init)) => {
                let mid = self.res.direct.peers[&viewer].mid.clone();
                if let ClientMessage::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                } = peer::candidate_message(init, mid.as_deref())
                {
                    let msg = ClientMessage::DirectCandidate {
                        viewer,
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    };
                    websocket::send(&mut self.ws, &msg).await?;
                }
            }
            DirectKind::Peer(PeerEvent::State(state)) => self.direct_state(viewer, state).await?,
            // A direct viewer's setup is bounded by its connection state alone.
            DirectKind::Peer(PeerEvent::Ice(_)) => {}
            DirectKind::Peer(PeerEvent::DataChannel(dc)) => {
                let channel = ControlChannel::new(dc);
                if channel.label().await != CHANNEL_LABEL {
                    debug!(viewer, "a data channel that is not `control`: ignored");
                    return Ok(());
                }
                let events = self.res.direct.events.clone();
                let reader = channel.spawn_reader_with(move |e| {
                    events
                        .send(DirectEvent {
                            viewer,
                            kind: DirectKind::Control(e),
                        })
                        .is_ok()
                });
                let peer = self.res.direct.peers.get_mut(&viewer).expect("checked");
                peer.tasks.push(reader);
                peer.channel = Some(channel);
            }
            DirectKind::Control(ControlEvent::Open) => self.welcome_direct(viewer).await,
            DirectKind::Control(ControlEvent::Text(text)) => {
                self.direct_command(viewer, &text).await?
            }
            DirectKind::Control(ControlEvent::Closed) => {
                if let Some(peer) = self.res.direct.peers.get_mut(&viewer) {
                    peer.channel = None;
                }
            }
        }
        Ok(())
    }

    async fn direct_state(
        &mut self,
        viewer: u64,
        state: RTCPeerConnectionState,
    ) -> anyhow::Result<()> {
        info!(camera = %self.config.camera_id, viewer, "direct connection {state}");
        match state {
            RTCPeerConnectionState::Connected => {
                let peer = &self.res.direct.peers[&viewer];
                let payload_type =
                    peer::payload_type(peer.sender.as_ref(), &peer::h264_codec()).await;
                let outlet = Outlet {
                    viewer,
                    sink: Sink {
                        track: Arc::clone(&peer.track),
                        ssrc: peer.ssrc,
                        payload_type,
                    },
                    gate: Gate::new(),
                };
                let mut outlets = self.res.direct.outlets.lock().unwrap();
                outlets.retain(|o| o.viewer != viewer);
                outlets.push(outlet);
                drop(outlets);
                // Its video starts on a keyframe: ask for one now rather than wait.
                self.keyframes.request();
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.res.direct.close(viewer).await;
                let msg = ended(viewer, format!("the direct connection {state}"));
                websocket::send(&mut self.ws, &msg).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The viewer's control channel opened: what the SFU tells its viewers, from us.
    async fn welcome_direct(&mut self, viewer: u64) {
        let Some(peer) = self.res.direct.peers.get(&viewer) else {
            return;
        };
        let mut texts = vec![welcome_text(
            &sender_id(viewer),
            &self.config.camera_id,
            peer.may_control,
            self.res.direct.limit,
        )];
        texts.extend(
            self.station
                .control
                .announce()
                .iter()
                .map(ControlMessage::to_json),
        );
        if let Some(channel) = self.res.direct.channel(viewer) {
            channel.send_all(&texts).await;
        }
    }

    /// One message on a direct viewer's control channel, judged as the SFU would judge it.
    async fn direct_command(&mut self, viewer: u64, text: &str) -> anyhow::Result<()> {
        let limit = self.res.direct.limit;
        let Some(peer) = self.res.direct.peers.get_mut(&viewer) else {
            return Ok(());
        };
        let id = sender_id(viewer);
        let sender = Sender {
            id: &id,
            may_control: peer.may_control,
            has_video: true,
        };
        let taken = peer.bucket.take(Instant::now());
        let channel = peer.channel.clone();
        let reply = match admit(sender, taken, limit, text.as_bytes(), false, unix_millis()) {
            Admission::Refuse(reply) => reply,
            Admission::Pause { pause, reply } => {
                let mut outlets = self.res.direct.outlets.lock().unwrap();
                for o in outlets.iter_mut().filter(|o| o.viewer == viewer) {
                    o.gate.pause(pause);
                }
                drop(outlets);
                if !pause {
                    self.keyframes.request();
                }
                reply
            }
            Admission::Relay { text, .. } => return self.command(&text, Some(viewer)).await,
        };
        if let Some(channel) = channel {
            channel.send_all(&[reply]).await;
        }
        Ok(())
    }

    /// Send a command's reply to its sender: a direct viewer's channel, or the SFU's.
    pub(super) async fn reply(&self, to: Option<u64>, text: String) {
        match to {
            Some(viewer) => {
                if let Some(channel) = self.res.direct.channel(viewer) {
                    channel.send_all(&[text]).await;
                }
            }
            None => self.control.send_all(&[text]).await,
        }
    }
}

/// `direct_ended`, with a reason that fits the wire's limit.
fn ended(viewer: u64, reason: String) -> ClientMessage {
    let reason: String = reason.chars().take(MAX_SOURCE_ERROR_LEN).collect();
    ClientMessage::DirectEnded { viewer, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_starts_and_resumes_on_a_keyframe() {
        let mut g = Gate::new();
        assert!(!g.passes(false), "a new viewer waits for a keyframe");
        assert!(g.passes(true));
        assert!(g.passes(false), "then takes every frame");
        g.pause(true);
        assert!(!g.passes(true), "nothing while paused, keyframes neither");
        assert!(!g.passes(false));
        g.pause(false);
        assert!(!g.passes(false), "resumed: waits for the next keyframe");
        assert!(g.passes(true));
        assert!(g.passes(false));
    }

    #[test]
    fn a_long_reason_is_cut_to_fit_the_wire() {
        let long = "é".repeat(MAX_SOURCE_ERROR_LEN + 10);
        match ended(3, long) {
            ClientMessage::DirectEnded { viewer, reason } => {
                assert_eq!(viewer, 3);
                assert_eq!(reason.chars().count(), MAX_SOURCE_ERROR_LEN);
            }
            other => panic!("{other:?}"),
        }
        // What we send passes the server's checks.
        let text = ended(3, "x".into()).to_json();
        assert!(sightline_protocol::wire::parse_client_message(&text).is_ok());
    }
}
