//! One publishing session: WebSocket signaling, a peer connection to the SFU (video track and
//! `control` data channel), and the encode thread, from connect until something breaks.
//! [`crate::run`] loops over sessions.
//!
//! What outlives a session is the [`Station`]: settings, the capture, the on-demand timer.
//! The session carries out its decisions: it starts the encode thread whenever the capture
//! runs and the peer connection is up (and stops it otherwise), forwards the source's state
//! to the server (`idle` while not capturing), feeds the server's `demand` and the viewers'
//! commands to the station, and sends replies and broadcasts on the control channel.
//!
//! The peer connection stays up while an on-demand publisher is idle: no media flows (no
//! frames, so no RTP), but the control channel stays open, so viewers see the camera's
//! capabilities and state and a controller can `start_stream`, and a new viewer's video starts
//! without waiting for ICE and DTLS. Idle costs a STUN consent check and an SCTP heartbeat
//! every few seconds.
//!
//! The decisions live in [`signaling`] (the server's messages), the station (demand,
//! commands) and [`crate::control`]; this folder is the I/O around them:
//!
//! - [`websocket`]: the signaling connection: connect (TLS, token), send, receive and parse.
//! - [`signaling`]: the signaling state machine ([`signaling::Phase`], [`signaling::Step`]).
//! - [`peer`]: the WebRTC peer connection, with its [`control_channel`] and the
//!   [`keyframe_feedback`] interceptor; [`media`]: the tasks feeding its video track;
//!   [`liveness`]: when a connected peer connection counts as lost.
//! - [`follow`]: the encode thread and the source reports following the station's capture.
//! - [`commands`]: the control channel's announcements, viewers' commands, broadcasts.
//! - [`snapshots`]: JPEG snapshots the server asks for.
//! - [`resources`]: what a session owns and how it is released, also when aborted.
//!
//! [`drive`] is the loop: one `tokio::select!` over those inputs, one method call per arm.

mod commands;
pub mod control_channel;
mod direct;
mod follow;
pub mod keyframe_feedback;
mod liveness;
mod media;
pub mod peer;
mod resources;
pub mod signaling;
mod snapshots;
mod websocket;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use rustls::ClientConfig;
use sightline_protocol::control::{ControlMessage, MotionEvent};
use sightline_protocol::wire::{ClientMessage, IceServer, ServerMessage};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, info, warn};
use webrtc::peer_connection::{RTCIceConnectionState, RTCSessionDescription};

use crate::config::PublisherConfig;
use crate::h264::encoder::KeyframeRequest;
use crate::pipeline::motion::MotionOutbox;
use crate::pipeline::{EncodeThread, FrameReport, OutFrame};
use crate::pipeline::{SnapshotDesk, Vp8Demand};
use crate::source::supervisor::SourceReport;
use crate::station::Station;
use control_channel::{ControlChannel, ControlEvent};
use direct::DirectEvent;
use liveness::{Liveness, Verdict};
use peer::{Peer, PeerEvent};
use resources::Resources;
use signaling::{Candidate, Phase, Step};
pub use websocket::tls_client_config;
use websocket::{Incoming, Ws};

/// How long from connecting until the peer connection is up before we give up and retry.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Once ICE is up, how long the DTLS handshake may take. It is a few round trips, resent
/// within seconds even on a lossy link; one that takes longer is stuck (webrtc-rs's DTLS
/// client can stop resending its flight when a reply arrives incomplete), and a fresh
/// session is quicker than waiting out [`SETUP_TIMEOUT`].
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(6);
/// How often the session checks that its encode thread is still alive.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How a session ended.
pub struct Outcome {
    /// Whether media got flowing (the peer connection reached `connected`).
    pub connected: bool,
    /// The server removed the camera (`DELETE /api/cameras/{id}`): the publisher stops
    /// instead of reconnecting.
    pub removed: bool,
    pub reason: String,
}

