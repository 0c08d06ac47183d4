//! A headless viewer: the same signaling and WebRTC steps a browser takes, then every frame
//! decoded with openh264 and its barcode read back, so tests check real pixels.
//!
//! One tokio task per viewer owns the signaling socket, the UDP socket and the str0m peer.
//! It survives `camera_offline` (the SFU keeps the viewer's track, video resumes by itself)
//! and reconnects with backoff when the signaling socket or the peer is lost.
//!
//! With [`ViewerConfig::control`] the viewer also opens the camera-control data channel:
//! [`HeadlessViewer::control_request`] sends a command and waits for its response, and
//! [`HeadlessViewer::control`] holds every message received (welcome, responses, state and
//! capabilities broadcasts), which also appear as [`ViewerEvent::Control`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use sightline_protocol::control::{ControlMessage, Response, Welcome};
use sightline_protocol::wire::MediaPath;
use sightline_protocol::{CameraInfo, ClientMessage, ErrorCode, ServerMessage};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use sightline_publisher::backoff::Backoff;

use crate::control_client::{prepare_command, ControlInbox};
use crate::decode::{DecodedFrame, FrameDecoder};
use crate::loss::{DropPattern, IncomingFilter, PacketKind};
use crate::peer::{Datagram, PeerEvent, ViewerPeer};
use crate::signal::SignalClient;
use crate::stats::{Counters, ViewerStats};

/// How a viewer connects and behaves.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// Signaling WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub ws_url: String,
    pub camera_id: String,
    /// IP to bind the media socket on and advertise. `None`: the local address that routes
    /// to the signaling host (127.0.0.1 for a server on loopback).
    pub local_ip: Option<IpAddr>,
    /// Send a PLI when a frame fails to decode or arrives after a gap, as browsers do. Turn
    /// off to prove the SFU gets a new viewer its first keyframe by itself.
    pub keyframe_request_on_error: bool,
    /// Decode every access unit (the default). Off, frames are only counted and reported
    /// as [`ViewerEvent::Frame`] with no stamp and zero size: many cheap viewers for load
    /// tests of the server.
    pub decode: bool,
    /// Reconnect after the signaling socket or the peer is lost.
    pub reconnect: bool,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Simulate loss: drop these plain media RTP packets arriving from the SFU before the
    /// peer sees them (never RTX, RTCP, STUN or DTLS), so only NACK + RTX can repair them.
    pub drop_incoming_media: Option<DropPattern>,
    /// Longest wait for each signaling reply (hello, subscribed, answer).
    pub signaling_timeout: Duration,
    /// Events kept for a slow reader before the oldest are dropped (reported as lag).
    pub event_capacity: usize,
    /// Open the `control` data channel in the offer (camera control through the SFU).
    pub control: bool,
    /// A token to connect with (`?token=` on the signaling URL), for a server with tokens:
    /// its role decides whether this viewer may control.
    pub token: Option<String>,
    /// Trust for a `wss://` signaling URL (a private CA); `None`: the system's roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Ask for media straight from the publisher (P2P); the server may grant `server`.
    pub path: MediaPath,
    /// Offer VP8 and no H.264, as a browser without H.264 does: the SFU sends VP8, which
    /// is decoded (libvpx) and its barcodes read as H.264's are.
    pub vp8_only: bool,
    /// Every access unit received, as received (`bench janus` relays them to Janus).
    pub tap: Option<tokio::sync::mpsc::UnboundedSender<std::sync::Arc<[u8]>>>,
}

impl ViewerConfig {
    pub fn new(ws_url: impl Into<String>, camera_id: impl Into<String>) -> Self {
        ViewerConfig {
            ws_url: ws_url.into(),
            camera_id: camera_id.into(),
            local_ip: None,
            keyframe_request_on_error: true,
            decode: true,
            reconnect: true,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            drop_incoming_media: None,
            signaling_timeout: Duration::from_secs(10),
            event_capacity: 4096,
            control: false,
            token: None,
            tls: None,
            path: MediaPath::Server,
            vp8_only: false,
            tap: None,
        }
    }
}

