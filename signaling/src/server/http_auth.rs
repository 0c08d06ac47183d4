//! The access policy at the HTTP edge: find the token a request presents, admit it, and turn
//! refusals into responses (`{"code":…,"message":…}` with 401, 403, 429…).

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AppState;
use crate::auth::{presented_token, Grant, Refused, Role};
use sightline_protocol::wire::{ErrorCode, WireError};

/// What a request from `remote` may do. Refusals are logged (never the token).
pub(super) fn admit(
    state: &AppState,
    remote: IpAddr,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Grant, Refused> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = presented_token(authorization, uri.query());
    let admitted = state.auth.admit(remote, token.as_deref(), Instant::now());
    match &admitted {
        Ok(grant) => {
            if let Some(sub) = grant.subject() {
                tracing::debug!(%remote, subject = sub, path = uri.path(), "authenticated");
            }
        }
        Err(r) => {
            state.metrics.auth_refused(r.error.code.as_str());
            tracing::info!(
                %remote,
                path = uri.path(),
                code = r.error.code.as_str(),
                reason = %r.error.message,
                "authentication refused"
            )
        }
    }
    admitted
}

/// A request admitted (see [`admit`]) and allowed to do `needs` to `camera_id`, or the
/// response that refuses it.
#[allow(clippy::result_large_err)]
pub(super) fn admit_for(
    state: &AppState,
    remote: IpAddr,
    headers: &HeaderMap,
    uri: &Uri,
    needs: Role,
    camera_id: &str,
) -> Result<Grant, Response> {
    let grant = admit(state, remote, headers, uri).map_err(|r| refusal_response(&r))?;
    grant
        .check(needs, camera_id, SystemTime::now())
        .map_err(|e| wire_error_response(&e))?;
    Ok(grant)
}

pub(super) fn refusal_response(r: &Refused) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED);
    error_response(status, &r.error)
}

/// A signaling refusal as an HTTP response, with the status its code calls for.
pub(super) fn wire_error_response(e: &WireError) -> Response {
    let status = match e.code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::UnknownCamera => StatusCode::NOT_FOUND,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, e)
}

fn error_response(status: StatusCode, e: &WireError) -> Response {
    json_error(status, e.code.as_str(), &e.message)
}

/// The REST doors' error form: `{"code":…,"message":…}` with `status`.
pub(super) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}
