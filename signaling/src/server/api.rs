//! The REST endpoints. Each admits its request like the WebSocket does (a token in the
//! `Authorization` header or `?token=`, when the server has tokens) and shows only the
//! cameras the token covers.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::http_auth::{admit, admit_for, refusal_response, wire_error_response};
use super::AppState;
use crate::auth::Role;
use sightline_protocol::control::{
    ControlError, ControlErrorCode, ControlMessage, Response as ControlResponse,
};
use sightline_protocol::wire::{CameraState, ErrorCode, WireError};

/// `GET /api/cameras`: every camera the caller may see, online first.
pub(super) async fn cameras(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let grant = match admit(&state, remote.ip(), &headers, &uri) {
        Ok(grant) => grant,
        Err(refused) => return refusal_response(&refused),
    };
    let mut cameras = state.registry.lock().unwrap().list();
    cameras.retain(|c| grant.sees(&c.id));
    Json(cameras).into_response()
}

/// `GET /api/stats`: SFU counters and open signaling sessions (any valid token).
pub(super) async fn stats(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(refused) = admit(&state, remote.ip(), &headers, &uri) {
        return refusal_response(&refused);
    }
    let sfu = state.sfu.stats().await;
    Json(serde_json::json!({
        "sfu": sfu,
        "sessions": state.sessions_open(),
    }))
    .into_response()
}

/// How long the REST door waits for a publisher's answer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /api/cameras/{id}/control`: one control command (the JSON a viewer sends on its
/// `control` data channel), answered with the publisher's response: 200 on success, 4xx
/// with the refusal, 404 for an unknown camera, 409 for one that is offline, 504 when the
/// publisher does not answer within 5 s. Needs `control` on the camera.
pub(super) async fn control(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: String,
) -> Response {
    send_command(
        &state,
        remote,
        &camera_id,
        &headers,
        &uri,
        Role::Control,
        &body,
    )
    .await
}

/// `GET /api/cameras/{id}/status`: the publisher's answer to `get_status`, like `control`.
/// Needs `view` on the camera.
pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let n = state.next_request.fetch_add(1, Ordering::Relaxed);
    let command = format!(r#"{{"v":1,"type":"get_status","request_id":"rest-{n}"}}"#);
    send_command(
        &state,
        remote,
        &camera_id,
        &headers,
        &uri,
        Role::View,
        &command,
    )
    .await
}

async fn send_command(
    state: &AppState,
    remote: SocketAddr,
    camera_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    needs: Role,
    command: &str,
) -> Response {
    let grant = match admit_for(state, remote.ip(), headers, uri, needs, camera_id) {
        Ok(grant) => grant,
        Err(refused) => return refused,
    };
    let online = state
        .registry
        .lock()
        .unwrap()
        .get(camera_id)
        .map(|c| c.state);
    match online {
        None => {
            return wire_error_response(&WireError::new(
                ErrorCode::UnknownCamera,
                format!("no camera `{camera_id}` has ever registered here"),
            ))
        }
        Some(CameraState::Offline) => {
            return control_error(
                StatusCode::CONFLICT,
                ControlErrorCode::Unavailable,
                format!("camera `{camera_id}` is offline"),
            )
        }
        Some(CameraState::Online) => {}
    }
    // Each token subject (or, without one, each address) has its own rate-limit bucket.
    let caller = match grant.subject() {
        Some(sub) => format!("sub:{sub}"),
        None => format!("ip:{}", remote.ip().to_canonical()),
    };
    let access = grant.viewer_access();
    match state
        .sfu
        .control(camera_id, command, access, &caller, CONTROL_TIMEOUT)
        .await
    {
        Ok(Some(answer)) => answer_response(answer),
        Ok(None) => control_error(
            StatusCode::GATEWAY_TIMEOUT,
            ControlErrorCode::Unavailable,
            format!(
                "camera `{camera_id}`'s publisher did not answer within {} s",
                CONTROL_TIMEOUT.as_secs()
            ),
        ),
        Err(e) => wire_error_response(&WireError::new(ErrorCode::Internal, e.to_string())),
    }
}

/// The publisher's (or the SFU's) JSON answer as it is, with the status its outcome calls for.
fn answer_response(answer: String) -> Response {
    let parsed: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let status = if parsed["success"].as_bool() == Some(true) {
        StatusCode::OK
    } else {
        let code = serde_json::from_value::<ControlErrorCode>(parsed["error"]["code"].clone());
        match code {
            Ok(ControlErrorCode::Forbidden) => StatusCode::FORBIDDEN,
            Ok(ControlErrorCode::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            Ok(ControlErrorCode::Unavailable) => StatusCode::CONFLICT,
            Ok(ControlErrorCode::Failed) => StatusCode::INTERNAL_SERVER_ERROR,
            Ok(ControlErrorCode::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    };
    (status, [(header::CONTENT_TYPE, "application/json")], answer).into_response()
}

/// A refusal of our own, in the control protocol's response form (what the data channel
/// would have said).
fn control_error(status: StatusCode, code: ControlErrorCode, message: String) -> Response {
    let refusal = ControlResponse::refused(None, ControlError::new(code, message));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        ControlMessage::Response(refusal).to_json(),
    )
        .into_response()
}
