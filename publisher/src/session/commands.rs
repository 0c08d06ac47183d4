//! The session's side of camera control: announcing capabilities and state when the
//! `control` channel opens, carrying out viewers' commands, and telling viewers when what the
//! source can do changes. Separate from [`super::control_channel`] (bytes) and from
//! [`crate::control`] (decisions): this is the I/O that joins them.

use sightline_protocol::control::ControlMessage;
use tracing::{info, warn};

use super::Session;
use crate::control::{SourceChange, SourceKind};
use crate::pipeline::FrameReport;
use crate::station::Handled;

impl Session<'_> {
    /// The control channel opened: capabilities, then the state (the SFU keeps both for
    /// viewers who join later).
    pub(super) async fn announce(&mut self) {
        self.control_open = true;
        info!(camera = %self.config.camera_id, "control channel open");
        let texts: Vec<String> = self
            .station
            .control
            .announce()
            .iter()
            .map(ControlMessage::to_json)
            .collect();
        self.control.send_all(&texts).await;
    }

    /// To every viewer: the SFU's (it relays to each) and the direct ones. Broadcasts before
    /// a channel is open are dropped: its announcement carries them.
    pub(super) async fn broadcast(&self, texts: Vec<String>) {
        if self.control_open {
            self.control.send_all(&texts).await;
        }
        for channel in self.res.direct.channels() {
            channel.send_all(&texts).await;
        }
    }

    /// One command from a viewer, relayed by the SFU (`from` is `None`) or by us for a
    /// direct viewer (already judged by the relay's rules): the station decides and carries
    /// it out in one call; this sends the reply to its sender and any broadcast to everyone,
    /// then does the I/O it left.
    pub(super) async fn command(&mut self, text: &str, from: Option<u64>) -> anyhow::Result<()> {
        let mut handled = self.station.command(text);
        let reply = handled.messages.remove(0);
        self.reply(from, reply).await;
        self.carry_out(handled).await
    }

    /// A schedule entry is due: carry it out like a command nobody gets the reply of.
    pub(super) async fn run_schedule(&mut self) -> anyhow::Result<()> {
        match self.station.scheduled() {
            Some(handled) => self.carry_out(handled).await,
            None => Ok(()),
        }
    }

    /// What a command left after its reply: broadcasts, keyframe, source change, switch.
    async fn carry_out(&mut self, handled: Handled) -> anyhow::Result<()> {
        if !handled.messages.is_empty() {
            self.broadcast(handled.messages).await;
        }
        if handled.keyframe {
            self.keyframes.request();
        }
        if let Some(change) = handled.source_change {
            self.announce_source_change(change).await;
        }
        if let Some(switched) = handled.switched {
            self.follow(Some(switched?)).await?;
        }
        Ok(())
    }

    /// The encode thread saw something new: the source's own size or rate (capabilities
    /// follow it), or a new size going out.
    pub(super) async fn frames_seen(&mut self, seen: FrameReport) {
        if seen.sent_size.is_some() && seen.sent_size != self.sent_size {
            self.sent_size = seen.sent_size;
            if let Some((w, h)) = seen.sent_size {
                info!(camera = %self.config.camera_id, "sending {w}x{h}");
            }
        }
        let now = self.station.control.profile().clone();
        let mut next = now.clone();
        if let Some(size) = seen.source_size {
            next.native = size;
        }
        if seen.source_fps > 0 {
            next.max_fps = seen.source_fps;
        }
        if next.kind == SourceKind::Rtsp {
            next.passthrough = seen.passthrough;
        }
        if next == now {
            return;
        }
        let (w, h) = next.native;
        let Some(change) = self.station.control.source_changed(next) else {
            return;
        };
        info!(
            camera = %self.config.camera_id,
            "the source gives {w}x{h} at {} fps{}: capabilities updated",
            seen.source_fps,
            if seen.passthrough { " (H.264 passed through)" } else { "" },
        );
        self.announce_source_change(change).await;
    }

    /// What the source can do changed: tell every viewer (new capabilities, then the state
    /// they produced).
    pub(super) async fn announce_source_change(&mut self, change: SourceChange) {
        for w in &change.warnings {
            warn!("{w}");
        }
        self.broadcast(vec![
            ControlMessage::Capabilities(change.capabilities).to_json(),
            ControlMessage::State(change.state).to_json(),
        ])
        .await;
    }
}