/// Run one session to its end, publishing `station`'s camera; `tls` verifies a `wss://`
/// server (see [`tls_client_config`]). Never panics on network trouble; every way out is an
/// [`Outcome`] with the reason.
pub async fn run(
    config: &PublisherConfig,
    tls: &Arc<ClientConfig>,
    station: &mut Station,
) -> Outcome {
    let mut res = Resources::default();
    let reason = match drive(config, tls, station, &mut res).await {
        Ok(reason) => reason,
        Err(e) => format!("{e:#}"),
    };
    let (connected, removed) = (res.connected, res.removed);
    res.teardown().await;
    Outcome {
        connected,
        removed,
        reason,
    }
}

/// What an event leaves the loop with: go on, or end the session in order for a reason.
type Flow = anyhow::Result<Option<String>>;

/// The session proper. `Ok(reason)` for an orderly end (server closed...), `Err` for failures.
async fn drive(
    config: &PublisherConfig,
    tls: &Arc<ClientConfig>,
    station: &mut Station,
    res: &mut Resources,
) -> anyhow::Result<String> {
    let mut s = Session::open(config, tls, station, res).await?;
    loop {
        let idle_stop_at = s
            .station
            .demand
            .deadline()
            .map(tokio::time::Instant::from_std);
        let watch_source = s.source_state.is_some() && s.registered;
        // Each future borrows one field; the handlers run after they are dropped.
        let flow = tokio::select! {
            msg = s.ws.next() => s.on_websocket(msg).await,
            ev = s.peer_events.recv() => s.on_peer_event(ev).await,
            ev = s.control_events.recv(), if !s.control_closed => s.on_control_event(ev).await,
            ev = s.direct_events.recv() => s.on_direct_event(ev).await.map(|()| None),
            changed = source_changed(&mut s.source_state), if watch_source => s.on_source_state(changed).await,
            changed = s.frame_reports.changed() => s.on_frame_report(changed).await,
            made = s.snapshots_made.recv() => s.on_snapshot_made(made).await,
            event = s.motion_events.recv() => s.on_motion(event).await,
            _ = sleep_until_some(idle_stop_at), if idle_stop_at.is_some() => s.on_idle_timer().await,
            _ = s.housekeeping.tick() => s.on_housekeeping().await,
            _ = tokio::time::sleep_until(s.setup_deadline), if !s.res.connected => s.setup_timed_out(),
            _ = sleep_until_some(s.liveness.deadline()), if s.liveness.deadline().is_some() => Ok(Some(s.liveness.gave_up())),
        };
        if let Some(reason) = flow? {
            return Ok(reason);
        }
    }
}

