//! `GET /api/cameras/{id}/mse`: a camera as fragmented MP4 over a WebSocket, for browsers
//! without WebRTC (see `sightline_protocol::wire::MseInit` for the messages).
//!
//! Each socket is an SFU watcher (it counts as a viewer, starts at a keyframe asked for at
//! once, and speaks camera control like a data channel) and a signaling viewer in the
//! registry (its camera's viewer count and an on-demand publisher's demand include it).
//! Frames go out as fast as the socket takes them; while a send waits on a slow reader the
//! watcher's bounded queue fills and the SFU drops its frames up to the next keyframe, so
//! a slow reader holds a bounded amount of memory and delays nobody else.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use sightline_protocol::control::MAX_CONTROL_MESSAGE_BYTES;
use sightline_protocol::wire::{MseInit, ServerMessage, WireError};
use sightline_sfu::{Watch, WatchMessage};

use super::http_auth::{admit, refusal_response};
use super::AppState;
use crate::auth::Role as Needs;
use crate::mse::{Muxed, Muxer};

/// A control command larger than this closes the socket; up to it the SFU answers an
/// oversized one with a `bad_message` response, as on a data channel.
const HARD_MESSAGE_LIMIT: usize = 4 * MAX_CONTROL_MESSAGE_BYTES;

pub(super) async fn mse(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let admitted = admit(&state, remote.ip(), &headers, &uri);
    // As on `/ws`: a blocked address gets no socket; other refusals are said inside one,
    // where a browser can read them.
    if let Err(refused) = &admitted {
        if refused.status == 429 {
            return refusal_response(refused);
        }
    }
    ws.max_message_size(HARD_MESSAGE_LIMIT)
        .on_upgrade(move |mut socket| async move {
            let grant = match admitted {
                Ok(grant) => grant,
                Err(refused) => return refuse(&mut socket, refused.error).await,
            };
            if let Err(e) = grant.check(Needs::View, &camera_id, SystemTime::now()) {
                return refuse(&mut socket, e).await;
            }
            let session = state.next_session.fetch_add(1, Ordering::Relaxed);
            let subscribed = state.registry.lock().unwrap().subscribe(session, &camera_id);
            if let Err(e) = subscribed {
                return refuse(&mut socket, e).await;
            }
            state.viewers_changed(&camera_id);
            let open = state.session_opened();
            match state.sfu.watch(&camera_id, grant.viewer_access()).await {
                Ok(watch) => {
                    tracing::info!(%remote, camera = %camera_id, watcher = %watch.id(), "MSE viewer joined");
                    let why = stream(&state, socket, watch).await;
                    tracing::info!(%remote, camera = %camera_id, why, "MSE viewer left");
                }
                Err(e) => tracing::warn!(camera = %camera_id, "MSE viewer not added: {e}"),
            }
            drop(open);
            state
                .registry
                .lock()
                .unwrap()
                .unsubscribe(session, &camera_id);
            state.viewers_changed(&camera_id);
        })
}

/// Tell a refused WebSocket client why (an `error` message), then close with 1008 (policy)
/// and the error code as the reason. `/ws` refuses the same way.
pub(super) async fn refuse(socket: &mut WebSocket, error: WireError) {
    let reason = error.code.as_str();
    let text = ServerMessage::from(error.clone()).to_json();
    let _ = socket.send(Message::Text(text.into())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::POLICY,
            reason: reason.into(),
        })))
        .await;
}

/// Move the watcher's frames (muxed) and control messages out and the client's commands in
/// until either side goes or the server stops. Returns why it ended.
async fn stream(state: &AppState, socket: WebSocket, mut watch: Watch) -> &'static str {
    let (mut tx, mut rx) = socket.split();
    let mut muxer = Muxer::new();
    let mut shutdown = state.shutdown.subscribe();
    let stopping = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            message = watch.recv() => {
                let Some(message) = message else {
                    return "the SFU stopped";
                };
                for out in outgoing(&mut muxer, message) {
                    if tx.send(out).await.is_err() {
                        return "the client is gone";
                    }
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if watch.command(text.as_str()).await.is_err() {
                        return "the SFU stopped";
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let error = WireError::new(
                        sightline_protocol::wire::ErrorCode::BadMessage,
                        "this socket takes only control commands, as JSON text",
                    );
                    let text = ServerMessage::from(error).to_json();
                    if tx.send(Message::Text(text.into())).await.is_err() {
                        return "the client is gone";
                    }
                }
                Some(Ok(Message::Close(_))) | None => return "the client closed",
                Some(Err(_)) => return "the client's socket failed",
                Some(Ok(_)) => {} // ping/pong: axum answers pings itself
            },
            _ = &mut stopping => return "the server is stopping",
        }
    }
}

/// What one watcher message becomes on the socket.
fn outgoing(muxer: &mut Muxer, message: WatchMessage) -> Vec<Message> {
    match message {
        WatchMessage::Control(text) => vec![Message::Text(text.as_ref().into())],
        WatchMessage::Frame(frame) => match muxer.push(&frame.data, frame.rtp_time) {
            Ok(muxed) => muxed.into_iter().flat_map(to_messages).collect(),
            Err(e) => {
                tracing::debug!("frame not muxed: {e}");
                Vec::new()
            }
        },
    }
}

fn to_messages(muxed: Muxed) -> Vec<Message> {
    match muxed {
        Muxed::Init {
            codec,
            width,
            height,
            segment,
        } => {
            let init = MseInit {
                codec,
                width,
                height,
            };
            let text = serde_json::to_string(&init).expect("plain struct serialises");
            vec![Message::Text(text.into()), Message::Binary(segment.into())]
        }
        Muxed::Fragment(bytes) => vec![Message::Binary(bytes.into())],
    }
}
