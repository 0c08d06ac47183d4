//! The signaling server: WebSocket signaling at `/ws`, REST at `/api/*`, the web client at `/`.
//!
//! One [`AppState`] is shared by every session: the camera registry (plain state under a
//! lock), the SFU handle, and three broadcast channels (camera events, viewer counts for
//! publishers' `demand`, shutdown).

mod access;
mod api;
pub mod registry;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sightline_sfu::{Sfu, SfuConfig, SfuHandle};
use tokio::sync::{broadcast, watch};
use tower_http::services::ServeDir;

use registry::Registry;
use sightline_protocol::wire::ServerMessage;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HTTP listen address (`127.0.0.1:0` picks a port).
    pub http_addr: SocketAddr,
    /// Folder with the web client; `None` serves no static files.
    pub web_root: Option<PathBuf>,
    pub sfu: SfuConfig,
    /// Viewers presenting this key in `subscribe` may control cameras. `None`: viewers on
    /// loopback may control, all others are view-only (see `access`).
    pub control_key: Option<String>,
}

pub(crate) struct AppState {
    registry: Mutex<Registry>,
    sfu: SfuHandle,
    control_key: Option<String>,
    /// Camera online/offline, to every session.
    events: broadcast::Sender<ServerMessage>,
    /// A camera's viewer count changed: `(camera id, viewers)`. Every session hears it; the
    /// camera's publisher session passes it on as `demand`.
    demand: broadcast::Sender<(String, u32)>,
    /// Flips to true once, on shutdown.
    shutdown: watch::Sender<bool>,
    next_session: AtomicU64,
    open_sessions: AtomicUsize,
}

/// A started server. Endpoints: `GET /ws` (signaling WebSocket), `GET /api/cameras`
/// (`[CameraInfo]`), `GET /api/stats` (`{"sfu": SfuStats, "sessions": n}`), `/` (web client).
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub sfu: SfuHandle,
    state: Arc<AppState>,
    serve_task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `ws://ADDR/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http_addr)
    }

    /// `http://ADDR`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stop accepting, close every session and peer, release the ports.
    pub async fn shutdown(self) {
        let _ = self.state.shutdown.send(true);
        let _ = self.serve_task.await;
        self.sfu.shutdown().await;
    }
}

/// Bind HTTP and UDP, start the SFU and serve in the background.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let sfu = Sfu::start(config.sfu.clone())
        .await
        .context("starting the SFU (UDP media port)")?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;

    let (shutdown, _) = watch::channel(false);
    let state = Arc::new(AppState {
        registry: Mutex::new(Registry::default()),
        sfu: sfu.clone(),
        control_key: config.control_key.clone(),
        events: broadcast::channel(256).0,
        demand: broadcast::channel(256).0,
        shutdown,
        next_session: AtomicU64::new(1),
        open_sessions: AtomicUsize::new(0),
    });

    let mut app = Router::new()
        .route("/ws", get(websocket))
        .route("/api/cameras", get(api::cameras))
        .route("/api/stats", get(api::stats));
    if let Some(root) = &config.web_root {
        if !root.join("index.html").is_file() {
            anyhow::bail!("web root {} has no index.html", root.display());
        }
        app = app.fallback_service(ServeDir::new(root));
    }
    let app = app.with_state(state.clone());

    let mut stop = state.shutdown.subscribe();
    let serve_task = tokio::spawn(async move {
        // Sessions need the peer's address: loopback viewers may control without a key.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%http_addr, media = ?sfu.local_addrs(), "server listening");
    Ok(RunningServer {
        http_addr,
        sfu,
        state,
        serve_task,
    })
}

async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(session::HARD_MESSAGE_LIMIT)
        .on_upgrade(move |socket| async move {
            let id = state.next_session.fetch_add(1, Ordering::Relaxed);
            state.open_sessions.fetch_add(1, Ordering::Relaxed);
            session::Session::new(id, state.clone(), remote.ip())
                .run(socket)
                .await;
            state.open_sessions.fetch_sub(1, Ordering::Relaxed);
        })
}
