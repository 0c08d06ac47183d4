//! `snapshot_request` from the server: the encode thread hands over its next picture
//! ([`crate::pipeline::snapshot`]), a blocking task makes the JPEG, and the answer goes back on
//! the WebSocket as one binary message (or `snapshot_failed` with the reason). The session
//! loop never waits for a snapshot.

use std::time::Duration;

use sightline_protocol::wire::{snapshot_reply, ClientMessage, MAX_SNAPSHOT_MESSAGE_BYTES};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{websocket, Flow, Session};
use crate::image::jpeg_out::{DEFAULT_QUALITY, MAX_JPEG_QUALITY, MIN_JPEG_QUALITY};
use crate::pipeline::snapshot::make_jpeg;

/// How long the encode thread may take to see a frame (a camera at 1 fps, a slow RTSP
/// camera): the server gives up a little later.
const PICTURE_WAIT: Duration = Duration::from_millis(2500);

/// A finished snapshot: the request id and the JPEG, or why there is none.
pub(super) type Made = (u64, Result<Vec<u8>, String>);

impl Session<'_> {
    pub(super) async fn on_snapshot_request(
        &mut self,
        request: u64,
        width: Option<u32>,
    ) -> anyhow::Result<()> {
        if self.encoding.is_none() {
            let reason = if self.station.capture.running() {
                "the media connection to the server is not up yet"
            } else {
                "the camera is not capturing (an on-demand camera with nobody watching, or a stopped stream)"
            };
            return self.snapshot_failed(request, reason.into()).await;
        }
        // The camera's `quality` setting, as it is when asked.
        let quality = self
            .station
            .control
            .settings()
            .quality
            .map_or(DEFAULT_QUALITY, |q| {
                q.clamp(MIN_JPEG_QUALITY.into(), MAX_JPEG_QUALITY.into()) as u8
            });
        debug!(request, ?width, quality, "snapshot asked for");
        let order = self.snapshots.order();
        let done = self.snapshots_made_tx.clone();
        tokio::spawn(async move {
            let made = match tokio::time::timeout(PICTURE_WAIT, order).await {
                Ok(Ok(picture)) => tokio::task::spawn_blocking(move || {
                    make_jpeg(picture, width, quality, MAX_SNAPSHOT_MESSAGE_BYTES - 8)
                })
                .await
                .unwrap_or_else(|e| Err(format!("making the JPEG failed: {e}"))),
                Ok(Err(_)) => Err("the encode thread stopped before a frame came".into()),
                Err(_) => Err(format!("no frame from the source within {PICTURE_WAIT:?}")),
            };
            let _ = done.send((request, made));
        });
        Ok(())
    }

    pub(super) async fn on_snapshot_made(&mut self, made: Option<Made>) -> Flow {
        let Some((request, made)) = made else {
            return Ok(None);
        };
        match made {
            Ok(jpeg) => {
                debug!(request, bytes = jpeg.len(), "snapshot sent");
                websocket::send_binary(&mut self.ws, snapshot_reply(request, &jpeg)).await?;
            }
            Err(reason) => self.snapshot_failed(request, reason).await?,
        }
        Ok(None)
    }

    async fn snapshot_failed(&mut self, request: u64, reason: String) -> anyhow::Result<()> {
        warn!(request, "no snapshot: {reason}");
        websocket::send(
            &mut self.ws,
            &ClientMessage::SnapshotFailed { request, reason },
        )
        .await
    }
}

/// The channel finished snapshots come back on.
pub(super) fn channel() -> (mpsc::UnboundedSender<Made>, mpsc::UnboundedReceiver<Made>) {
    mpsc::unbounded_channel()
}
