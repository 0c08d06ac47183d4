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
//! The message handling decisions live in [`crate::session_state`], [`crate::on_demand`] and
//! [`crate::control`]; this file is the I/O around them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtc::media::Sample;
use sightline_protocol::control::ControlMessage;
use sightline_protocol::wire::{self, ClientMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use crate::config::PublisherConfig;
use crate::control::{Intent, SourceChange, SourceKind};
use crate::control_channel::{ControlChannel, ControlEvent};
use crate::h264::encoder::KeyframeRequest;
use crate::keyframe_feedback::is_keyframe_request;
use crate::on_demand::DemandAction;
use crate::peer::{self, Peer, PeerEvent};
use crate::pipeline::{EncodeContext, EncodeSettings, EncodeThread, FrameReport, OutFrame};
use crate::session_state::{self, Candidate, Phase, Step};
use crate::source::supervisor::SourceReport;
use crate::station::Station;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the WebSocket connect (TCP + upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long from connecting until the peer connection is up before we give up and retry.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Encoded frames buffered between the encode thread and the track writer.
const FRAME_QUEUE: usize = 4;
/// How often the session checks that its encode thread is still alive.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How a session ended.
pub struct Outcome {
    /// Whether media got flowing (the peer connection reached `connected`).
    pub connected: bool,
    pub reason: String,
}

/// Run one session to its end, publishing `station`'s camera. Never panics on network
/// trouble; every way out is an [`Outcome`] with the reason.
pub async fn run(config: &PublisherConfig, station: &mut Station) -> Outcome {
    let mut res = Resources::default();
    let reason = match drive(config, station, &mut res).await {
        Ok(reason) => reason,
        Err(e) => format!("{e:#}"),
    };
    let connected = res.connected;
    res.teardown().await;
    Outcome { connected, reason }
}

/// Everything a session owns that must be released when it ends, also when the session's
/// future is dropped mid-way (the [`Drop`] impl), so reconnects never leak threads, tasks or
/// sockets.
#[derive(Default)]
struct Resources {
    pc: Option<Arc<dyn PeerConnection>>,
    encode: Option<EncodeThread>,
    tasks: Vec<JoinHandle<()>>,
    connected: bool,
}

impl Resources {
    /// Orderly shutdown: stop tasks (dropping the frame receiver), stop the encode thread
    /// (which lets go of the source's frames), close the peer connection. (The WebSocket
    /// belongs to [`drive`] and closes when it returns.)
    async fn teardown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(encode) = self.encode.take() {
            if let Err(e) = encode.stop().await {
                warn!("encode thread ended with an error: {e:#}");
            }
        }
        if let Some(pc) = self.pc.take() {
            if let Err(e) = pc.close().await {
                debug!("closing the peer connection: {e}");
            }
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        // Only reached with something left when the session future was dropped (the
        // publisher task aborted): release what we can without awaiting.
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(encode) = self.encode.take() {
            encode.request_stop();
        }
        if let Some(pc) = self.pc.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}

/// The session's own state next to the station's; its methods do the I/O the decisions ask
/// for.
struct Live<'a> {
    config: &'a PublisherConfig,
    station: &'a mut Station,
    res: &'a mut Resources,
    peer: Peer,
    control: ControlChannel,
    /// The control channel is open (until then broadcasts wait for the announcement).
    control_open: bool,
    keyframes: KeyframeRequest,
    /// Where the encode thread sends frames; set once the peer connection is up.
    frames: Option<mpsc::Sender<OutFrame>>,
    report: watch::Sender<FrameReport>,
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
}

/// The session proper. `Ok(reason)` for an orderly end (server closed...), `Err` for failures.
async fn drive(
    config: &PublisherConfig,
    station: &mut Station,
    res: &mut Resources,
) -> anyhow::Result<String> {
    let target = server_addr(&config.server).await;
    let ws = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async(config.server.as_str()),
    )
    .await
    .map_err(|_| anyhow!("connecting to {}: timed out", config.server))?
    // Not `context`: tungstenite's error already repeats its source in its message.
    .map_err(|e| anyhow!("connecting to {}: {e}", config.server))?
    .0;
    info!(server = %config.server, "signaling connected");
    // Dropped (closing the TCP connection) when this function returns.
    let mut ws = ws;
    let ws = &mut ws;

    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let bind_ips: Vec<IpAddr> = target
        .and_then(peer::local_ip_towards)
        .into_iter()
        .collect();
    let peer = peer::build(&config.camera_id, &bind_ips, ev_tx).await?;
    res.pc = Some(Arc::clone(&peer.pc));
    let control = ControlChannel::new(Arc::clone(&peer.control));
    let (control_tx, mut control_events) = mpsc::unbounded_channel();
    res.tasks.push(control.spawn_reader(control_tx));
    let (report, mut frame_reports) = watch::channel(FrameReport::default());

    let mut live = Live {
        config,
        station,
        res,
        peer,
        control,
        control_open: false,
        keyframes: KeyframeRequest::default(),
        frames: None,
        report,
        encoding: None,
        watching: None,
        source_state: None,
        registered: false,
        sent_size: None,
    };

    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut phase = Phase::AwaitHello;
    let mut pending: Vec<Candidate> = Vec::new();
    // The mid our video m-line got; local candidates carry it.
    let mut mid: Option<String> = None;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut control_closed = false;

    loop {
        let idle_stop_at = live
            .station
            .demand
            .deadline()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        return Ok(format!("server closed the WebSocket ({frame:?})"));
                    }
                    Some(Ok(_)) => continue, // ping/pong/binary
                    Some(Err(e)) => return Err(anyhow!("WebSocket error: {e}")),
                    None => return Ok("server closed the WebSocket".into()),
                };
                let msg = match wire::parse_server_message(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        warn!("ignoring unparsable server message: {e}");
                        continue;
                    }
                };
                let (step, next) = session_state::on_message(phase, msg);
                phase = next;
                match step {
                    Step::Register => {
                        send(ws, &live.station.register_message(config)).await?;
                    }
                    Step::Offer => {
                        info!(camera = %config.camera_id, "registered; sending offer");
                        let pc = &live.peer.pc;
                        let offer = pc.create_offer(None).await.context("create_offer")?;
                        let sdp = offer.sdp.clone();
                        mid = first_mid(&sdp);
                        pc.set_local_description(offer).await.context("set_local_description")?;
                        send(ws, &ClientMessage::Offer { sdp }).await?;
                        live.registered = true;
                        live.sync(ws, true).await?;
                    }
                    Step::ApplyAnswer(sdp) => {
                        let answer = RTCSessionDescription::answer(sdp).context("parsing the answer")?;
                        live.peer.pc.set_remote_description(answer).await.context("set_remote_description")?;
                        debug!("answer applied");
                        for c in pending.drain(..) {
                            add_candidate(live.peer.pc.as_ref(), c).await;
                        }
                    }
                    Step::AddCandidate(c) => add_candidate(live.peer.pc.as_ref(), c).await,
                    Step::BufferCandidate(c) => pending.push(c),
                    Step::Demand(viewers) => {
                        debug!(viewers, "demand");
                        let action = live.station.demand.viewers_changed(viewers, Instant::now());
                        live.act(ws, action, None).await?;
                    }
                    Step::Fail(reason) => return Err(anyhow!(reason)),
                    Step::Note(note) => warn!("{note}"),
                    Step::Ignore => {}
                }
            }
            ev = events.recv() => match ev {
                Some(PeerEvent::LocalCandidate(init)) => {
                    send(ws, &candidate_message(init, mid.as_deref())).await?;
                }
                Some(PeerEvent::State(state)) => {
                    info!(camera = %config.camera_id, "peer connection {state}");
                    match state {
                        RTCPeerConnectionState::Connected if !live.res.connected => {
                            live.res.connected = true;
                            live.start_media().await;
                            live.sync(ws, false).await?;
                        }
                        RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Disconnected
                        | RTCPeerConnectionState::Closed => {
                            return Ok(format!("peer connection {state}"));
                        }
                        _ => {}
                    }
                }
                None => return Err(anyhow!("peer connection event stream ended")),
            },
            ev = control_events.recv(), if !control_closed => match ev {
                Some(ControlEvent::Open) => live.announce().await,
                Some(ControlEvent::Text(text)) => live.command(ws, &text).await?,
                Some(ControlEvent::Closed) | None => {
                    // For good: the next session opens a new one. Video goes on meanwhile.
                    if live.control_open {
                        warn!("the control channel closed");
                    }
                    live.control_open = false;
                    control_closed = true;
                }
            },
            changed = async { live.source_state.as_mut().unwrap().changed().await }, if live.source_state.is_some() && live.registered => {
                if changed.is_err() {
                    // That supervisor is gone (stopped or restarted); `sync` follows the new one.
                    live.source_state = None;
                    continue;
                }
                live.report_source(ws).await?;
            }
            changed = frame_reports.changed() => {
                if changed.is_ok() {
                    let seen = *frame_reports.borrow_and_update();
                    live.frames_seen(seen).await;
                }
            }
            _ = sleep_until_some(idle_stop_at), if idle_stop_at.is_some() => {
                let action = live.station.demand.tick(Instant::now());
                live.act(ws, action, None).await?;
            }
            _ = housekeeping.tick() => {
                if live.res.encode.as_ref().is_some_and(EncodeThread::is_finished) {
                    return Err(anyhow!("the encode pipeline stopped"));
                }
            }
            _ = tokio::time::sleep_until(deadline), if !live.res.connected => {
                return Err(anyhow!("no media connection within {SETUP_TIMEOUT:?} (phase {phase:?})"));
            }
        }
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Live<'_> {
    /// Connected: the track writer and the keyframe-request listener run for the rest of the
    /// session; the encode thread comes and goes with the capture ([`Self::sync`]).
    async fn start_media(&mut self) {
        let payload_type = match self.peer.sender.get_parameters().await {
            Ok(p) => p
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
                .unwrap_or(peer::H264_PAYLOAD_TYPE),
            Err(e) => {
                debug!(
                    "sender parameters: {e}; using payload type {}",
                    peer::H264_PAYLOAD_TYPE
                );
                peer::H264_PAYLOAD_TYPE
            }
        };
        let (tx, rx) = mpsc::channel(FRAME_QUEUE);
        self.frames = Some(tx);
        let track = Arc::clone(&self.peer.track);
        let (ssrc, fps) = (self.peer.ssrc, self.config.fps);
        self.res.tasks.push(tokio::spawn(write_frames(
            track,
            ssrc,
            payload_type,
            rx,
            fps,
        )));
        self.res
            .tasks
            .push(tokio::spawn(listen_for_keyframe_requests(
                Arc::clone(&self.peer.track),
                self.keyframes.clone(),
            )));
        info!(camera = %self.config.camera_id, payload_type, "media connected");
    }

    /// Make the session follow the capture: an encode thread reading the running source
    /// (restarted when the source is), none while it is stopped or the peer connection is
    /// not up; the server told the source's state, or `idle`. `force`: report even if
    /// nothing changed (right after registering).
    async fn sync(&mut self, ws: &mut Ws, force: bool) -> anyhow::Result<()> {
        let capture = &self.station.capture;
        let generation = capture.running().then(|| capture.generation());
        let want = generation.filter(|_| self.frames.is_some());
        if self.encoding.is_some() && self.encoding != want {
            if let Some(encode) = self.res.encode.take() {
                if let Err(e) = encode.stop().await {
                    warn!("encode thread ended with an error: {e:#}");
                }
            }
            self.encoding = None;
        }
        if let (Some(generation), None) = (want, self.encoding) {
            self.start_encoding(generation)?;
        }
        if self.watching != generation {
            self.watching = generation;
            self.source_state = self.station.capture.feed().map(|f| f.watch());
            if self.registered {
                self.report_source(ws).await?;
            }
        } else if force {
            self.report_source(ws).await?;
        }
        Ok(())
    }

    fn start_encoding(&mut self, generation: u64) -> anyhow::Result<()> {
        let (Some(feed), Some(frames)) = (self.station.capture.feed(), self.frames.clone()) else {
            return Ok(());
        };
        let pipeline = self.station.control.pipeline();
        let ctx = EncodeContext {
            settings: EncodeSettings {
                bitrate: pipeline.current().bitrate,
                keyframe_interval: self.config.keyframe_interval,
            },
            keyframes: self.keyframes.clone(),
            live: pipeline.reader(),
            report: self.report.clone(),
            applied: self.station.applied.clone(),
        };
        info!(camera = %self.config.camera_id, source = %feed.name(), "encoding");
        self.res.encode =
            Some(EncodeThread::start(feed, ctx, frames).context("starting the encode thread")?);
        self.encoding = Some(generation);
        Ok(())
    }

    /// Tell the server the source's state (the watch's current value is then seen).
    async fn report_source(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        if let Some(rx) = self.source_state.as_mut() {
            rx.borrow_and_update();
        }
        send(ws, &self.station.source_report()).await
    }

    /// Carry out a start or stop the station decided, and tell everyone.
    async fn act(
        &mut self,
        ws: &mut Ws,
        action: Option<DemandAction>,
        by: Option<String>,
    ) -> anyhow::Result<()> {
        let Some(action) = action else {
            return Ok(());
        };
        let update = self.station.apply(action, by);
        self.sync(ws, false).await?;
        if let Some(update) = update {
            self.broadcast(vec![ControlMessage::State(update).to_json()])
                .await;
        }
        Ok(())
    }

    /// The control channel opened: capabilities, then the state (the SFU keeps both for
    /// viewers who join later).
    async fn announce(&mut self) {
        self.control_open = true;
        info!(camera = %self.config.camera_id, "control channel open");
        let texts: Vec<String> = self
            .station
            .control
            .announce()
            .iter()
            .map(ControlMessage::to_json)
            .collect();
        self.control.send_all(&texts).await;
    }

    /// Broadcasts before the channel is open are dropped: the announcement carries them.
    async fn broadcast(&self, texts: Vec<String>) {
        if self.control_open {
            self.control.send_all(&texts).await;
        }
    }

    /// One command from a viewer (relayed by the SFU): the reply to its sender and any
    /// broadcast, then what it asks of the session.
    async fn command(&mut self, ws: &mut Ws, text: &str) -> anyhow::Result<()> {
        let outcome = self.station.control.handle_text(text);
        if let Some(plan) = outcome.plan.as_ref().filter(|p| !p.is_empty()) {
            info!(
                by = outcome.response.to.as_deref().unwrap_or("?"),
                "settings changed: {}",
                plan.describe()
            );
            if self.station.capture.running() {
                let version = self.station.control.version();
                self.station.applied.expect(
                    format!("settings v{version} ({})", plan.changed.join(", ")),
                    Some(version),
                );
            }
        }
        self.control.send_all(&outcome.messages()).await;
        let by = outcome.response.to.clone();
        let now = Instant::now();
        match outcome.intent {
            None => {}
            Some(Intent::RequestKeyframe) => self.keyframes.request(),
            Some(Intent::StartStream) => {
                let action = self.station.demand.command(true, now);
                self.act(ws, action, by).await?;
            }
            Some(Intent::StopStream) => {
                let action = self.station.demand.command(false, now);
                self.act(ws, action, by).await?;
            }
            Some(Intent::RestartCamera) => self.restart_camera(ws).await?,
        }
        Ok(())
    }

    /// Reopen the source (on the camera index the settings name, for V4L2), if it runs.
    async fn restart_camera(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let index = self.station.control.settings().camera_index;
        if let Some(index) = index {
            if self.station.capture.select_camera(index) {
                let mut profile = self.station.control.profile().clone();
                profile.camera_index = Some(index);
                if let Some(change) = self.station.control.source_changed(profile) {
                    self.announce_source_change(change).await;
                }
            }
        }
        if self.station.capture.running() {
            info!(source = %self.station.capture.name(), "restarting the camera");
            self.station
                .capture
                .restart()
                .context("restarting the source")?;
            self.sync(ws, false).await?;
        }
        Ok(())
    }

    /// The encode thread saw something new: the source's own size or rate (capabilities
    /// follow it), or a new size going out.
    async fn frames_seen(&mut self, seen: FrameReport) {
        if seen.sent_size.is_some() && seen.sent_size != self.sent_size {
            self.sent_size = seen.sent_size;
            if let Some((w, h)) = seen.sent_size {
                info!(camera = %self.config.camera_id, "sending {w}x{h}");
            }
        }
        let now = self.station.control.profile().clone();
        let mut next = now.clone();
        if let Some(size) = seen.source_size {
            next.native = size;
        }
        if seen.source_fps > 0 {
            next.max_fps = seen.source_fps;
        }
        if next.kind == SourceKind::Rtsp {
            next.passthrough = seen.passthrough;
        }
        if next == now {
            return;
        }
        let (w, h) = next.native;
        let Some(change) = self.station.control.source_changed(next) else {
            return;
        };
        info!(
            camera = %self.config.camera_id,
            "the source gives {w}x{h} at {} fps{}: capabilities updated",
            seen.source_fps,
            if seen.passthrough { " (H.264 passed through)" } else { "" },
        );
        self.announce_source_change(change).await;
    }

    /// What the source can do changed: tell every viewer (new capabilities, then the state
    /// they produced).
    async fn announce_source_change(&mut self, change: SourceChange) {
        for w in &change.warnings {
            warn!("{w}");
        }
        self.broadcast(vec![
            ControlMessage::Capabilities(change.capabilities).to_json(),
            ControlMessage::State(change.state).to_json(),
        ])
        .await;
    }
}

