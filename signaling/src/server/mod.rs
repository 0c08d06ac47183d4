//! The signaling server: WebSocket signaling at `/ws`, REST at `/api/*`, the web client at `/`,
//! over plain HTTP or TLS ([`tls`]).
//!
//! One [`AppState`] is shared by every session: the camera registry (plain state under a
//! lock), the access policy ([`crate::auth`]), the SFU handle, and broadcast channels (camera
//! events, viewer counts for publishers' `demand`, takeovers, shutdown), and the table of
//! viewers' media connections a new session may resume ([`resume`]).

mod api;
mod http_auth;
mod metrics;
mod mjpeg;
mod mse;
pub mod registry;
mod removal;
mod resume;
mod session;
mod snapshot;
pub mod tls;
mod web_client;
mod wish;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use sightline_sfu::{Sfu, SfuConfig, SfuHandle};
use tokio::sync::{broadcast, mpsc, watch};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Auth, AuthMode};
use crate::ice::{IceConfig, DEFAULT_TURN_TTL};
use registry::{Demand, Registry, SessionId};
use sightline_protocol::wire::ServerMessage;
use tls::TlsFiles;
pub use web_client::WebClient;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HTTP listen address (`127.0.0.1:0` picks a port).
    pub http_addr: SocketAddr,
    /// The page at `/` (none by default).
    pub web_client: WebClient,
    pub sfu: SfuConfig,
    /// Who may do what (see [`crate::auth`]). The caller checks that an open mode only
    /// listens where it should (`sightline` refuses a non-loopback address without tokens
    /// unless `--insecure`).
    pub auth: AuthMode,
    /// Serve HTTPS and WSS with this certificate; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Origins allowed to call the API from their pages (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// STUN/TURN servers handed to every client (none by default).
    pub ice: IceConfig,
    /// Forget a camera this long after it went offline; `None` keeps every camera until a
    /// `DELETE /api/cameras/{id}`.
    pub forget_after: Option<std::time::Duration>,
    /// `GET /metrics` without a token even when tokens are on (`--metrics-open`): for a
    /// scraper on a private network.
    pub metrics_open: bool,
    /// With TLS, also serve plain HTTP on a loopback port of its own, for clients in this
    /// process (the demo camera) that would otherwise have to check our certificate under a
    /// name that does not point here. Access rules are the same.
    pub plain_loopback: bool,
}

impl ServerConfig {
    /// Plain HTTP on `http_addr`, every client holds every role (tests, local tools).
    pub fn open(http_addr: SocketAddr, sfu: SfuConfig) -> Self {
        ServerConfig {
            http_addr,
            web_client: WebClient::None,
            sfu,
            auth: AuthMode::LoopbackOnly,
            tls: None,
            cors_origins: Vec::new(),
            ice: IceConfig {
                turn_ttl: DEFAULT_TURN_TTL,
                ..Default::default()
            },
            plain_loopback: false,
            metrics_open: false,
            forget_after: Some(DEFAULT_FORGET_AFTER),
        }
    }
}

/// How long an offline camera stays listed by default (`--forget-after`).
pub const DEFAULT_FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub(crate) struct AppState {
    registry: Mutex<Registry>,
    sfu: SfuHandle,
    auth: Auth,
    ice: IceConfig,
    /// Camera online/offline, to every session.
    events: broadcast::Sender<ServerMessage>,
    /// A camera's viewer count changed: `(camera id, viewers)`. Every session hears it; the
    /// camera's publisher session passes it on as `demand`.
    demand: broadcast::Sender<(String, Demand)>,
    /// A publisher session whose camera was taken over by a newer session of the same
    /// subject: it ends.
    evictions: broadcast::Sender<(SessionId, session::Eviction)>,
    /// Which session owns which viewer's SFU peer, and the keys to resume them.
    resumes: Mutex<resume::Resumes>,
    /// Each session's inbox for messages another session sends it: the offers, answers and
    /// candidates of a direct (P2P) path, relayed between its viewer and publisher.
    mailboxes: Mutex<HashMap<SessionId, mpsc::Sender<ServerMessage>>>,
    /// Flips to true once, on shutdown.
    shutdown: watch::Sender<bool>,
    next_session: AtomicU64,
    /// Request ids for the commands the REST door makes itself (`get_status`).
    next_request: AtomicU64,
    /// WebSocket sessions (signaling and MSE) open now: shutdown waits for them to close.
    open_sessions: watch::Sender<usize>,
    metrics: metrics::Metrics,
    /// Publishers and viewers that came through WHIP and WHEP.
    wish: Mutex<wish::WishSessions>,
    /// `ServerConfig::metrics_open`.
    metrics_open: bool,
    /// Snapshot requests waiting for their publisher's JPEG.
    snapshots: Mutex<snapshot::WaitingSnapshots>,
    /// MJPEG streams open now.
    mjpeg_streams: Arc<AtomicUsize>,
}