/// What a viewer saw, in order.
#[derive(Debug, Clone)]
pub enum ViewerEvent {
    /// The server accepted the subscription (`session` counts from 1 across reconnects).
    Subscribed {
        session: u32,
        camera: CameraInfo,
        /// Where the media comes from (direct only when asked for and granted).
        path: MediaPath,
        at_us: u64,
    },
    /// ICE and DTLS are up.
    Connected {
        session: u32,
        at_us: u64,
    },
    Frame(DecodedFrame),
    CameraOnline {
        camera: CameraInfo,
    },
    CameraOffline {
        camera_id: String,
    },
    /// The server refused something on the live session.
    SignalingError {
        code: ErrorCode,
        message: String,
    },
    /// The session ended; the viewer reconnects if configured to.
    Disconnected {
        session: u32,
        reason: String,
    },
    /// A message on the control channel (only with [`ViewerConfig::control`]); boxed, as
    /// capabilities are large next to the other events.
    Control(Box<ControlMessage>),
}

enum Command {
    Close,
    RequestKeyframe,
    /// Text for the control channel (queued until it is open).
    Control(String),
}

/// Handle to a running headless viewer.
pub struct HeadlessViewer {
    events: broadcast::Receiver<ViewerEvent>,
    events_tx: broadcast::Sender<ViewerEvent>,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    control: Arc<ControlInbox>,
    task: Option<JoinHandle<()>>,
}

impl HeadlessViewer {
    /// Subscribe and start receiving. Fails if the first subscription fails (server down,
    /// unknown camera, bad answer); once running, losses are retried in the background.
    pub async fn connect(config: ViewerConfig) -> anyhow::Result<Self> {
        let (events_tx, events) = broadcast::channel(config.event_capacity.max(16));
        let counters = Arc::new(Counters::default());
        let session = establish(&config, 1, &events_tx, &counters).await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let control = Arc::new(ControlInbox::default());
        let driver = Driver {
            config,
            events: events_tx.clone(),
            counters: counters.clone(),
            commands: command_rx,
            last_keyframe_request: None,
            control: control.clone(),
            control_outbox: VecDeque::new(),
        };
        let task = tokio::spawn(driver.run(session));
        Ok(HeadlessViewer {
            events,
            events_tx,
            commands,
            counters,
            control,
            task: Some(task),
        })
    }

    pub fn stats(&self) -> ViewerStats {
        self.counters.snapshot()
    }

    /// Another independent event stream (from now on).
    pub fn events(&self) -> broadcast::Receiver<ViewerEvent> {
        self.events_tx.subscribe()
    }