/// Hand each access unit to the track as one sample; the packetizer splits it into RTP.
async fn write_frames(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    mut frames: mpsc::Receiver<OutFrame>,
    fps: u32,
) {
    let mut failures = 0u64;
    let mut last_capture_us: Option<u64> = None;
    while let Some(frame) = frames.recv().await {
        // RTP time follows capture time, so a camera slower than its nominal rate or a
        // pause while the source was lost plays at the right speed. (The packetizer advances
        // the clock after a sample, so each step uses the interval before it: exact for a
        // steady rate, one frame late where the rate changes.)
        let duration = sample_duration(last_capture_us, frame.capture_us, fps);
        last_capture_us = Some(frame.capture_us);
        let sample = Sample {
            data: Bytes::from(frame.encoded.data),
            duration,
            ..Sample::new(Instant::now())
        };
        if let Err(e) = track
            .sample_writer(ssrc, payload_type)
            .write_sample(&sample)
            .await
        {
            failures += 1;
            // Log the first and then every 100th, not 30 lines a second.
            if failures == 1 || failures.is_multiple_of(100) {
                warn!(
                    failures,
                    frame = frame.index,
                    "writing a sample failed: {e}"
                );
            }
        }
    }
}

/// How far RTP time advances for a frame captured at `capture_us`: the time since the frame
/// before, kept within 1 ms..1 s (clocks can step; a long loss need not be replayed), or one
/// nominal frame period for the first frame.
fn sample_duration(last_capture_us: Option<u64>, capture_us: u64, fps: u32) -> Duration {
    let nominal = Duration::from_secs(1) / fps.max(1);
    match last_capture_us {
        Some(last) if capture_us > last => Duration::from_micros(capture_us - last)
            .clamp(Duration::from_millis(1), Duration::from_secs(1)),
        Some(_) => Duration::from_millis(1),
        None => nominal,
    }
}

