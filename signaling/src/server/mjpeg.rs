//! `GET /api/cameras/{id}/mjpeg[?width=N][&fps=F]`: the camera as an MJPEG stream
//! (`multipart/x-mixed-replace`), for clients that show nothing newer: an `<img>` tag, old
//! dashboards, `ffplay`. It is a snapshot ([`super::snapshot`]) a few times a second, so it
//! costs the publisher one JPEG per picture and the SFU nothing; live video stays WebRTC's.
//!
//! The stream ends when the client leaves, the camera goes offline, or the server stops
//! (graceful shutdown waits for open responses). A picture that comes late or not at all
//! is skipped, not fatal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::http_auth::json_error;
use super::snapshot::{admit_viewer, take};
use super::AppState;

/// Pictures per second unless `?fps=` says otherwise, and the most it may say: enough to
/// see what moves, little enough that a publisher's JPEG encoder barely notices.
pub const DEFAULT_MJPEG_FPS: u32 = 2;
pub const MAX_MJPEG_FPS: u32 = 5;
/// MJPEG streams open at once, server-wide: each one asks a publisher for JPEGs.
pub const MAX_MJPEG_STREAMS: usize = 16;

const BOUNDARY: &str = "sightline-frame";

/// The query (`?token=` besides, which `admit` reads).
#[derive(Debug, Deserialize)]
pub(super) struct MjpegQuery {
    width: Option<String>,
    fps: Option<String>,
}

pub(super) async fn mjpeg(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(camera_id): Path<String>,
    Query(query): Query<MjpegQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let width = match admit_viewer(&state, remote, &headers, &uri, &camera_id, query.width) {
        Ok(width) => width,
        Err(refused) => return refused,
    };
    let fps = match query.fps.as_deref().map(str::parse::<u32>) {
        None => DEFAULT_MJPEG_FPS,
        Some(Ok(fps)) if (1..=MAX_MJPEG_FPS).contains(&fps) => fps,
        Some(_) => {
            let why = format!("fps: a whole number of pictures per second in 1..={MAX_MJPEG_FPS}");
            return json_error(StatusCode::BAD_REQUEST, "bad_request", &why);
        }
    };
    let Some(slot) = StreamSlot::take(&state.mjpeg_streams) else {
        let why = format!("{MAX_MJPEG_STREAMS} MJPEG streams are open already; try later");
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "busy", &why);
    };
    // The first picture decides the answer: a camera that cannot give one gets its reason.
    let first = match take(&state, &camera_id, width).await {
        Ok(jpeg) => jpeg,
        Err(missed) => return missed.response,
    };
    let period = Duration::from_secs(1) / fps;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = Stream {
        stopping: state.shutdown.subscribe(),
        state,
        camera_id,
        width,
        tick,
        _slot: slot,
    };
    let parts =
        futures_util::stream::unfold((Some(first), stream), |(first, mut stream)| async move {
            let jpeg = match first {
                Some(jpeg) => jpeg,
                None => stream.next_picture().await?,
            };
            Some((
                Ok::<_, std::convert::Infallible>(part(&jpeg)),
                (None, stream),
            ))
        });
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(parts),
    )
        .into_response()
}

/// One open stream's state; dropped (its slot freed) when the client goes.
struct Stream {
    state: Arc<AppState>,
    camera_id: String,
    width: Option<u32>,
    tick: Interval,
    stopping: watch::Receiver<bool>,
    _slot: StreamSlot,
}

impl Stream {
    /// The next picture at the next tick; `None` once the stream should end.
    async fn next_picture(&mut self) -> Option<Vec<u8>> {
        loop {
            tokio::select! {
                _ = self.tick.tick() => {}
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
            }
            match take(&self.state, &self.camera_id, self.width).await {
                Ok(jpeg) => return Some(jpeg),
                Err(missed) if missed.lasting => return None,
                Err(_) => continue,
            }
        }
    }
}

/// One of [`MAX_MJPEG_STREAMS`], given back on drop.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>) -> Option<StreamSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_MJPEG_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One part of the multipart stream: headers, the JPEG, and the line break before the next
/// boundary.
fn part(jpeg: &[u8]) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_run_out_and_come_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let slots: Vec<StreamSlot> = (0..MAX_MJPEG_STREAMS)
            .map(|_| StreamSlot::take(&open).unwrap())
            .collect();
        assert!(StreamSlot::take(&open).is_none());
        drop(slots);
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(StreamSlot::take(&open).is_some());
    }

    #[test]
    fn a_part_carries_its_length_and_ends_before_the_next_boundary() {
        let p = part(b"\xff\xd8jpeg\xff\xd9");
        let text = String::from_utf8_lossy(&p);
        assert!(text.starts_with("--sightline-frame\r\nContent-Type: image/jpeg\r\n"));
        assert!(text.contains("Content-Length: 8\r\n\r\n"), "{text}");
        assert!(p.ends_with(b"\xff\xd9\r\n"));
    }
}