/// The session's own state next to the station's; its methods do the I/O the decisions ask
/// for.
struct Session<'a> {
    config: &'a PublisherConfig,
    station: &'a mut Station,
    res: &'a mut Resources,
    /// Dropped (closing the TCP connection) when the session ends.
    ws: Ws,
    phase: Phase,
    /// Server candidates that came before the answer.
    pending: Vec<Candidate>,
    /// The mid our video m-line got; local candidates carry it.
    mid: Option<String>,
    peer: Peer,
    peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    control: ControlChannel,
    control_events: mpsc::UnboundedReceiver<ControlEvent>,
    /// The control channel is open (until then broadcasts wait for the announcement).
    control_open: bool,
    /// The control channel closed for good (the next session opens a new one).
    control_closed: bool,
    keyframes: KeyframeRequest,
    /// Whether the SFU sends VP8 to anyone (from `demand`), and PLI/FIR on our VP8 track.
    vp8: Vp8Demand,
    vp8_keyframes: KeyframeRequest,
    /// The STUN/TURN servers from the server (`hello`, refreshed by `ice_servers`): direct
    /// viewers' connections use the newest.
    ice_servers: Vec<IceServer>,
    /// What direct viewers' connections and channels do.
    direct_events: mpsc::UnboundedReceiver<DirectEvent>,
    /// Where the encode thread sends frames; set once the peer connection is up.
    frames: Option<mpsc::Sender<OutFrame>>,
    report: watch::Sender<FrameReport>,
    frame_reports: watch::Receiver<FrameReport>,
    /// The capture generation the encode thread reads.
    encoding: Option<u64>,
    /// The capture generation whose state we follow (`None`: reporting `idle`).
    watching: Option<u64>,
    /// The source's state and detail: each change is reported to the server.
    source_state: Option<watch::Receiver<SourceReport>>,
    /// `registered`: the server takes source reports from now on.
    registered: bool,
    /// The size last encoded, for the log.
    sent_size: Option<(u32, u32)>,
    housekeeping: tokio::time::Interval,
    /// The peer connection must be up by then.
    setup_deadline: tokio::time::Instant,
    /// ICE is connected (only the DTLS handshake is left before media).
    ice_up: bool,
    /// Whether a `disconnected` peer connection is being waited for.
    liveness: Liveness,
    /// Snapshot orders for the encode thread, and the finished ones coming back.
    snapshots: SnapshotDesk,
    snapshots_made_tx: mpsc::UnboundedSender<snapshots::Made>,
    snapshots_made: mpsc::UnboundedReceiver<snapshots::Made>,
    /// Motion events from the encode thread, for every viewer.
    motion_out: MotionOutbox,
    motion_events: mpsc::UnboundedReceiver<MotionEvent>,
}

