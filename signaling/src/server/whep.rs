//! WHEP playback: `POST /whep/{camera_id}` with an SDP offer answers `201 Created` with the
//! SDP answer and a `Location` (`/whep/{camera_id}/{resource}`) that `DELETE` ends. A WHEP
//! player is a viewer like the web client's: the same `SfuHandle::subscribe`, so the same
//! fan-out, keyframe gate and NACK/RTX; it counts among the camera's viewers (camera list,
//! publishers' demand, metrics).
//!
//! The SFU is ice-lite and its answer carries all its candidates, and it learns the
//! player's address from the player's own checks, so nothing needs trickling: `PATCH` is
//! refused with `405 Method Not Allowed` (RFC 9725 §4.3.1 lets a server without trickle do
//! so), and an ICE restart means a new `POST`.
//!
//! Refusals are a status and a one-line plain-text reason (authentication's keep their JSON
//! form, as everywhere).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sightline_protocol::wire::{IceServer, MAX_MESSAGE_BYTES};
use sightline_sfu::{PeerId, SfuError, SfuEvent, VideoCodec};
use tokio::sync::broadcast::error::RecvError;

use super::http_auth::{admit, refusal_response};
use super::registry::SessionId;
use super::AppState;
use crate::auth::{Grant, Role};

/// Largest SDP offer taken: the signaling message limit (a browser's offer is a few KiB).
const MAX_SDP_BYTES: usize = MAX_MESSAGE_BYTES;

/// The live WHEP sessions, by resource id (random, unguessable: it is the capability to end
/// the session).
#[derive(Debug, Default)]
pub(super) struct WhepSessions {
    by_resource: HashMap<String, WhepSession>,
}

#[derive(Debug, Clone)]
struct WhepSession {
    /// Its place among the registry's viewers.
    session: SessionId,
    peer: PeerId,
    camera: String,
    /// The token subject that made it: only the same subject may end it.
    subject: Option<String>,
}

impl WhepSessions {
    fn by_peer(&self, peer: PeerId) -> Option<String> {
        self.by_resource
            .iter()
            .find(|(_, s)| s.peer == peer)
            .map(|(r, _)| r.clone())
    }
}

/// `POST /whep/{camera_id}`.
pub(super) async fn offer(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let grant = match admit(&state, remote.ip(), &headers, &uri) {
        Ok(grant) => grant,
        Err(refused) => return refusal_response(&refused),
    };
    if let Err(e) = grant.check(Role::View, &camera_id, SystemTime::now()) {
        return refuse(StatusCode::FORBIDDEN, &e.message);
    }
    if let Err((status, reason)) = check_sdp_body(&headers, &body) {
        return refuse(status, &reason);
    }
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
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
        state
            .registry
            .lock()
            .unwrap()
            .set_vp8(session, &camera_id, true);
    }
    state.viewers_changed(&camera_id);
    let resource = random_id();
    let subject = grant.subject().map(str::to_owned);
    let ice_subject = subject.clone().unwrap_or_else(|| format!("whep-{session}"));
    state.whep.lock().unwrap().by_resource.insert(
        resource.clone(),
        WhepSession {
            session,
            peer: answer.peer,
            camera: camera_id.clone(),
            subject,
        },
    );
    tracing::info!(camera = %camera_id, peer = %answer.peer, %remote, codec = ?answer.codec, "WHEP viewer");

    let mut response = (StatusCode::CREATED, answer.sdp).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    let location = format!("/whep/{}/{resource}", percent_encode(&camera_id));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
        h.insert(header::ETAG, v);
    }
    for link in ice_links(&state.ice_servers(&ice_subject)) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.append(header::LINK, v);
        }
    }
    response
}

/// `DELETE /whep/{camera_id}/{resource}`: end the session. Only its maker's token subject
/// may (any token for the camera when it was made without one).
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path((camera_id, resource)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let grant = match admit(&state, remote.ip(), &headers, &uri) {
        Ok(grant) => grant,
        Err(refused) => return refusal_response(&refused),
    };
    let found = state
        .whep
        .lock()
        .unwrap()
        .by_resource
        .get(&resource)
        .cloned();
    let Some(found) = found.filter(|s| s.camera == camera_id) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no WHEP session here under that id (it ended, or never was)",
        );
    };
    if !may_end(&grant, &found) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this WHEP session belongs to another token subject",
        );
    }
    state.sfu.close_peer(found.peer).await;
    end(&state, &resource);
    StatusCode::OK.into_response()
}

fn may_end(grant: &Grant, session: &WhepSession) -> bool {
    match &session.subject {
        None => true,
        Some(owner) => grant.subject() == Some(owner.as_str()),
    }
}

