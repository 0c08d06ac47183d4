//! WHIP ingest (RFC 9725): `POST /whip/{camera_id}` publishes the camera from any WHIP
//! client (OBS, GStreamer's `whipclientsink`, ffmpeg's WHIP muxer, a browser). The camera
//! is registered like a WebSocket publisher's (it is listed, goes online and offline, keeps
//! its viewers across publishers) and its offer goes to the same `SfuHandle::publish`: H.264
//! with packetization-mode 1 in a profile browsers decode (Constrained Baseline, Baseline,
//! Main or High), anything else is refused with the reason. Audio in the offer is declined.
//!
//! A WHIP client has no control channel: viewers' commands to its camera are answered
//! `unsupported` by the SFU, except what the SFU does itself (pause and resume, and a
//! keyframe request, which becomes a PLI).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use sightline_protocol::wire::{ErrorCode, ServerMessage};
use sightline_sfu::SfuError;

use super::{admit_offer, created, refuse, Door, WishSession};
use crate::auth::{AuthMode, Role};
use crate::server::registry::Registration;
use crate::server::session::Eviction;
use crate::server::AppState;

/// `POST /whip/{camera_id}`: needs `publish` on the camera. A camera live from another
/// publisher is refused (409; 403 with tokens, unless the token has the same subject, which
/// takes the camera over as a reconnecting device would).
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
        Role::Publish,
        &camera_id,
        &body,
    ) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    if let Err(e) = sightline_protocol::ids::validate_camera_id(&camera_id) {
        return refuse(StatusCode::BAD_REQUEST, &e.message);
    }
    let session = state.next_session.fetch_add(1, Ordering::Relaxed);
    let subject = grant.subject().map(str::to_owned);
    let registration = Registration {
        camera_id: camera_id.clone(),
        name: camera_id.clone(),
        // Unknown until the stream says; a WHIP offer carries no picture size.
        width: 0,
        height: 0,
        fps: 0,
        p2p_max: 0,
        subject: subject.clone(),
    };
    let registered = state
        .registry
        .lock()
        .unwrap()
        .register(session, registration);
    let registered = match registered {
        Ok(r) => r,
        Err(e) if e.code == ErrorCode::CameraAlreadyLive => {
            let tokens = matches!(state.auth.mode(), AuthMode::Tokens(_));
            let status = if tokens {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::CONFLICT
            };
            return refuse(status, &e.message);
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.message),
    };
    let answer = match state.sfu.publish(&camera_id, sdp).await {
        Ok(answer) => answer,
        Err(e) => {
            state
                .registry
                .lock()
                .unwrap()
                .unregister(session, &camera_id);
            let status = match e {
                SfuError::InvalidSdp(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return refuse(status, &e.to_string());
        }
    };
    if let Some(old) = registered.replaced {
        let _ = state.evictions.send((old, Eviction::CameraTakenOver));
    }
    tracing::info!(camera = %camera_id, peer = %answer.peer, %remote, "camera online (WHIP)");
    let _ = state.events.send(ServerMessage::CameraOnline {
        camera: registered.camera,
    });
    state.viewers_changed(&camera_id);
    let ice_subject = subject.clone().unwrap_or_else(|| format!("whip-{session}"));
    let session = WishSession {
        door: Door::Whip,
        session,
        peer: answer.peer,
        camera: camera_id,
        subject,
    };
    created(&state, Door::Whip, session, answer.sdp, &ice_subject)
}