impl AppState {
    /// The ICE servers for a session now.
    fn ice_servers(&self, subject: &str) -> Vec<sightline_protocol::wire::IceServer> {
        self.ice.servers_for(subject, std::time::SystemTime::now())
    }

    /// Tell every session (the camera's publisher listens) that `camera_id`'s viewer count,
    /// or how many of them are sent VP8, changed.
    fn viewers_changed(&self, camera_id: &str) {
        let demand = self.registry.lock().unwrap().demand(camera_id);
        // Nobody listening is fine.
        let _ = self.demand.send((camera_id.to_owned(), demand));
    }

    /// `session` no longer publishes `camera_id` (its socket or WHIP session ended): unless
    /// another publisher holds the camera by now, it goes offline and every session hears.
    fn publisher_gone(&self, session: SessionId, camera_id: &str) {
        let gone = self.registry.lock().unwrap().unregister(session, camera_id);
        if let Some(camera_id) = gone {
            tracing::info!(session, camera = %camera_id, "camera offline");
            // Nobody listening is fine.
            let _ = self.events.send(ServerMessage::CameraOffline { camera_id });
        }
    }

    /// Count one open WebSocket session until the guard drops.
    fn session_opened(&self) -> OpenSession<'_> {
        self.open_sessions.send_modify(|n| *n += 1);
        OpenSession(&self.open_sessions)
    }

    fn sessions_open(&self) -> usize {
        *self.open_sessions.borrow()
    }

    /// A session's inbox, open until [`Self::close_mailbox`].
    fn open_mailbox(&self, session: SessionId) -> mpsc::Receiver<ServerMessage> {
        let (tx, rx) = mpsc::channel(MAILBOX);
        self.mailboxes.lock().unwrap().insert(session, tx);
        rx
    }

    fn close_mailbox(&self, session: SessionId) {
        self.mailboxes.lock().unwrap().remove(&session);
    }

    /// Hand `msg` to another session. False when that session is gone or too far behind
    /// (its inbox full): the sender says so to its client rather than waiting on it.
    fn deliver(&self, to: SessionId, msg: ServerMessage) -> bool {
        let mailbox = self.mailboxes.lock().unwrap().get(&to).cloned();
        mailbox.is_some_and(|m| m.try_send(msg).is_ok())
    }
}

/// One open WebSocket session, counted in [`AppState::open_sessions`] while it lives.
struct OpenSession<'a>(&'a watch::Sender<usize>);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// How long shutdown waits for the sessions to say `server_stopping` and close: a client
/// that reads nothing must not hold the process up.
const SESSIONS_CLOSE: Duration = Duration::from_secs(5);

/// Messages one session may have waiting from others: an offer and its candidates come in
/// a burst of a few dozen.
const MAILBOX: usize = 256;

