//! Cameras leaving the registry: taken out by `DELETE /api/cameras/{id}`, or forgotten after
//! being offline for `--forget-after`. Either way every session hears `camera_removed`, the
//! publisher (if connected) is told and stops for good, and WHEP viewers of it are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sightline_protocol::wire::ServerMessage;

use super::http_auth::{admit_for, json_error};
use super::registry::Removed;
use super::session::Eviction;
use super::{wish, AppState};
use crate::auth::{AuthMode, Role};

impl AppState {
    /// Take `camera_id` out of the registry and tell everyone concerned. False: there was
    /// no such camera.
    pub(super) async fn remove_camera(&self, camera_id: &str, why: &str) -> bool {
        let removed = self.registry.lock().unwrap().remove(camera_id);
        match removed {
            Some(removed) => {
                self.tell_removed(removed, why).await;
                true
            }
            None => false,
        }
    }

    /// `removed` is out of the registry already: tell everyone concerned.
    async fn tell_removed(&self, removed: Removed, why: &str) {
        let camera_id = removed.camera_id.as_str();
        tracing::info!(camera = %camera_id, "camera removed: {why}");
        if let Some(publisher) = removed.publisher {
            // Its session sends `camera_removed` and closes; a WHIP one is closed by the
            // reaper. Nobody listening is fine.
            let _ = self.evictions.send((publisher, Eviction::CameraRemoved));
        }
        wish::end_viewers_of(self, camera_id).await;
        let _ = self.events.send(ServerMessage::CameraRemoved {
            camera_id: removed.camera_id,
        });
    }
}

/// `DELETE /api/cameras/{id}`: forget the camera. Needs `control` on it; without tokens,
/// only from this machine (an `--insecure` server must not let anyone remove cameras). 204
/// when removed, 404 for an unknown camera.
pub(super) async fn delete_camera(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let tokens = matches!(state.auth.mode(), AuthMode::Tokens(_));
    if !tokens && !remote.ip().to_canonical().is_loopback() {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "without tokens, cameras are removed from the server's own machine only",
        );
    }
    if let Err(refused) = admit_for(
        &state,
        remote.ip(),
        &headers,
        &uri,
        Role::Control,
        &camera_id,
    ) {
        return refused;
    }
    let by = remote.ip().to_canonical();
    if state
        .remove_camera(&camera_id, &format!("DELETE from {by}"))
        .await
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json_error(
            StatusCode::NOT_FOUND,
            "unknown_camera",
            &format!("no camera `{camera_id}` is registered here"),
        )
    }
}

/// Until shutdown: forget cameras offline for `keep` or longer, checking a few times per
/// `keep` (at most once a minute, at least every 100 ms).
pub(super) fn spawn_forgetter(state: Arc<AppState>, keep: Duration) {
    let every = (keep / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let keep_ms = keep.as_millis() as u64;
    let mut shutdown = state.shutdown.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let stale = state.registry.lock().unwrap().forget_offline(keep_ms);
                    for removed in stale {
                        state.tell_removed(removed, &format!("offline for {keep:?} (--forget-after)")).await;
                    }
                }
                _ = async { shutdown.wait_for(|s| *s).await.map(|_| ()) } => return,
            }
        }
    });
}