    /// The next event since the viewer started. Lag (events dropped because nobody read
    /// them) is an error: tests about completeness must not miss frames silently.
    pub async fn next_event(&mut self, timeout: Duration) -> anyhow::Result<ViewerEvent> {
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Err(_) => Err(anyhow!("no viewer event within {timeout:?}")),
            Ok(Ok(e)) => Ok(e),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                Err(anyhow!("viewer events lagged: {n} dropped"))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => Err(anyhow!("viewer stopped")),
        }
    }

    /// The next decoded frame, skipping other events. `timeout` bounds the whole wait.
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<DecodedFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let ViewerEvent::Frame(f) = self
                .next_event(left)
                .await
                .with_context(|| format!("waiting for a frame; stats {:?}", self.stats()))?
            {
                return Ok(f);
            }
        }
    }

    /// Drop queued events (e.g. frames from before the moment a test cares about).
    pub fn clear_events(&mut self) {
        self.events = self.events.resubscribe();
    }

    /// Ask the sender for a keyframe now.
    pub fn request_keyframe(&self) {
        let _ = self.commands.send(Command::RequestKeyframe);
    }

    /// Everything the control channel delivered (needs [`ViewerConfig::control`]).
    pub fn control(&self) -> &ControlInbox {
        &self.control
    }

    /// Put any text on the control channel, valid or not (queued until the channel opens).
    pub fn send_control_text(&self, text: impl Into<String>) {
        let _ = self.commands.send(Command::Control(text.into()));
    }

    /// Send a control command and wait for its response. `command` is a JSON object such as
    /// `{"type":"update_settings","settings":{"fps":15}}`; `"v"` and a fresh `request_id`
    /// are added when missing. A refusal is a response too (`success: false`), not an error;
    /// errors are only: no response within `timeout`, or `command` not an object.
    pub async fn control_request(
        &self,
        command: serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<Response> {
        let (text, id) = prepare_command(command)?;
        self.send_control_text(text);
        self.control.wait_response(&id, timeout).await
    }

    /// `update_settings` with `settings` (a JSON object of setting: value).
    pub async fn update_settings(
        &self,
        settings: serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<Response> {
        self.control_request(
            serde_json::json!({"type": "update_settings", "settings": settings}),
            timeout,
        )
        .await
    }

    /// Wait for the SFU's `welcome` on the control channel (it comes once the channel opens).
    pub async fn wait_welcome(&self, timeout: Duration) -> anyhow::Result<Welcome> {
        self.control
            .wait_for(timeout, "the control channel's welcome", |msgs| {
                msgs.iter().rev().find_map(|r| match &r.message {
                    ControlMessage::Welcome(w) => Some(w.clone()),
                    _ => None,
                })
            })
            .await
    }

    /// Leave: close the signaling socket and drop the peer, so the server frees it.
    pub async fn close(mut self) {
        let _ = self.commands.send(Command::Close);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for HeadlessViewer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One subscription: signaling socket, media socket, peer and decoder.
struct Session {
    number: u32,
    signal: SignalClient,
    socket: UdpSocket,
    peer: ViewerPeer,
    decoder: FrameDecoder,
    incoming: IncomingFilter,
    /// str0m's NACK total for this peer at its last report (it restarts with each peer).
    nacks_reported: u64,
}

/// Signaling up to an applied answer: hello → subscribe → subscribed → offer → answer.
async fn establish(
    config: &ViewerConfig,
    number: u32,
    events: &broadcast::Sender<ViewerEvent>,
    counters: &Counters,
) -> anyhow::Result<Session> {
    let t = config.signaling_timeout;
    let url = match &config.token {
        Some(token) => format!("{}?token={token}", config.ws_url),
        None => config.ws_url.clone(),
    };
    let (mut signal, _) = SignalClient::connect_hello_tls(&url, config.tls.clone(), t).await?;
    signal
        .send(&ClientMessage::Subscribe {
            camera_id: config.camera_id.clone(),
            path: config.path,
        })
        .await?;
    let (camera, path) = signal
        .recv_until(t, |m| match m {
            ServerMessage::Subscribed { camera, path, .. } => Some((camera.clone(), *path)),
            _ => None,
        })
        .await
        .context("subscribing")?;
    Counters::bump(&counters.sessions);
    let _ = events.send(ViewerEvent::Subscribed {
        session: number,
        camera,
        path,
        at_us: sightline_publisher::barcode::now_us(),
    });

    let ip = match config.local_ip {
        Some(ip) => ip,
        None => crate::route::local_ip_towards(&config.ws_url)?,
    };
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .with_context(|| format!("binding a UDP socket on {ip}"))?;
    let (mut peer, offer) = ViewerPeer::offering(
        socket.local_addr()?,
        Instant::now(),
        config.control,
        config.vp8_only,
    )?;
    signal.send(&ClientMessage::Offer { sdp: offer }).await?;
    // Candidates may be trickled before the answer; keep them for after.
    let mut early = Vec::new();
    let answer = signal
        .recv_until(t, |m| match m {
            ServerMessage::Answer { sdp, .. } => Some(sdp.clone()),
            ServerMessage::Candidate { candidate, .. } => {
                early.push(candidate.clone());
                None
            }
            _ => None,
        })
        .await
        .context("waiting for the answer")?;
    peer.accept_answer(&answer)?;
    for c in early {
        if let Err(e) = peer.add_remote_candidate(&c) {
            tracing::warn!("ignoring server candidate: {e:#}");
        }
    }
    let incoming = IncomingFilter::new(peer.video_pts(), config.drop_incoming_media);
    Ok(Session {
        number,
        signal,
        socket,
        peer,
        decoder: if config.vp8_only {
            FrameDecoder::vp8()?
        } else {
            FrameDecoder::new()?
        },
        incoming,
        nacks_reported: 0,
    })
}

enum End {
    Closed,
    Lost(String),
}

/// Least time between two PLIs this viewer sends: one lost packet should not become a burst.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);

struct Driver {
    config: ViewerConfig,
    events: broadcast::Sender<ViewerEvent>,
    counters: Arc<Counters>,
    commands: mpsc::UnboundedReceiver<Command>,
    last_keyframe_request: Option<Instant>,
    control: Arc<ControlInbox>,
    /// Control texts not yet written (the channel is not open, or its buffer was full).
    control_outbox: VecDeque<String>,
}

impl Driver {
    async fn run(mut self, first: Session) {
        let mut session = first;
        // Up to ±25% jitter so viewers that lost the same server do not knock in lockstep.
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max, 0.25);
        loop {
            let number = session.number;
            let end = self.run_session(&mut session).await;
            self.control.set_open(false);
            session.peer.close();
            session.signal.close().await;
            let reason = match end {
                End::Closed => return,
                End::Lost(reason) => reason,
            };
            tracing::info!(session = number, %reason, "viewer session lost");
            let _ = self.events.send(ViewerEvent::Disconnected {
                session: number,
                reason,
            });
            if !self.config.reconnect {
                return;
            }
            session = match self.reconnect(number + 1, &mut backoff).await {
                Some(s) => s,
                None => return,
            };
        }
    }

    /// Retry until a new session is up; `None` if told to close meanwhile.
    async fn reconnect(&mut self, number: u32, backoff: &mut Backoff) -> Option<Session> {
        loop {
            let delay = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                cmd = self.commands.recv() => {
                    match cmd {
                        None | Some(Command::Close) => return None,
                        Some(Command::Control(text)) => self.control_outbox.push_back(text),
                        Some(Command::RequestKeyframe) => {}
                    }
                    continue;
                }
            }
            let attempt = establish(&self.config, number, &self.events, &self.counters);
            tokio::select! {
                r = attempt => match r {
                    Ok(s) => {
                        backoff.reset();
                        return Some(s);
                    }
                    Err(e) => tracing::debug!("viewer reconnect failed: {e:#}"),
                },
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Close) => return None,
                    Some(Command::Control(text)) => self.control_outbox.push_back(text),
                    Some(Command::RequestKeyframe) => {}
                }
            }
        }
    }

    async fn run_session(&mut self, s: &mut Session) -> End {
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        let mut peer_events = Vec::new();
        loop {
            self.flush_control(s);
            let next_timeout = s.peer.drain(&mut out, &mut peer_events);
            for Datagram {
                destination,
                contents,
            } in out.drain(..)
            {
                if let Err(e) = s.socket.send_to(&contents, destination).await {
                    tracing::debug!(%destination, "udp send failed: {e}");
                }
            }
            if !peer_events.is_empty() {
                for ev in std::mem::take(&mut peer_events) {
                    if let Some(end) = self.on_peer_event(s, ev) {
                        return end;
                    }
                }
                // Handling events may have queued work (a keyframe request): drain again
                // before waiting.
                continue;
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next_timeout));
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Close) => return End::Closed,
                    Some(Command::RequestKeyframe) => self.request_keyframe(s, true),
                    Some(Command::Control(text)) => self.control_outbox.push_back(text),
                },
                msg = s.signal.recv() => match msg {
                    Ok(m) => self.on_signal(s, m),
                    Err(e) => return End::Lost(format!("signaling: {e:#}")),
                },
                r = s.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => self.on_datagram(s, source, &buf[..n]),
                    Err(e) => tracing::debug!("udp receive failed: {e}"),
                },
                _ = sleep => s.peer.handle_timeout(Instant::now()),
            }
        }
    }

    /// Write queued control texts, oldest first, while the channel takes them.
    fn flush_control(&mut self, s: &mut Session) {
        while let Some(text) = self.control_outbox.front() {
            if !s.peer.send_control(text) {
                if self.config.control && s.peer.control_is_open() {
                    tracing::debug!("control channel buffer full; retrying");
                }
                return;
            }
            self.control_outbox.pop_front();
        }
    }

    fn on_datagram(&mut self, s: &mut Session, source: SocketAddr, data: &[u8]) {
        let verdict = s.incoming.admit(data);
        match verdict.kind {
            PacketKind::Media => {
                Counters::bump(&self.counters.media_packets_received);
                Counters::add(&self.counters.media_packets_skipped, verdict.skipped);
            }
            PacketKind::Rtx => Counters::bump(&self.counters.rtx_packets_received),
            PacketKind::Other => {}
        }
        if verdict.deliver {
            s.peer.handle_datagram(Instant::now(), source, data);
        } else {
            Counters::bump(&self.counters.media_packets_dropped);
        }
    }

    fn on_signal(&mut self, s: &mut Session, msg: ServerMessage) {
        match msg {
            ServerMessage::Candidate { candidate, .. } => {
                if let Err(e) = s.peer.add_remote_candidate(&candidate) {
                    tracing::warn!("ignoring server candidate: {e:#}");
                }
            }
            ServerMessage::CameraOffline { camera_id } if camera_id == self.config.camera_id => {
                Counters::bump(&self.counters.camera_offline_events);
                let _ = self.events.send(ViewerEvent::CameraOffline { camera_id });
            }
            ServerMessage::CameraOnline { camera } if camera.id == self.config.camera_id => {
                let _ = self.events.send(ViewerEvent::CameraOnline { camera });
            }
            ServerMessage::Error { code, message } => {
                tracing::warn!(code = code.as_str(), %message, "server error on a live session");
                let _ = self
                    .events
                    .send(ViewerEvent::SignalingError { code, message });
            }
            other => tracing::trace!(?other, "signaling message ignored"),
        }
    }

    fn on_peer_event(&mut self, s: &mut Session, ev: PeerEvent) -> Option<End> {
        match ev {
            PeerEvent::Connected => {
                let _ = self.events.send(ViewerEvent::Connected {
                    session: s.number,
                    at_us: sightline_publisher::barcode::now_us(),
                });
            }
            PeerEvent::Lost(reason) => return Some(End::Lost(format!("peer: {reason}"))),
            PeerEvent::NacksSent(total) => {
                let new = total.saturating_sub(s.nacks_reported);
                s.nacks_reported = s.nacks_reported.max(total);
                Counters::add(&self.counters.nacks_sent, new);
            }
            PeerEvent::ControlOpen => self.control.set_open(true),
            PeerEvent::ControlClosed => self.control.set_open(false),
            PeerEvent::ControlMessage { data, binary } => {
                let text = String::from_utf8_lossy(&data);
                if binary {
                    tracing::warn!("binary message on the control channel: {text}");
                }
                if let Some(m) = self.control.receive(&text, s.number) {
                    let _ = self.events.send(ViewerEvent::Control(Box::new(m)));
                }
            }
            PeerEvent::Frame { data, contiguous } => {
                if let Some(tap) = &self.config.tap {
                    let _ = tap.send(data.clone());
                }
                Counters::bump(&self.counters.frames_received);
                Counters::add(&self.counters.frame_bytes_received, data.len() as u64);
                if !contiguous {
                    Counters::bump(&self.counters.frames_not_contiguous);
                }
                if !self.config.decode {
                    let _ = self.events.send(ViewerEvent::Frame(DecodedFrame {
                        stamp: None,
                        width: 0,
                        height: 0,
                        received_at_us: sightline_publisher::barcode::now_us(),
                        keyframe: s.decoder.is_keyframe(&data),
                        session: s.number,
                        bytes: data.len(),
                        mean_luma: 0,
                    }));
                    return None;
                }
                match s.decoder.decode(&data) {
                    Ok(Some(mut frame)) => {
                        frame.session = s.number;
                        Counters::bump(&self.counters.frames_decoded);
                        if frame.stamp.is_some() {
                            Counters::bump(&self.counters.stamps_read);
                        }
                        if frame.keyframe {
                            Counters::bump(&self.counters.keyframes_decoded);
                        }
                        let _ = self.events.send(ViewerEvent::Frame(frame));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        Counters::bump(&self.counters.decode_errors);
                        tracing::debug!(session = s.number, "decode failed: {e}");
                        self.request_keyframe(s, false);
                    }
                }
                if !contiguous {
                    self.request_keyframe(s, false);
                }
            }
        }
        None
    }

    /// Send a PLI: always when asked explicitly, on errors only if configured, and never
    /// more often than [`KEYFRAME_REQUEST_GAP`] on errors.
    fn request_keyframe(&mut self, s: &mut Session, explicit: bool) {
        if !explicit {
            if !self.config.keyframe_request_on_error {
                return;
            }
            if let Some(t) = self.last_keyframe_request {
                if t.elapsed() < KEYFRAME_REQUEST_GAP {
                    return;
                }
            }
        }
        if s.peer.request_keyframe() {
            self.last_keyframe_request = Some(Instant::now());
            Counters::bump(&self.counters.keyframe_requests_sent);
        }
    }
}
