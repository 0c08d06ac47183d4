//! The standard WebRTC doors (the IETF WISH working group's): WHIP ingest
//! (`POST /whip/{camera_id}`, RFC 9725) and WHEP playback (`POST /whep/{camera_id}`). Each
//! POST carries an SDP offer and is answered `201 Created` with the SDP answer, a
//! `Location` (`/whip|whep/{camera_id}/{resource}`) that `DELETE` ends, an `ETag`, and
//! the ICE servers as `Link` headers when TURN is configured.
//!
//! The SFU is ice-lite and its answer carries all its candidates, and it learns the
//! client's address from the client's own checks, so nothing needs trickling: `PATCH` is
//! refused with `405 Method Not Allowed` (RFC 9725 §4.3.1 lets a server without trickle do
//! so), and an ICE restart means a new `POST`.
//!
//! This module holds what both doors share: the session table, the offer's checks, the
//! `201` response, `DELETE`, `PATCH`, `OPTIONS`, and the reaper that ends a session whose
//! peer the SFU closed. Refusals are a status and a one-line plain-text reason
//! (authentication's keep their JSON form, as everywhere).

pub(super) mod whep;
pub(super) mod whip;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sightline_protocol::wire::{IceServer, ServerMessage, MAX_MESSAGE_BYTES};
use sightline_sfu::{PeerId, SfuEvent};
use tokio::sync::broadcast::error::RecvError;

use super::http_auth::{admit, refusal_response};
use super::registry::SessionId;
use super::AppState;
use crate::auth::{Grant, Role};

/// Largest SDP offer taken: the signaling message limit (a browser's offer is a few KiB).
const MAX_SDP_BYTES: usize = MAX_MESSAGE_BYTES;

/// Which door a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Door {
    /// WHIP: the session publishes the camera.
    Whip,
    /// WHEP: the session watches it.
    Whep,
}

impl Door {
    fn path(self) -> &'static str {
        match self {
            Door::Whip => "whip",
            Door::Whep => "whep",
        }
    }
}

/// The live sessions of both doors, by resource id (random, unguessable: it is the
/// capability to end the session).
#[derive(Debug, Default)]
pub(crate) struct WishSessions {
    by_resource: HashMap<String, WishSession>,
}

#[derive(Debug, Clone)]
struct WishSession {
    door: Door,
    /// Its place in the registry: a publisher's or a viewer's session id.
    session: SessionId,
    peer: PeerId,
    camera: String,
    /// The token subject that made it: only the same subject may end it.
    subject: Option<String>,
}

impl WishSessions {
    /// Whether `session` is a WHIP publisher.
    pub(super) fn is_whip(&self, session: SessionId) -> bool {
        self.by_resource
            .values()
            .any(|s| s.door == Door::Whip && s.session == session)
    }

    /// The WHIP publisher whose SFU peer is `peer`: its session and camera.
    fn whip_publisher(&self, peer: PeerId) -> Option<(SessionId, String)> {
        self.by_resource
            .values()
            .find(|s| s.door == Door::Whip && s.peer == peer)
            .map(|s| (s.session, s.camera.clone()))
    }

    /// The first session that `matches`: its resource id and peer.
    fn find(&self, matches: impl Fn(&WishSession) -> bool) -> Option<(String, PeerId)> {
        self.by_resource
            .iter()
            .find(|(_, s)| matches(s))
            .map(|(r, s)| (r.clone(), s.peer))
    }
}

/// The checks every offer passes first: the caller's token (401/429), its `needs` on the
/// camera (403), and an SDP body (415, 400, 413). The refusal is the response itself.
#[allow(clippy::result_large_err)]
fn admit_offer<'a>(
    state: &AppState,
    remote: SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
    needs: Role,
    camera_id: &str,
    body: &'a [u8],
) -> Result<(Grant, &'a str), Response> {
    let grant = admit(state, remote.ip(), headers, uri).map_err(|r| refusal_response(&r))?;
    grant
        .check(needs, camera_id, SystemTime::now())
        .map_err(|e| refuse(StatusCode::FORBIDDEN, &e.message))?;
    let sdp = sdp_offer(headers, body).map_err(|(status, reason)| refuse(status, &reason))?;
    Ok((grant, sdp))
}

/// Record a new session and build its `201 Created`: the answer, `Location`, `ETag`, and
/// the ICE servers (TURN credentials named after `ice_subject`) as `Link`s.
fn created(
    state: &AppState,
    door: Door,
    session: WishSession,
    answer_sdp: String,
    ice_subject: &str,
) -> Response {
    let resource = random_id();
    let location = format!(
        "/{}/{}/{resource}",
        door.path(),
        percent_encode(&session.camera)
    );
    state
        .wish
        .lock()
        .unwrap()
        .by_resource
        .insert(resource.clone(), session);
    let mut response = (StatusCode::CREATED, answer_sdp).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
        h.insert(header::ETAG, v);
    }
    for link in ice_links(&state.ice_servers(ice_subject)) {
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.append(header::LINK, v);
        }
    }
    response
}