/// `PATCH` on a session: no trickle and no ICE restart here (see the module docs).
pub(super) async fn patch() -> Response {
    let mut response = refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "no trickle ICE or ICE restart by PATCH: the answer holds every candidate; POST again to restart",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    response
}

/// `OPTIONS /whep/{camera_id}` (without a CORS preflight, which `--cors-origin` answers):
/// what the endpoint takes.
pub(super) async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "POST, OPTIONS"),
            (
                header::HeaderName::from_static("accept-post"),
                "application/sdp",
            ),
        ],
    )
        .into_response()
}

/// Forget a session and take its viewer out of the registry. Harmless twice.
fn end(state: &AppState, resource: &str) {
    let removed = state.whep.lock().unwrap().by_resource.remove(resource);
    if let Some(s) = removed {
        state
            .registry
            .lock()
            .unwrap()
            .unsubscribe(s.session, &s.camera);
        state.viewers_changed(&s.camera);
        tracing::info!(camera = %s.camera, peer = %s.peer, "WHEP session ended");
    }
}

/// Until shutdown: a WHEP session whose peer the SFU closed (the player left without a
/// `DELETE`, or ICE timed out) ends with it.
pub(super) fn spawn_reaper(state: Arc<AppState>) {
    let mut events = state.sfu.events();
    let mut shutdown = state.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(SfuEvent::PeerClosed { peer, .. }) => {
                        let resource = state.whep.lock().unwrap().by_peer(peer);
                        if let Some(resource) = resource {
                            end(&state, &resource);
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "WHEP reaper fell behind the SFU's events");
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
}

/// The body must be an SDP offer: `Content-Type: application/sdp`, not empty, not huge.
fn check_sdp_body(headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/sdp") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: application/sdp, got {content_type:?}"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err((StatusCode::BAD_REQUEST, "the SDP offer is empty".into()));
    }
    if body.len() > MAX_SDP_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the SDP offer is {} bytes; the limit is {MAX_SDP_BYTES}",
                body.len()
            ),
        ));
    }
    Ok(())
}

/// A refusal: the status and one line saying why.
fn refuse(status: StatusCode, reason: &str) -> Response {
    let line = reason.replace(['\r', '\n'], " ");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

/// `Link` header values for ICE servers (RFC 9725 §4.6): one per URL, with the TURN
/// credentials where there are some.
fn ice_links(servers: &[IceServer]) -> Vec<String> {
    let quoted = |s: &str| s.replace(['"', '\\'], "");
    servers
        .iter()
        .flat_map(|server| {
            server.urls.iter().map(move |url| {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(user), Some(pass)) = (&server.username, &server.credential) {
                    link.push_str(&format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quoted(user),
                        quoted(pass)
                    ));
                }
                link
            })
        })
        .collect()
}

/// 128 random bits, hex.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A camera id as a path segment. Ids are `[A-Za-z0-9_.-]`-like already; anything else is
/// escaped so the `Location` is always a valid URL.
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_become_link_headers() {
        let links = ice_links(&[
            IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec![
                    "turn:turn.example.org:3478?transport=udp".into(),
                    "turns:turn.example.org:5349?transport=tcp".into(),
                ],
                username: Some("1700000000:alice".into()),
                credential: Some("c2VjcmV0\"".into()),
            },
        ]);
        assert_eq!(
            links,
            [
                "<stun:stun.example.org:3478>; rel=\"ice-server\"",
                "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; username=\"1700000000:alice\"; credential=\"c2VjcmV0\"; credential-type=\"password\"",
                "<turns:turn.example.org:5349?transport=tcp>; rel=\"ice-server\"; username=\"1700000000:alice\"; credential=\"c2VjcmV0\"; credential-type=\"password\"",
            ]
        );
    }

    #[test]
    fn offers_need_the_sdp_content_type_and_a_sane_size() {
        let with_type = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
            h
        };
        let status = |h: &HeaderMap, body: &[u8]| check_sdp_body(h, body).err().map(|r| r.0);
        let sdp = with_type("application/sdp");
        assert_eq!(status(&sdp, b"v=0\r\n"), None);
        assert_eq!(
            status(&with_type("Application/SDP; charset=utf-8"), b"v=0"),
            None
        );
        assert_eq!(
            status(&with_type("application/json"), b"v=0"),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(&HeaderMap::new(), b"v=0"),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(status(&sdp, b" \r\n"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(&sdp, &vec![b'a'; MAX_SDP_BYTES + 1]),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }

    #[test]
    fn camera_ids_are_escaped_in_locations() {
        assert_eq!(percent_encode("cam-1.front_door"), "cam-1.front_door");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
