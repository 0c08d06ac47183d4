//! Watchers: viewers outside WebRTC (the server's MSE door). A watcher is a viewer in the
//! membership table like any other (it counts, waits for a keyframe, is welcomed on control
//! and may send commands), but it has no `Rtc`: its frames and control messages are queued
//! whole for the driver ([`Core::poll_watch`]), which hands them to the watcher's channel.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaData, Mid};

use super::Core;
use crate::{PeerId, ViewerAccess, WatchFrame, WatchMessage};

/// The m-line a watcher is filed under; it has none, and nothing reads it.
const NO_MID: &str = "watch";

impl Core {
    /// A new watcher of `camera` (live or not yet) with `access` on control. It is welcomed
    /// on control at once and gets frames from the camera's next keyframe, asked for now.
    pub(crate) fn watch(&mut self, now: Instant, camera: &str, access: ViewerAccess) -> PeerId {
        self.now = now;
        let id = self.peers.new_id();
        self.watchers.insert(id);
        self.members
            .add_viewer(camera, id, Mid::from(NO_MID), access, now);
        // Nothing to negotiate: it is connected from the start.
        self.members.peer_connected(id, None);
        let mut out = Vec::new();
        self.members.channel_opened(id, &mut out);
        self.carry_out(out);
        self.settle();
        tracing::info!(watcher = %id, camera, ?access, "watcher added");
        id
    }

    /// One control command from a watcher, as a viewer sends it on its data channel.
    pub(crate) fn watcher_command(&mut self, now: Instant, id: PeerId, text: &str) {
        self.now = now;
        if !self.watchers.contains(&id) {
            return;
        }
        let clock = self.clock();
        let mut out = Vec::new();
        self.members
            .on_message(id, text.as_bytes(), false, clock, &mut out);
        self.carry_out(out);
        self.settle();
    }

    /// The watcher could not take a frame (its queue was full): it lost the frame, so it
    /// goes on only from the next keyframe, as a viewer joining would.
    pub(crate) fn watcher_lagged(&mut self, id: PeerId) {
        if self.watchers.contains(&id) {
            self.counters.watcher_frames_dropped += 1;
            self.members.restart_at_keyframe(id);
        }
    }

    /// The watcher went away.
    pub(crate) fn unwatch(&mut self, id: PeerId) {
        if self.watchers.remove(&id) {
            self.members.remove_peer(id);
            tracing::info!(watcher = %id, "watcher removed");
        }
    }

    /// The next frame or control message for a watcher.
    pub(crate) fn poll_watch(&mut self) -> Option<(PeerId, WatchMessage)> {
        self.watch_out.pop_front()
    }

    pub(super) fn is_watcher(&self, id: PeerId) -> bool {
        self.watchers.contains(&id)
    }

    /// Queue `data` for watcher `to`; `shared` is the frame made once for all watchers.
    pub(super) fn watcher_frame(
        &mut self,
        to: PeerId,
        data: &MediaData,
        rtp_time: u32,
        shared: &mut Option<Arc<[u8]>>,
    ) {
        let bytes = shared
            .get_or_insert_with(|| Arc::from(&data.data[..]))
            .clone();
        self.watch_out.push_back((
            to,
            WatchMessage::Frame(WatchFrame {
                data: bytes,
                keyframe: data.is_keyframe(),
                rtp_time,
                received: data.network_time,
            }),
        ));
        self.counters.frames_forwarded += 1;
    }

    pub(super) fn watcher_control(&mut self, to: PeerId, text: &str) {
        self.watch_out
            .push_back((to, WatchMessage::Control(Arc::from(text))));
    }
}