/// `DELETE /whip|whep/{camera_id}/{resource}`: end the session. Only its maker's token
/// subject may (any token for the camera when it was made without one).
async fn delete(
    door: Door,
    state: Arc<AppState>,
    remote: SocketAddr,
    (camera_id, resource): (String, String),
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let grant = match admit(&state, remote.ip(), &headers, &uri) {
        Ok(grant) => grant,
        Err(refused) => return refusal_response(&refused),
    };
    let found = state
        .wish
        .lock()
        .unwrap()
        .by_resource
        .get(&resource)
        .cloned();
    let Some(found) = found.filter(|s| s.camera == camera_id && s.door == door) else {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!(
                "no {} session here under that id (it ended, or never was)",
                door.path().to_uppercase()
            ),
        );
    };
    if !may_end(&grant, &found) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this session belongs to another token subject",
        );
    }
    state.sfu.close_peer(found.peer).await;
    end(&state, &resource);
    StatusCode::OK.into_response()
}

pub(super) async fn delete_whip(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    delete(Door::Whip, state, remote, path, headers, uri).await
}

pub(super) async fn delete_whep(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    delete(Door::Whep, state, remote, path, headers, uri).await
}

fn may_end(grant: &Grant, session: &WishSession) -> bool {
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

/// `OPTIONS /whip|whep/{camera_id}` (without a CORS preflight, which `--cors-origin`
/// answers): what the endpoint takes.
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

/// Forget a session and take it out of the registry: a viewer stops watching, a publisher's
/// camera goes offline (unless another publisher holds it by now). Harmless twice.
fn end(state: &AppState, resource: &str) {
    let removed = state.wish.lock().unwrap().by_resource.remove(resource);
    let Some(s) = removed else {
        return;
    };
    match s.door {
        Door::Whep => {
            state
                .registry
                .lock()
                .unwrap()
                .unsubscribe(s.session, &s.camera);
            state.viewers_changed(&s.camera);
        }
        Door::Whip => state.publisher_gone(s.session, &s.camera),
    }
    tracing::info!(camera = %s.camera, peer = %s.peer, door = s.door.path(), "session ended");
}

/// `camera_id` was removed from the registry: close the peers of its WHEP viewers, who
/// have no socket to hear `camera_removed` on. (Its WHIP publisher, if any, is evicted.)
pub(super) async fn end_viewers_of(state: &AppState, camera_id: &str) {
    loop {
        let found = state
            .wish
            .lock()
            .unwrap()
            .find(|s| s.door == Door::Whep && s.camera == camera_id);
        let Some((resource, peer)) = found else {
            return;
        };
        state.sfu.close_peer(peer).await;
        end(state, &resource);
    }
}

/// A WHIP camera's stream says its picture size (its offer said none): list it with it.
fn picture_size(state: &AppState, peer: PeerId, sps: &[u8]) {
    let Some((session, camera)) = state.wish.lock().unwrap().whip_publisher(peer) else {
        return; // not WHIP: the publisher announced its size itself
    };
    let format = match crate::mse::h264::parse_sps(sps) {
        Ok(format) => format,
        Err(e) => {
            tracing::debug!(%camera, "the WHIP stream's SPS is unreadable: {e}");
            return;
        }
    };
    let size = (format.width, format.height);
    let updated = state
        .registry
        .lock()
        .unwrap()
        .set_picture_size(session, &camera, size);
    if let Some(camera) = updated {
        tracing::info!(camera = %camera.id, width = size.0, height = size.1, "WHIP picture size");
        let _ = state.events.send(ServerMessage::CameraOnline { camera });
    }
}

/// Until shutdown: a session ends with its peer (the client left without a `DELETE`, ICE
/// timed out, or a newer publisher replaced a WHIP one), and a WHIP session whose camera a
/// WebSocket publisher of the same subject took over lets its peer go.
pub(super) fn spawn_reaper(state: Arc<AppState>) {
    let mut events = state.sfu.events();
    let mut evictions = state.evictions.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(SfuEvent::PeerClosed { peer, .. }) => {
                        let found = state.wish.lock().unwrap().find(|s| s.peer == peer);
                        if let Some((resource, _)) = found {
                            end(&state, &resource);
                        }
                    }
                    Ok(SfuEvent::SequenceParameters { peer, sps }) => {
                        picture_size(&state, peer, &sps);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "WHIP/WHEP reaper fell behind the SFU's events");
                    }
                    Err(RecvError::Closed) => return,
                },
                eviction = evictions.recv() => {
                    let Ok((session, _)) = eviction else { continue };
                    let found = state.wish.lock().unwrap().find(|s| s.session == session);
                    if let Some((resource, peer)) = found {
                        state.sfu.close_peer(peer).await;
                        end(&state, &resource);
                    }
                }
                // Mapped to (): the guard `wait_for` returns must not live across awaits.
                _ = async { shutdown.wait_for(|s| *s).await.map(|_| ()) } => return,
            }
        }
    });
}

/// The offer must be SDP: `Content-Type: application/sdp`, not empty, not huge, UTF-8.
/// Refused: the status and reason.
fn sdp_offer<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<&'a str, (StatusCode, String)> {
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
    std::str::from_utf8(body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "the SDP offer is not UTF-8 text".into(),
        )
    })
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
        let status = |h: &HeaderMap, body: &[u8]| sdp_offer(h, body).err().map(|r| r.0);
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
        assert_eq!(
            status(&sdp, &[0xff, 0xfe]),
            Some(StatusCode::BAD_REQUEST),
            "not UTF-8"
        );
    }

    #[test]
    fn camera_ids_are_escaped_in_locations() {
        assert_eq!(percent_encode("cam-1.front_door"), "cam-1.front_door");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
