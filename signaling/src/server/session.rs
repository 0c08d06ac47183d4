//! One signaling session: a WebSocket connection that becomes a publisher (after `register`)
//! or a viewer (after `subscribe`). Every bad message gets an `error` reply and the session
//! goes on; only a closed socket, server shutdown, or a takeover of its camera by a newer
//! session of the same publisher ends it.
//!
//! What the session may do was decided when it connected ([`Grant`]); camera lists and
//! camera events show only the cameras it covers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::{Message, WebSocket};
use sightline_sfu::{PeerId, SfuError, SfuEvent, ViewerAccess};
use tokio::sync::broadcast::error::RecvError;

use super::registry::{Demand, Registration, SessionId};
use super::AppState;
use crate::auth::{AuthMode, Grant, Role as Needs};
use sightline_protocol::wire::{
    parse_client_message, parse_snapshot_reply, ClientMessage, ErrorCode, MediaPath, ServerMessage,
    SourceStatus, WireError, MAX_SNAPSHOT_MESSAGE_BYTES, RESUME_CLOSE_CODE,
};

mod media;

/// What the session has become.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Connected; may list cameras, register or subscribe.
    Idle,
    /// Registered `camera_id`; `peer` once its offer was answered.
    Publisher {
        camera_id: String,
        peer: Option<PeerId>,
    },
    /// Watching `camera_id`; `peer` once its offer was answered. `access`: what it may do
    /// on its control data channel. `direct`: its media comes straight from the publisher
    /// (its offer and candidates go there, and `peer` stays `None`). `resume`: the key its
    /// SFU peer is held under in the resume table (see [`super::resume`]).
    Viewer {
        camera_id: String,
        peer: Option<PeerId>,
        access: ViewerAccess,
        direct: bool,
        resume: Option<String>,
    },
}

impl Role {
    fn peer(&self) -> Option<PeerId> {
        match self {
            Role::Idle => None,
            Role::Publisher { peer, .. } | Role::Viewer { peer, .. } => *peer,
        }
    }

    /// Forget the peer (and a viewer's resume key); returns both.
    fn take_peer(&mut self) -> (Option<PeerId>, Option<String>) {
        match self {
            Role::Idle => (None, None),
            Role::Publisher { peer, .. } => (peer.take(), None),
            Role::Viewer { peer, resume, .. } => (peer.take(), resume.take()),
        }
    }
}

/// Why a session is told to end by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eviction {
    /// A newer session of the same publisher took its camera over.
    CameraTakenOver,
    /// A newer session of the same viewer resumed its media connection (the old socket is
    /// on a dead path, most likely).
    Resumed,
    /// Its camera was taken out of the registry: the publisher is told, and stops.
    CameraRemoved,
}

pub(super) struct Session {
    id: SessionId,
    state: Arc<AppState>,
    role: Role,
    /// The WebSocket peer's address, for the logs.
    remote: IpAddr,
    /// What its token (or the server's open mode) lets it do.
    grant: Grant,
}

impl Session {
    pub(super) fn new(id: SessionId, state: Arc<AppState>, remote: IpAddr, grant: Grant) -> Self {
        Session {
            id,
            state,
            role: Role::Idle,
            remote,
            grant,
        }
    }