/// A started server. Endpoints: `GET /ws` (signaling WebSocket), `GET /api/cameras`
/// (`[CameraInfo]`), `GET /api/cameras/{id}/mse` (fragmented MP4 over a WebSocket),
/// `DELETE /api/cameras/{id}` (forget a camera), `GET /api/stats` (`{"sfu": SfuStats, "sessions": n}`), `GET /metrics` (Prometheus),
/// `GET /healthz`, `GET /readyz`, `POST /whip/{id}` (WHIP ingest) and `POST /whep/{id}`
/// (WHEP playback) with `DELETE` on the `Location` they answer, `/` (web client).
pub struct RunningServer {
    pub http_addr: SocketAddr,
    /// Serving HTTPS/WSS.
    pub tls: bool,
    pub sfu: SfuHandle,
    state: Arc<AppState>,
    /// Plain HTTP on loopback beside the TLS address (`ServerConfig::plain_loopback`).
    loopback_addr: Option<SocketAddr>,
    serve_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// `ws://ADDR/ws` (`wss://` with TLS); an unspecified address as loopback.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.http_url().replacen("http", "ws", 1))
    }

    /// `http://ADDR` (`https://` with TLS); an unspecified address as loopback.
    pub fn http_url(&self) -> String {
        let s = if self.tls { "s" } else { "" };
        format!("http{s}://{}", reachable(self.http_addr))
    }

    /// Where a client in this process reaches signaling: the plain loopback address when
    /// there is one (no certificate to check), else [`Self::ws_url`].
    pub fn local_ws_url(&self) -> String {
        format!("{}/ws", self.local_http_url().replacen("http", "ws", 1))
    }

    /// [`Self::local_ws_url`]'s HTTP twin, for the API.
    pub fn local_http_url(&self) -> String {
        match self.loopback_addr {
            Some(addr) => format!("http://{addr}"),
            None => self.http_url(),
        }
    }

    /// Stop accepting, close every session and peer, release the ports.
    pub async fn shutdown(self) {
        let _ = self.state.shutdown.send(true);
        for task in self.serve_tasks {
            let _ = task.await;
        }
        // Upgraded sockets are not the HTTP server's to wait for: without this, the process
        // could exit (dropping every socket) before a session has sent its goodbye.
        let mut open = self.state.open_sessions.subscribe();
        if tokio::time::timeout(SESSIONS_CLOSE, open.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.state.sessions_open(),
                "sessions still open {SESSIONS_CLOSE:?} after shutdown began; closing them anyway"
            );
        }
        self.sfu.shutdown().await;
    }
}

/// Bind HTTP and UDP, start the SFU and serve in the background.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    config.ice.validate().map_err(anyhow::Error::msg)?;
    let sfu = Sfu::start(config.sfu.clone())
        .await
        .context("starting the SFU (UDP media port)")?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let tls = match &config.tls {
        Some(files) => {
            Some(tls::Reloading::load(files.clone()).context("loading the TLS certificate")?)
        }
        None => None,
    };

    let (shutdown, _) = watch::channel(false);
    let state = Arc::new(AppState {
        registry: Mutex::new(Registry::default()),
        sfu: sfu.clone(),
        auth: Auth::new(config.auth.clone()),
        ice: config.ice.clone(),
        events: broadcast::channel(256).0,
        demand: broadcast::channel(256).0,
        evictions: broadcast::channel(64).0,
        resumes: Mutex::default(),
        mailboxes: Mutex::default(),
        shutdown,
        next_session: AtomicU64::new(1),
        next_request: AtomicU64::new(1),
        open_sessions: watch::Sender::new(0),
        metrics: metrics::Metrics::default(),
        wish: Mutex::default(),
        metrics_open: config.metrics_open,
        snapshots: Mutex::default(),
        mjpeg_streams: Arc::default(),
    });

    let app = Router::new()
        .route("/ws", get(websocket))
        .route("/api/cameras", get(api::cameras))
        .route("/api/cameras/{id}", delete(removal::delete_camera))
        .route("/api/cameras/{id}/control", post(api::control))
        .route("/api/cameras/{id}/status", get(api::status))
        .route("/api/cameras/{id}/mse", get(mse::mse))
        .route("/api/cameras/{id}/snapshot.jpg", get(snapshot::snapshot))
        .route("/api/cameras/{id}/mjpeg", get(mjpeg::mjpeg))
        .route("/api/stats", get(api::stats))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .route(
            "/whip/{id}",
            post(wish::whip::offer)
                .options(wish::options)
                .patch(wish::patch),
        )
        .route(
            "/whip/{id}/{resource}",
            delete(wish::delete_whip).patch(wish::patch),
        )
        .route(
            "/whep/{id}",
            post(wish::whep::offer)
                .options(wish::options)
                .patch(wish::patch),
        )
        .route(
            "/whep/{id}/{resource}",
            delete(wish::delete_whep).patch(wish::patch),
        );
    wish::spawn_reaper(state.clone());
    if let Some(keep) = config.forget_after {
        removal::spawn_forgetter(state.clone(), keep);
    }
    let app = config.web_client.install(app)?;
    let mut app = app.with_state(state.clone());
    if !config.cors_origins.is_empty() {
        app = app.layer(cors(&config.cors_origins)?);
    }

    // Sessions need the peer's address: for the auth failure limit and the logs.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stopped = |state: &AppState| {
        let mut stop = state.shutdown.subscribe();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let mut serve_tasks = Vec::new();
    let mut loopback_addr = None;
    match tls.clone() {
        None => {
            let listener = listener.tap_io(tune_socket);
            let serving = axum::serve(listener, app).with_graceful_shutdown(stopped(&state));
            serve_tasks.push(spawn_serving("HTTP", serving));
        }
        Some(tls) => {
            tls.watch(state.shutdown.subscribe());
            if config.plain_loopback {
                let plain = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                loopback_addr = Some(plain.local_addr()?);
                let plain = plain.tap_io(tune_socket);
                let serving =
                    axum::serve(plain, app.clone()).with_graceful_shutdown(stopped(&state));
                serve_tasks.push(spawn_serving("loopback HTTP", serving));
            }
            // `tap_io` only so axum hands handlers the client's address (`ConnectInfo`), which
            // it does for its own listener and for tapped ones.
            let listener = tls::TlsListener::new(listener, tls).tap_io(|_| {});
            let serving = axum::serve(listener, app).with_graceful_shutdown(stopped(&state));
            serve_tasks.push(spawn_serving("HTTPS", serving));
        }
    }
    tracing::info!(%http_addr, tls = tls.is_some(), auth = ?config.auth, media = ?sfu.local_addrs(), "server listening");
    Ok(RunningServer {
        http_addr,
        tls: tls.is_some(),
        loopback_addr,
        sfu,
        state,
        serve_tasks,
    })
}

