//! Making the session follow the station's capture: an encode thread reading the running
//! source while the peer connection is up (none otherwise), and the source's state reported
//! to the server (`idle` while not capturing). Separate because the capture changes for
//! several reasons (demand, a viewer's command, a restart) and each ends here.

use anyhow::Context;
use sightline_protocol::control::ControlMessage;
use sightline_protocol::wire::ClientMessage;
use tracing::info;

use super::signaling;
use super::websocket;
use super::Session;
use crate::pipeline::{EncodeContext, EncodeThread};
use crate::station::Switched;

impl Session<'_> {
    /// Make the session follow the capture: an encode thread reading the running source
    /// (restarted when the source is), none while it is stopped or the peer connection is
    /// not up; the server told the source's state, or `idle`. `force`: report even if
    /// nothing changed (right after registering).
    pub(super) async fn sync(&mut self, force: bool) -> anyhow::Result<()> {
        let capture = &self.station.capture;
        let generation = capture.running().then(|| capture.generation());
        let want = generation.filter(|_| self.frames.is_some());
        if self.encoding.is_some() && self.encoding != want {
            self.res.stop_encoding().await;
            self.encoding = None;
        }
        if let (Some(generation), None) = (want, self.encoding) {
            self.start_encoding(generation)?;
        }
        if self.watching != generation {
            self.watching = generation;
            self.source_state = self.station.capture.feed().map(|f| f.watch());
            if self.registered {
                self.report_source().await?;
            }
        } else if force {
            self.report_source().await?;
        }
        Ok(())
    }

    pub(super) fn start_encoding(&mut self, generation: u64) -> anyhow::Result<()> {
        let (Some(feed), Some(frames)) = (self.station.capture.feed(), self.frames.clone()) else {
            return Ok(());
        };
        let ctx = EncodeContext {
            keyframe_interval: self.config.keyframe_interval,
            keyframes: self.keyframes.clone(),
            vp8: self.vp8.clone(),
            vp8_keyframes: self.vp8_keyframes.clone(),
            live: self.station.control.pipeline().reader(),
            report: self.report.clone(),
            applied: self.station.applied.clone(),
            snapshots: self.snapshots.clone(),
            motion: self.motion_out.clone(),
        };
        info!(camera = %self.config.camera_id, source = %feed.name(), "encoding");
        self.res.encode =
            Some(EncodeThread::start(feed, ctx, frames).context("starting the encode thread")?);
        self.encoding = Some(generation);
        Ok(())
    }

    /// Tell the server the source's state (the watch's current value is then seen).
    pub(super) async fn report_source(&mut self) -> anyhow::Result<()> {
        if let Some(rx) = self.source_state.as_mut() {
            rx.borrow_and_update();
        }
        let msg = self.source_report();
        websocket::send(&mut self.ws, &msg).await
    }

    /// The station started, stopped or restarted the capture: follow it, and tell everyone.
    pub(super) async fn follow(&mut self, switched: Option<Switched>) -> anyhow::Result<()> {
        let Some(switched) = switched else {
            return Ok(());
        };
        self.sync(false).await?;
        if let Some(update) = switched.state {
            self.broadcast(vec![ControlMessage::State(update).to_json()])
                .await;
        }
        Ok(())
    }

    /// The `source_state` to report: the running source's health (and, while live, how it
    /// runs), or `idle`.
    fn source_report(&self) -> ClientMessage {
        let capture = &self.station.capture;
        match capture.feed() {
            Some(feed) => signaling::source_report(&feed.report(), feed.name()),
            None => signaling::idle_report(&capture.name()),
        }
    }
}