    /// Serve the socket until it closes or the server shuts down, then release everything
    /// this session held.
    pub(super) async fn run(mut self, mut socket: WebSocket) {
        let mut events = self.state.events.subscribe();
        let mut demand = self.state.demand.subscribe();
        let mut sfu_events = self.state.sfu.events();
        let mut evictions = self.state.evictions.subscribe();
        let mut shutdown = self.state.shutdown.subscribe();
        let mut inbox = self.state.open_mailbox(self.id);
        tracing::debug!(session = self.id, remote = %self.remote, subject = self.grant.subject().unwrap_or(""), "session open");

        let hello = ServerMessage::Hello {
            session_id: self.id,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            ice_servers: self.state.ice_servers(&self.ice_subject()),
        };
        // Fresh TURN credentials before the old ones expire (never, without TURN).
        let refresh = self.state.ice.refresh_every();
        let mut ice_refresh =
            tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
        let turn = self.state.ice.expires();
        // Whether the socket was lost (rather than closed, evicted or shut down): a viewer's
        // media connection then waits a while for the page to resume it from a new socket.
        let mut lost = true;
        if send(&mut socket, &hello).await.is_ok() {
            loop {
                tokio::select! {
                    _ = ice_refresh.tick(), if turn => {
                        let fresh = ServerMessage::IceServers {
                            ice_servers: self.state.ice_servers(&self.ice_subject()),
                        };
                        if send(&mut socket, &fresh).await.is_err() {
                            break;
                        }
                    }
                    incoming = socket.recv() => {
                        let Some(Ok(msg)) = incoming else { break };
                        let replies = match msg {
                            Message::Text(text) => self.handle_text(text.as_str()).await,
                            Message::Binary(data) => self.handle_binary(&data),
                            Message::Close(frame) => {
                                // The page's "reconnecting" close: it will resume.
                                lost = frame.is_some_and(|f| f.code == RESUME_CLOSE_CODE);
                                break;
                            }
                            Message::Ping(_) | Message::Pong(_) => continue,
                        };
                        if send_all(&mut socket, &replies).await.is_err() {
                            break;
                        }
                    }
                    event = events.recv() => match event {
                        Ok(msg) if !self.sees(&msg) => {}
                        Ok(msg) => {
                            if send(&mut socket, &msg).await.is_err() {
                                break;
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(session = self.id, missed = n, "session fell behind on camera events");
                        }
                        Err(RecvError::Closed) => {
                            lost = false;
                            break;
                        }
                    },
                    change = demand.recv() => {
                        let note = match change {
                            Ok((camera, demand)) => self.demand_for(&camera, Some(demand)),
                            // Missed some: tell our publisher the count as it is now.
                            Err(RecvError::Lagged(_)) => self.publisher_camera().and_then(|c| self.demand_for(&c, None)),
                            Err(RecvError::Closed) => {
                                lost = false;
                                break;
                            }
                        };
                        if let Some(msg) = note {
                            if send(&mut socket, &msg).await.is_err() {
                                break;
                            }
                        }
                    }
                    event = sfu_events.recv() => {
                        if let Ok(SfuEvent::PeerClosed { peer, reason }) = event {
                            if self.role.peer() == Some(peer) {
                                tracing::info!(session = self.id, %peer, %reason, "media peer closed");
                                self.let_go_of_peer(false).await;
                                self.sent_vp8(false);
                            }
                        }
                    }
                    evicted = evictions.recv() => match evicted {
                        Ok((id, Eviction::Resumed)) if id == self.id => {
                            // The resume table names the new owner: nothing of ours to close.
                            tracing::info!(session = self.id, "media connection resumed by a newer session; this one ends");
                            lost = false;
                            break;
                        }
                        Ok((id, Eviction::CameraTakenOver)) if id == self.id => {
                            let camera = self.publisher_camera().unwrap_or_default();
                            tracing::info!(session = self.id, %camera, "camera taken over by a newer session of the same publisher");
                            let bye = WireError::new(
                                ErrorCode::Forbidden,
                                format!("camera `{camera}` was taken over by a newer connection with the same token subject; this session ends"),
                            );
                            let _ = send(&mut socket, &bye.into()).await;
                            lost = false;
                            break;
                        }
                        Ok((id, Eviction::CameraRemoved)) if id == self.id => {
                            // Said here too, in case the broadcast comes after the close.
                            let camera_id = self.publisher_camera().unwrap_or_default();
                            let _ = send(&mut socket, &ServerMessage::CameraRemoved { camera_id }).await;
                            let _ = socket.send(Message::Close(None)).await;
                            lost = false;
                            break;
                        }
                        _ => {}
                    },
                    Some(msg) = inbox.recv() => {
                        if send(&mut socket, &msg).await.is_err() {
                            break;
                        }
                    }
                    // `wait_for`, not `changed`: a session opened as shutdown began must see it.
                    _ = async { shutdown.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                        // Said before the close, so clients know to come back.
                        let _ = send(&mut socket, &ServerMessage::ServerStopping).await;
                        let _ = socket.send(Message::Close(None)).await;
                        lost = false;
                        break;
                    }
                }
            }
        }
        self.state.close_mailbox(self.id);
        self.release(lost).await;
        tracing::debug!(session = self.id, "session closed");
    }

    /// Parse and act on one text message; returns what to send back.
    async fn handle_text(&mut self, text: &str) -> Vec<ServerMessage> {
        let msg = match parse_client_message(text) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "refused message");
                return vec![e.into()];
            }
        };
        match self.handle(msg).await {
            Ok(replies) => replies,
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "refused message");
                vec![e.into()]
            }
        }
    }

    /// A binary message: only a publisher's snapshot (`snapshot_request`'s answer).
    fn handle_binary(&mut self, data: &[u8]) -> Vec<ServerMessage> {
        let answered = parse_snapshot_reply(data)
            .map_err(|e| WireError::new(ErrorCode::BadMessage, e))
            .and_then(|(request, jpeg)| self.snapshot_answer(request, Ok(jpeg.to_vec())));
        match answered {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "refused binary message");
                vec![e.into()]
            }
        }
    }

    /// Our publisher answers snapshot `request`. One that is no longer waited for (its
    /// caller gave up) is dropped quietly.
    fn snapshot_answer(
        &mut self,
        request: u64,
        answer: Result<Vec<u8>, String>,
    ) -> Result<(), WireError> {
        if !matches!(self.role, Role::Publisher { .. }) {
            return Err(wrong_state(
                "only a camera's publisher answers snapshot requests",
            ));
        }
        if !self
            .state
            .snapshots
            .lock()
            .unwrap()
            .answer(self.id, request, answer)
        {
            tracing::debug!(session = self.id, request, "a snapshot nobody waits for");
        }
        Ok(())
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<Vec<ServerMessage>, WireError> {
        match msg {
            ClientMessage::List => {
                let mut cameras = self.registry().list();
                cameras.retain(|c| self.grant.sees(&c.id));
                Ok(vec![ServerMessage::Cameras { cameras }])
            }
            ClientMessage::Register {
                camera_id,
                name,
                width,
                height,
                fps,
                p2p_max,
            } => {
                if self.role != Role::Idle {
                    return Err(wrong_state(
                        "this session is already a publisher or viewer; open a new connection",
                    ));
                }
                self.grant
                    .check(Needs::Publish, &camera_id, SystemTime::now())?;
                let tokens = matches!(self.state.auth.mode(), AuthMode::Tokens(_));
                let reg = Registration {
                    camera_id: camera_id.clone(),
                    name,
                    width,
                    height,
                    fps,
                    p2p_max,
                    subject: self.grant.subject().map(str::to_owned),
                };
                let registered =
                    self.registry()
                        .register(self.id, reg)
                        .map_err(|e| match e.code {
                            // With tokens, someone else's camera is simply not yours.
                            ErrorCode::CameraAlreadyLive if tokens => WireError::new(
                                ErrorCode::Forbidden,
                                format!(
                                    "camera `{camera_id}` is live from another publisher; only a \
                                 token with the same subject may take it over"
                                ),
                            ),
                            _ => e,
                        })?;
                let camera = registered.camera;
                if let Some(old) = registered.replaced {
                    tracing::info!(session = self.id, camera = %camera_id, old_session = old, "publisher took its camera over");
                    let _ = self.state.evictions.send((old, Eviction::CameraTakenOver));
                }
                tracing::info!(session = self.id, camera = %camera_id, subject = self.grant.subject().unwrap_or(""), "camera online");
                self.role = Role::Publisher {
                    camera_id: camera_id.clone(),
                    peer: None,
                };
                let demand = self.registry().demand(&camera_id);
                // Nobody listening is fine.
                let _ = self
                    .state
                    .events
                    .send(ServerMessage::CameraOnline { camera });
                Ok(vec![
                    ServerMessage::Registered {
                        camera_id: camera_id.clone(),
                    },
                    ServerMessage::Demand {
                        camera_id,
                        viewers: demand.viewers,
                        vp8_viewers: demand.vp8_viewers,
                    },
                ])
            }
            ClientMessage::Subscribe { camera_id, path } => {
                if matches!(self.role, Role::Publisher { .. }) {
                    return Err(wrong_state("a publisher session cannot subscribe"));
                }
                self.grant
                    .check(Needs::View, &camera_id, SystemTime::now())?;
                let access = self.grant.viewer_access();
                let camera = self.registry().subscribe(self.id, &camera_id)?;
                // A new subscription replaces the old one and its peer connection.
                self.release_viewer(Some(&camera_id), false).await;
                self.viewers_changed(&camera_id);
                let (path, note) = match path {
                    MediaPath::Server => (MediaPath::Server, None),
                    MediaPath::Direct => {
                        let granted = self.registry().grant_direct(self.id, &camera_id);
                        match granted {
                            Ok(()) => (MediaPath::Direct, None),
                            Err(why) => (
                                MediaPath::Server,
                                Some(format!(
                                    "no direct path: {why}; watching through the server"
                                )),
                            ),
                        }
                    }
                };
                tracing::info!(session = self.id, camera = %camera_id, ?access, ?path, "viewer subscribed");
                self.role = Role::Viewer {
                    camera_id,
                    peer: None,
                    access,
                    direct: path == MediaPath::Direct,
                    resume: None,
                };
                Ok(vec![ServerMessage::Subscribed { camera, path, note }])
            }
            ClientMessage::DirectAnswer { viewer, sdp } => {
                self.to_direct_viewer(viewer, ServerMessage::Answer { sdp, resume: None })
            }
            ClientMessage::DirectCandidate {
                viewer,
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => self.to_direct_viewer(
                viewer,
                ServerMessage::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                },
            ),
            ClientMessage::DirectEnded { viewer, reason } => {
                let reply = self.to_direct_viewer(viewer, ServerMessage::DirectFailed { reason });
                if let Some(camera_id) = self.publisher_camera() {
                    self.registry().end_direct(viewer, &camera_id);
                }
                reply
            }
            ClientMessage::SnapshotFailed { request, reason } => {
                self.snapshot_answer(request, Err(reason))?;
                Ok(Vec::new())
            }
            ClientMessage::Offer { sdp } => self.offer(&sdp).await,
            ClientMessage::IceRestart { sdp, resume: None } => self.restart_ice(&sdp).await,
            ClientMessage::IceRestart {
                sdp,
                resume: Some(key),
            } => self.resume(&key, &sdp).await,
            ClientMessage::SourceState {
                state,
                error,
                source,
                detail,
            } => {
                let Role::Publisher { camera_id, .. } = &self.role else {
                    return Err(wrong_state(
                        "only a registered publisher reports a source state",
                    ));
                };
                let camera_id = camera_id.clone();
                let status = SourceStatus {
                    state,
                    error,
                    source,
                    detail,
                };
                let changed =
                    self.registry()
                        .set_source_state(self.id, &camera_id, status.clone())?;
                if changed {
                    tracing::info!(
                        session = self.id,
                        camera = %camera_id,
                        source = %status.source,
                        state = status.state.as_str(),
                        error = status.error.as_deref().unwrap_or(""),
                        detail = status.detail.as_deref().unwrap_or(""),
                        "camera source state"
                    );
                    // Every session: camera lists everywhere show it. Nobody listening is fine.
                    let _ = self.state.events.send(ServerMessage::SourceState {
                        camera_id,
                        state: status.state,
                        error: status.error,
                        source: status.source,
                        detail: status.detail,
                    });
                }
                Ok(vec![])
            }
            ClientMessage::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                if let Some(publisher) = self.direct_publisher()? {
                    let msg = ServerMessage::DirectCandidate {
                        viewer: self.id,
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    };
                    return self.to_publisher(publisher, msg);
                }
                let Some(peer) = self.role.peer() else {
                    return Err(wrong_state("send your offer before ICE candidates"));
                };
                if candidate.trim().is_empty() {
                    return Ok(vec![]); // end of candidates
                }
                self.state
                    .sfu
                    .add_remote_candidate(peer, &candidate)
                    .await
                    .map_err(sfu_error)?;
                Ok(vec![])
            }
        }
    }

    /// The camera registry, locked for one call.
    fn registry(&self) -> std::sync::MutexGuard<'_, super::registry::Registry> {
        self.state.registry.lock().unwrap()
    }

    /// Tell every session (its publisher listens) that `camera_id`'s viewer count changed.
    fn viewers_changed(&self, camera_id: &str) {
        self.state.viewers_changed(camera_id);
    }

    /// A viewer's media peer is (or is no longer) sent VP8: its publisher encodes VP8 only
    /// while some viewer is, so it hears of every change.
    fn sent_vp8(&self, vp8: bool) {
        if let Role::Viewer { camera_id, .. } = &self.role {
            if self.registry().set_vp8(self.id, camera_id, vp8) {
                self.viewers_changed(camera_id);
            }
        }
    }

    /// Who TURN credentials name: the token's subject, else this session.
    fn ice_subject(&self) -> String {
        self.grant
            .subject()
            .map_or_else(|| format!("session-{}", self.id), str::to_owned)
    }

    /// Whether this session is shown a camera event (only cameras its grant covers).
    fn sees(&self, msg: &ServerMessage) -> bool {
        match msg {
            ServerMessage::CameraOnline { camera } => self.grant.sees(&camera.id),
            ServerMessage::CameraOffline { camera_id }
            | ServerMessage::CameraRemoved { camera_id }
            | ServerMessage::SourceState { camera_id, .. } => self.grant.sees(camera_id),
            _ => true,
        }
    }

    /// For a direct viewer, the publisher session serving it; `None` for any other session.
    /// A direct viewer whose publisher left is told to subscribe again.
    fn direct_publisher(&self) -> Result<Option<SessionId>, WireError> {
        let Role::Viewer {
            camera_id,
            direct: true,
            ..
        } = &self.role
        else {
            return Ok(None);
        };
        let publisher = self.registry().direct_publisher(self.id, camera_id);
        publisher.map(Some).ok_or_else(|| {
            wrong_state(
                "the direct path to this camera ended (its publisher left); subscribe again",
            )
        })
    }

    /// Relay a direct viewer's message to its publisher session.
    fn to_publisher(
        &self,
        publisher: SessionId,
        msg: ServerMessage,
    ) -> Result<Vec<ServerMessage>, WireError> {
        if self.state.deliver(publisher, msg) {
            Ok(vec![])
        } else {
            Err(WireError::new(
                ErrorCode::WrongState,
                "the camera's publisher is not taking messages now; subscribe again to watch through the server",
            ))
        }
    }

    /// Relay a publisher's message to one of its direct viewers. A viewer that has left (or
    /// was never its direct viewer) is an error the publisher logs.
    fn to_direct_viewer(
        &self,
        viewer: SessionId,
        msg: ServerMessage,
    ) -> Result<Vec<ServerMessage>, WireError> {
        let Some(camera_id) = self.publisher_camera() else {
            return Err(wrong_state(
                "only a registered publisher answers direct viewers",
            ));
        };
        let serves = self.registry().serves_directly(self.id, &camera_id, viewer);
        if !serves || !self.state.deliver(viewer, msg) {
            return Err(WireError::new(
                ErrorCode::WrongState,
                format!("session {viewer} is not a direct viewer of `{camera_id}` (any more)"),
            ));
        }
        Ok(vec![])
    }

    fn publisher_camera(&self) -> Option<String> {
        match &self.role {
            Role::Publisher { camera_id, .. } => Some(camera_id.clone()),
            _ => None,
        }
    }

    /// The `demand` message for our publisher, if `camera` is the camera it publishes.
    /// `demand`: as reported; `None`: read it now.
    fn demand_for(&self, camera: &str, demand: Option<Demand>) -> Option<ServerMessage> {
        let mine = self.publisher_camera()?;
        if mine != camera {
            return None;
        }
        let demand = demand.unwrap_or_else(|| self.registry().demand(camera));
        Some(ServerMessage::Demand {
            camera_id: mine,
            viewers: demand.viewers,
            vp8_viewers: demand.vp8_viewers,
        })
    }

    /// The session ended (its socket `lost`, or not): free its peer, its subscription, its
    /// camera.
    async fn release(&mut self, lost: bool) {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle => {}
            role @ Role::Viewer { .. } => {
                self.role = role;
                self.release_viewer(None, lost).await;
            }
            Role::Publisher { camera_id, peer } => {
                if let Some(peer) = peer {
                    self.state.sfu.close_peer(peer).await;
                }
                self.state.publisher_gone(self.id, &camera_id);
            }
        }
    }
}

