//! WHEP playback: `POST /whep/{camera_id}`. A WHEP player is a viewer like the web
//! client's: the same `SfuHandle::subscribe`, so the same fan-out, keyframe gate and
//! NACK/RTX; it counts among the camera's viewers (camera list, publishers' demand,
//! metrics). It gets H.264, or VP8 when its offer has no H.264.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use sightline_sfu::{SfuError, VideoCodec};

use super::{admit_offer, created, refuse, Door, WishSession};
use crate::auth::Role;
use crate::server::AppState;

/// `POST /whep/{camera_id}`: needs `view` on the camera.
pub(crate) async fn offer(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (grant, sdp) = match admit_offer(
        &state,
        remote,
        &headers,
        &uri,
        Role::View,
        &camera_id,
        &body,
    ) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let session = state.next_session.fetch_add(1, Ordering::Relaxed);
    let subscribed = state
        .registry
        .lock()
        .unwrap()
        .subscribe(session, &camera_id);
    if let Err(e) = subscribed {
        return refuse(StatusCode::NOT_FOUND, &e.message);
    }
    let answer = match state
        .sfu
        .subscribe(&camera_id, sdp, grant.viewer_access())
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            state
                .registry
                .lock()
                .unwrap()
                .unsubscribe(session, &camera_id);
            let status = match e {
                SfuError::InvalidSdp(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return refuse(status, &e.to_string());
        }
    };
    if answer.codec == VideoCodec::Vp8 {
        let mut registry = state.registry.lock().unwrap();
        registry.set_vp8(session, &camera_id, true);
    }
    state.viewers_changed(&camera_id);
    tracing::info!(camera = %camera_id, peer = %answer.peer, %remote, codec = ?answer.codec, "WHEP viewer");
    let subject = grant.subject().map(str::to_owned);
    let ice_subject = subject.clone().unwrap_or_else(|| format!("whep-{session}"));
    let session = WishSession {
        door: Door::Whep,
        session,
        peer: answer.peer,
        camera: camera_id,
        subject,
    };
    created(&state, Door::Whep, session, answer.sdp, &ice_subject)
}
