//! `GET /api/cameras/{id}/snapshot.jpg[?width=N]`: a JPEG of the camera's picture now.
//!
//! The SFU never decodes: the server asks the camera's publisher on its signaling socket
//! (`snapshot_request`), and the publisher answers with the JPEG in one binary message made
//! from a frame it has anyway (see `sightline_protocol::wire::snapshot_reply`). Requests
//! wait here, by id, for that answer; only the session that was asked may answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sightline_protocol::wire::{ErrorCode, ServerMessage, WireError, SNAPSHOT_WIDTHS};
use tokio::sync::oneshot;

use super::http_auth::{admit_for, json_error, wire_error_response};
use super::registry::SessionId;
use super::AppState;
use crate::auth::Role;

/// How long a snapshot may take: the publisher waits up to 2.5 s for a frame (a slow
/// camera), then decodes and encodes.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(4);

/// What a publisher answered.
type Answer = Result<Vec<u8>, String>;

/// Snapshot requests waiting for their publisher.
#[derive(Debug, Default)]
pub(crate) struct WaitingSnapshots {
    by_request: HashMap<u64, (SessionId, oneshot::Sender<Answer>)>,
}

impl WaitingSnapshots {
    fn wait(&mut self, request: u64, publisher: SessionId) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.by_request.insert(request, (publisher, tx));
        rx
    }

    /// `from` answers `request`. False when no such request waits for that session (a late
    /// answer after the timeout, or a session answering what it was not asked).
    pub(super) fn answer(&mut self, from: SessionId, request: u64, answer: Answer) -> bool {
        match self.by_request.get(&request) {
            Some((asked, _)) if *asked == from => {
                let (_, tx) = self.by_request.remove(&request).expect("just found");
                tx.send(answer).is_ok()
            }
            _ => false,
        }
    }

    fn forget(&mut self, request: u64) {
        self.by_request.remove(&request);
    }
}

/// The query (`?token=` besides, which `admit` reads).
#[derive(Debug, Deserialize)]
pub(super) struct SnapshotQuery {
    width: Option<String>,
}

pub(super) async fn snapshot(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    Query(query): Query<SnapshotQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let width = match admit_viewer(&state, remote, &headers, &uri, &camera_id, query.width) {
        Ok(width) => width,
        Err(refused) => return refused,
    };
    match take(&state, &camera_id, width).await {
        Ok(jpeg) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Err(missed) => missed.response,
    }
}

/// What the picture doors check first: a view grant for `camera_id`, and `?width=`.
#[allow(clippy::result_large_err)]
pub(super) fn admit_viewer(
    state: &AppState,
    remote: SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
    camera_id: &str,
    width: Option<String>,
) -> Result<Option<u32>, Response> {
    admit_for(state, remote.ip(), headers, uri, Role::View, camera_id)?;
    match width.as_deref().map(str::parse::<u32>) {
        None => Ok(None),
        Some(Ok(w)) if SNAPSHOT_WIDTHS.contains(&w) => Ok(Some(w)),
        Some(_) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!(
                "width: a whole number of pixels in {}..={}",
                SNAPSHOT_WIDTHS.start(),
                SNAPSHOT_WIDTHS.end()
            ),
        )),
    }
}

/// Why no snapshot was taken: the response saying so, and whether asking again can work.
pub(super) struct Missed {
    pub response: Response,
    /// The camera is unknown, offline or cannot make snapshots: asking again is pointless.
    pub lasting: bool,
}

impl Missed {
    fn lasting(response: Response) -> Missed {
        Missed {
            response,
            lasting: true,
        }
    }

    fn for_now(status: StatusCode, code: &str, message: &str) -> Missed {
        Missed {
            response: json_error(status, code, message),
            lasting: false,
        }
    }
}

/// Ask `camera_id`'s publisher for a JPEG, `width` wide at most, and wait for it.
pub(super) async fn take(
    state: &AppState,
    camera_id: &str,
    width: Option<u32>,
) -> Result<Vec<u8>, Missed> {
    let (known, publisher) = {
        let registry = state.registry.lock().unwrap();
        (
            registry.get(camera_id).is_some(),
            registry.publisher(camera_id),
        )
    };
    let Some(publisher) = publisher else {
        if !known {
            return Err(Missed::lasting(wire_error_response(&WireError::new(
                ErrorCode::UnknownCamera,
                format!("no camera `{camera_id}` has ever registered here"),
            ))));
        }
        return Err(Missed::lasting(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "offline",
            &format!("camera `{camera_id}` is offline: no picture to take"),
        )));
    };
    if state.wish.lock().unwrap().is_whip(publisher) {
        return Err(Missed::lasting(json_error(
            StatusCode::NOT_FOUND,
            "unsupported",
            &format!(
                "camera `{camera_id}` is published over WHIP, which sends only its video; \
                 snapshots are made by Sightline's publisher, and the server never decodes"
            ),
        )));
    }
    let request = state.next_request.fetch_add(1, Ordering::Relaxed);
    let answer = state.snapshots.lock().unwrap().wait(request, publisher);
    let asked = state.deliver(publisher, ServerMessage::SnapshotRequest { request, width });
    let outcome = if asked {
        Some(tokio::time::timeout(SNAPSHOT_TIMEOUT, answer).await)
    } else {
        None
    };
    state.snapshots.lock().unwrap().forget(request);
    let Some(outcome) = outcome else {
        return Err(Missed::for_now(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("camera `{camera_id}`'s publisher is too busy to ask, or just left"),
        ));
    };
    match outcome {
        Ok(Ok(Ok(jpeg))) => Ok(jpeg),
        Ok(Ok(Err(reason))) => Err(Missed::for_now(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("camera `{camera_id}`'s publisher made no snapshot: {reason}"),
        )),
        Ok(Err(_)) => Err(Missed::for_now(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("camera `{camera_id}`'s publisher went away before answering"),
        )),
        Err(_) => Err(Missed::for_now(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            &format!(
                "camera `{camera_id}`'s publisher sent no snapshot within {} s",
                SNAPSHOT_TIMEOUT.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_asked_session_answers_and_only_once() {
        let mut w = WaitingSnapshots::default();
        let mut rx = w.wait(1, 10);
        assert!(!w.answer(11, 1, Ok(vec![1])), "another session");
        assert!(!w.answer(10, 2, Ok(vec![1])), "another request");
        assert!(w.answer(10, 1, Ok(vec![0xff, 0xd8])));
        assert_eq!(rx.try_recv().unwrap(), Ok(vec![0xff, 0xd8]));
        assert!(!w.answer(10, 1, Ok(vec![1])), "answered already");
        let _rx = w.wait(3, 10);
        w.forget(3);
        assert!(
            !w.answer(10, 3, Err("late".into())),
            "forgotten after its timeout"
        );
    }
}