fn wrong_state(message: &str) -> WireError {
    WireError::new(ErrorCode::WrongState, message)
}

fn sfu_error(e: SfuError) -> WireError {
    let code = match &e {
        SfuError::InvalidSdp(_) => ErrorCode::InvalidSdp,
        SfuError::InvalidCandidate(_) => ErrorCode::InvalidCandidate,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> Result<(), axum::Error> {
    socket.send(Message::Text(msg.to_json().into())).await
}

async fn send_all(socket: &mut WebSocket, msgs: &[ServerMessage]) -> Result<(), axum::Error> {
    for m in msgs {
        send(socket, m).await?;
    }
    Ok(())
}

/// The WebSocket layer refuses anything larger than this outright (closing the socket); up to
/// it, an oversized message gets a `too_large` error and the session goes on.
/// It is the snapshot limit too: a publisher's JPEG comes as one message.
pub(super) const HARD_MESSAGE_LIMIT: usize = MAX_SNAPSHOT_MESSAGE_BYTES;
/// The WebSocket's read buffer. Signaling messages are a few KiB (an SDP offer is the
/// largest) and the buffer grows for a bigger one; tungstenite's default, 128 KiB allocated
/// up front, would be most of what a viewer costs the server.
pub(super) const READ_BUFFER_BYTES: usize = 8 * 1024;