impl<'a> Session<'a> {
    /// Connect to the server and build the peer connection (its control channel's reader
    /// running); nothing is sent until the server's `hello`.
    async fn open(
        config: &'a PublisherConfig,
        tls: &Arc<ClientConfig>,
        station: &'a mut Station,
        res: &'a mut Resources,
    ) -> anyhow::Result<Session<'a>> {
        let target = websocket::server_addr(&config.server).await;
        let ws = websocket::connect(&config.server, config.token.as_deref(), tls).await?;
        let (ev_tx, peer_events) = mpsc::unbounded_channel();
        let bind_ips: Vec<IpAddr> = target
            .and_then(peer::local_ip_towards)
            .into_iter()
            .collect();
        let peer = peer::build(&config.camera_id, &bind_ips, ev_tx).await?;
        res.pc = Some(Arc::clone(&peer.pc));
        let control = ControlChannel::new(Arc::clone(&peer.control));
        let (control_tx, control_events) = mpsc::unbounded_channel();
        res.tasks.push(control.spawn_reader(control_tx));
        let (report, frame_reports) = watch::channel(FrameReport::default());
        let direct_events = res.direct.take_events();
        let (snapshots_made_tx, snapshots_made) = snapshots::channel();
        let (motion_out, motion_events) = mpsc::unbounded_channel();
        Ok(Session {
            config,
            station,
            res,
            ws,
            phase: Phase::AwaitHello,
            pending: Vec::new(),
            mid: None,
            peer,
            peer_events,
            control,
            control_events,
            control_open: false,
            control_closed: false,
            keyframes: KeyframeRequest::default(),
            vp8: Vp8Demand::default(),
            vp8_keyframes: KeyframeRequest::default(),
            ice_servers: Vec::new(),
            direct_events,
            frames: None,
            report,
            frame_reports,
            encoding: None,
            watching: None,
            source_state: None,
            registered: false,
            sent_size: None,
            housekeeping: tokio::time::interval(HOUSEKEEPING),
            setup_deadline: tokio::time::Instant::now() + SETUP_TIMEOUT,
            ice_up: false,
            liveness: Liveness::default(),
            snapshots: SnapshotDesk::default(),
            snapshots_made_tx,
            snapshots_made,
            motion_out,
            motion_events,
        })
    }

    /// One read from the WebSocket.
    async fn on_websocket(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Flow {
        match websocket::read(msg)? {
            Incoming::Message(msg) => self.on_server_message(msg).await,
            Incoming::Nothing => Ok(None),
            Incoming::Closed(reason) => Ok(Some(reason)),
        }
    }

    /// One server message: the state machine decides, this carries it out.
    async fn on_server_message(&mut self, msg: ServerMessage) -> Flow {
        let (step, next) = signaling::on_message(self.phase, msg);
        self.phase = next;
        match step {
            Step::Register(ice_servers) => {
                if !ice_servers.is_empty() {
                    peer::use_ice_servers(
                        self.peer.pc.as_ref(),
                        &ice_servers,
                        self.config.relay_only,
                    )
                    .await?;
                }
                self.ice_servers = ice_servers;
                let register = self.station.register_message(self.config);
                websocket::send(&mut self.ws, &register).await?;
            }
            Step::Offer => self.offer().await?,
            Step::ApplyAnswer(sdp) => {
                let answer = RTCSessionDescription::answer(sdp).context("parsing the answer")?;
                self.peer
                    .pc
                    .set_remote_description(answer)
                    .await
                    .context("set_remote_description")?;
                debug!("answer applied");
                for c in self.pending.drain(..) {
                    peer::add_candidate(self.peer.pc.as_ref(), c).await;
                }
            }
            Step::AddCandidate(c) => peer::add_candidate(self.peer.pc.as_ref(), c).await,
            Step::BufferCandidate(c) => self.pending.push(c),
            Step::Demand(viewers, vp8_viewers) => {
                debug!(viewers, vp8_viewers, "demand");
                if self.peer.vp8.is_some() {
                    self.vp8.set(vp8_viewers > 0);
                }
                let switched = self.station.viewers_changed(viewers);
                self.follow(switched).await?;
            }
            Step::Fail(reason) => return Err(anyhow!(reason)),
            Step::Removed(camera) if camera == self.config.camera_id => {
                self.res.removed = true;
                return Ok(Some(format!(
                    "the server removed camera `{camera}` from its registry"
                )));
            }
            Step::Removed(_) => {}
            Step::IceServers(ice_servers) => {
                debug!("fresh TURN credentials: for direct viewers from now on (the SFU connection is up)");
                self.ice_servers = ice_servers;
            }
            Step::DirectOffer {
                viewer,
                sdp,
                may_control,
            } => self.on_direct_offer(viewer, sdp, may_control).await?,
            Step::DirectCandidate(viewer, c) => self.on_direct_candidate(viewer, c).await,
            Step::DirectClose(viewer) => self.on_direct_close(viewer).await,
            Step::Snapshot { request, width } => self.on_snapshot_request(request, width).await?,
            Step::Note(note) => warn!("{note}"),
            Step::Ignore => {}
        }
        Ok(None)
    }

    /// Registered: send our offer; from now on the server takes source reports.
    async fn offer(&mut self) -> anyhow::Result<()> {
        info!(camera = %self.config.camera_id, "registered; sending offer");
        let pc = &self.peer.pc;
        let offer = pc.create_offer(None).await.context("create_offer")?;
        let sdp = offer.sdp.clone();
        self.mid = peer::first_mid(&sdp);
        pc.set_local_description(offer)
            .await
            .context("set_local_description")?;
        websocket::send(&mut self.ws, &ClientMessage::Offer { sdp }).await?;
        self.registered = true;
        self.sync(true).await
    }

    /// A local candidate to trickle, or the peer connection's state.
    async fn on_peer_event(&mut self, ev: Option<PeerEvent>) -> Flow {
        match ev {
            Some(PeerEvent::LocalCandidate(init)) => {
                let msg = peer::candidate_message(init, self.mid.as_deref());
                websocket::send(&mut self.ws, &msg).await?;
            }
            Some(PeerEvent::State(state)) => {
                info!(camera = %self.config.camera_id, "peer connection {state}");
                let now = tokio::time::Instant::now();
                match self.liveness.on_state(state, self.res.connected, now) {
                    Verdict::Up => {
                        self.res.connected = true;
                        self.start_media().await;
                        self.sync(false).await?;
                    }
                    Verdict::End(reason) => return Ok(Some(reason)),
                    Verdict::Carry => {}
                }
            }
            Some(PeerEvent::Ice(state)) => {
                debug!(camera = %self.config.camera_id, "ICE {state}");
                if state == RTCIceConnectionState::Connected && !self.res.connected && !self.ice_up
                {
                    self.ice_up = true;
                    let handshake_by = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
                    self.setup_deadline = self.setup_deadline.min(handshake_by);
                }
            }
            // The SFU opens no channels; ours is the one we opened.
            Some(PeerEvent::DataChannel(_)) => debug!("the SFU opened a data channel: ignored"),
            None => return Err(anyhow!("peer connection event stream ended")),
        }
        Ok(None)
    }

    async fn on_control_event(&mut self, ev: Option<ControlEvent>) -> Flow {
        match ev {
            Some(ControlEvent::Open) => self.announce().await,
            Some(ControlEvent::Text(text)) => self.command(&text, None).await?,
            Some(ControlEvent::Closed) | None => {
                // For good: the next session opens a new one. Video goes on meanwhile.
                if self.control_open {
                    warn!("the control channel closed");
                }
                self.control_open = false;
                self.control_closed = true;
            }
        }
        Ok(None)
    }

    /// The source's state changed (or the supervisor we watched is gone).
    async fn on_source_state(&mut self, changed: Result<(), watch::error::RecvError>) -> Flow {
        if changed.is_err() {
            // That supervisor is gone (stopped or restarted); `sync` follows the new one.
            self.source_state = None;
            return Ok(None);
        }
        self.report_source().await?;
        Ok(None)
    }

    async fn on_frame_report(&mut self, changed: Result<(), watch::error::RecvError>) -> Flow {
        if changed.is_ok() {
            let seen = *self.frame_reports.borrow_and_update();
            self.frames_seen(seen).await;
        }
        Ok(None)
    }

    /// Motion started or ended: every viewer hears of it (the session holds a sender, so
    /// the channel never closes).
    async fn on_motion(&mut self, event: Option<MotionEvent>) -> Flow {
        if let Some(event) = event {
            info!(camera = %self.config.camera_id, phase = ?event.phase, region = ?event.region, score = event.score, "motion");
            self.broadcast(vec![ControlMessage::Motion(event).to_json()])
                .await;
        }
        Ok(None)
    }

    /// The on-demand idle time ran out.
    async fn on_idle_timer(&mut self) -> Flow {
        let switched = self.station.tick();
        self.follow(switched).await?;
        Ok(None)
    }

    /// Once a second: is the encode thread alive, is a schedule entry due, did a camera say
    /// which controls it has.
    async fn on_housekeeping(&mut self) -> Flow {
        if self
            .res
            .encode
            .as_ref()
            .is_some_and(EncodeThread::is_finished)
        {
            return Err(anyhow!("the encode pipeline stopped"));
        }
        self.run_schedule().await?;
        if let Some(change) = self.station.camera_controls_seen() {
            self.announce_source_change(change).await;
        }
        Ok(None)
    }

    fn setup_timed_out(&self) -> Flow {
        if self.ice_up {
            return Err(anyhow!(
                "ICE connected, but the DTLS handshake did not finish within \
                 {HANDSHAKE_TIMEOUT:?}"
            ));
        }
        Err(anyhow!(
            "no media connection within {SETUP_TIMEOUT:?} (phase {:?})",
            self.phase
        ))
    }
}

/// The next change of the watched source's state. Only polled while there is one.
async fn source_changed(
    rx: &mut Option<watch::Receiver<SourceReport>>,
) -> Result<(), watch::error::RecvError> {
    match rx.as_mut() {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
