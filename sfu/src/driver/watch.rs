//! [`Watch`]: one watcher's end of the SFU (see [`crate::SfuHandle::watch`]).

use tokio::sync::mpsc;

use super::command::Command;
use crate::{PeerId, SfuError, WatchMessage};

/// Frames and control messages queued for one watcher. A watcher whose queue is full loses
/// the frame and every one after it up to the next keyframe, so a slow one costs at most
/// this many frames of memory and never holds up the loop.
pub(crate) const WATCH_QUEUE: usize = 32;

/// A viewer outside WebRTC. Dropping it removes the watcher.
pub struct Watch {
    id: PeerId,
    messages: mpsc::Receiver<WatchMessage>,
    commands: mpsc::Sender<Command>,
}

impl Watch {
    pub(crate) fn new(
        id: PeerId,
        messages: mpsc::Receiver<WatchMessage>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Watch {
            id,
            messages,
            commands,
        }
    }

    /// Its id, as control messages name it (`welcome`'s `viewer`, `by`).
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The next frame or control message; `None` once the SFU has stopped.
    pub async fn recv(&mut self) -> Option<WatchMessage> {
        self.messages.recv().await
    }

    /// A control command (the JSON a viewer sends on its data channel). Its answer comes
    /// back through [`Self::recv`].
    pub async fn command(&self, text: &str) -> Result<(), SfuError> {
        self.commands
            .send(Command::WatcherControl {
                watcher: self.id,
                text: text.to_owned(),
            })
            .await
            .map_err(|_| SfuError::Stopped)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // A full command channel is fine: the loop removes a watcher whose receiver is gone
        // the next time it has something for it.
        let _ = self
            .commands
            .try_send(Command::Unwatch { watcher: self.id });
    }
}