/// Turn PLI/FIR from the SFU into encoder keyframes.
async fn listen_for_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    keyframes: KeyframeRequest,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    debug!("keyframe requested by the receiver");
                    keyframes.request();
                }
            }
            Some(_) => {}
            // Not bound (yet, or any more): look again shortly. The task is aborted at teardown.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json()))
        .await
        .context("sending on the WebSocket")
}

async fn add_candidate(pc: &dyn PeerConnection, c: Candidate) {
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
fn candidate_message(init: RTCIceCandidateInit, mid: Option<&str>) -> ClientMessage {
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
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(|m| m.trim().to_owned())
}

/// The server's socket address (for picking the local interface facing it).
async fn server_addr(url: &str) -> Option<SocketAddr> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    });
    let mut addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    addrs.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_addr_parses_urls() {
        assert_eq!(
            server_addr("ws://127.0.0.1:8080/ws").await,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            server_addr("ws://[::1]/ws").await,
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(server_addr("not a url").await, None);
    }

    #[test]
    fn rtp_time_follows_capture_time() {
        let ms = Duration::from_millis;
        assert_eq!(
            sample_duration(None, 5_000, 30),
            Duration::from_secs(1) / 30
        );
        assert_eq!(sample_duration(Some(1_000_000), 1_100_000, 30), ms(100));
        assert_eq!(sample_duration(Some(1_000_000), 1_000_000, 30), ms(1));
        assert_eq!(sample_duration(Some(2_000_000), 1_000_000, 30), ms(1));
        assert_eq!(sample_duration(Some(0), 60_000_000, 30), ms(1000));
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
