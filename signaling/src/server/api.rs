//! The REST endpoints: read-only views of the registry and the SFU.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::AppState;
use sightline_protocol::wire::CameraInfo;

/// `GET /api/cameras`: every camera, online first.
pub(super) async fn cameras(State(state): State<Arc<AppState>>) -> Json<Vec<CameraInfo>> {
    Json(state.registry.lock().unwrap().list())
}

/// `GET /api/stats`: SFU counters and open signaling sessions.
pub(super) async fn stats(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let sfu = state.sfu.stats().await;
    Json(serde_json::json!({
        "sfu": sfu,
        "sessions": state.open_sessions.load(Ordering::Relaxed),
    }))
}