/// Serve in the background until shutdown; a failure is logged.
fn spawn_serving<S>(what: &'static str, serving: S) -> tokio::task::JoinHandle<()>
where
    S: std::future::IntoFuture<Output = std::io::Result<()>>,
    S::IntoFuture: Send + 'static,
{
    let serving = serving.into_future();
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "{what} server failed");
        }
    })
}

/// Most a connection's kernel send buffer holds (Linux doubles it for bookkeeping).
/// Without a cap it grows to megabytes, and a slow MSE viewer's socket would hold seconds of
/// video that arrive late rather than being dropped at the watcher's queue. 256 KiB is
/// still over a second of a 1080p stream, far beyond any round trip's worth of data.
const SEND_BUFFER: usize = 256 * 1024;

/// Every accepted connection: no Nagle (signaling is small messages each waiting for an
/// answer; with Nagle and delayed ACKs each exchange waits tens of milliseconds) and a
/// bounded send buffer.
pub(crate) fn tune_socket(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER);
}

/// The address a local client uses for a listening address (`0.0.0.0` → `127.0.0.1`).
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// `--cors-origin`: these origins may call the API (GET and POST, with a bearer token) and
/// play over WHEP (POST, PATCH, DELETE; its answer's `Location`, `ETag` and `Link` headers
/// readable).
fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .with_context(|| format!("--cors-origin {o:?} is not a valid origin"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_MATCH,
        ])
        .expose_headers([
            axum::http::header::LOCATION,
            axum::http::header::ETAG,
            axum::http::header::LINK,
        ]))
}

async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let admitted = http_auth::admit(&state, remote.ip(), &headers, &uri);
    // A blocked address gets no WebSocket at all. Other refusals are told inside one, so a
    // browser (which cannot read a refused upgrade's body) can show the reason.
    if let Err(refused) = &admitted {
        if refused.status == 429 {
            return http_auth::refusal_response(refused);
        }
    }
    ws.max_message_size(session::HARD_MESSAGE_LIMIT)
        .read_buffer_size(session::READ_BUFFER_BYTES)
        .on_upgrade(move |mut socket| async move {
            let grant = match admitted {
                Ok(grant) => grant,
                Err(refused) => return mse::refuse(&mut socket, refused.error).await,
            };
            let id = state.next_session.fetch_add(1, Ordering::Relaxed);
            let _open = state.session_opened();
            state.metrics.session_opened();
            session::Session::new(id, state.clone(), remote.ip(), grant)
                .run(socket)
                .await;
        })
}
