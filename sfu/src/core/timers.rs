//! Time in the core: str0m's timeouts, peers that never connect, and the keyframe requests
//! the gate lets out. The caller asks [`Core::poll_timeout`] when to come back and calls
//! [`Core::handle_timeout`] then (calling it early is harmless).

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, Mid};
use str0m::Input;

use super::peers::CONNECT_TIMEOUT;
use super::Core;
use crate::PeerId;

impl Core {
    /// The earliest instant the core needs [`Core::handle_timeout`], if any.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.peers.next_deadline();
        let keyframes = self.members.next_deadline(self.now);
        [peers, keyframes].into_iter().flatten().min()
    }

    /// Feed due timeouts to every peer that wants one, give up on peers that never
    /// connected, and send due keyframe requests.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let mut ids = std::mem::take(&mut self.scratch_ids);
        self.peers.due(now, &mut ids);
        for &id in &ids {
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if !peer.connected && now >= peer.created + CONNECT_TIMEOUT {
                self.dead.push((id, "connect timeout".into()));
                continue;
            }
            if peer.next_timeout <= now {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    peer.rtc.disconnect();
                    self.dead.push((id, format!("rtc error: {e}")));
                }
                self.drain(id);
            }
        }
        self.scratch_ids = ids;

        if self.members.next_deadline(now).is_some_and(|d| d <= now) {
            let mut due = std::mem::take(&mut self.targets);
            self.members.due_keyframe_requests(now, &mut due);
            for &(publisher, mid) in &due {
                self.request_keyframe(publisher, mid);
            }
            self.targets = due;
        }
        self.settle();
    }

    /// Ask a publisher for a keyframe (PLI, FIR if only that was negotiated).
    fn request_keyframe(&mut self, publisher: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get_mut(publisher) else {
            return;
        };
        let mut sent = false;
        if let Some(mut writer) = peer.rtc.writer(mid) {
            let kind = if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                KeyframeRequestKind::Pli
            } else {
                KeyframeRequestKind::Fir
            };
            // Fails until the publisher's first RTP packet told str0m its SSRC; the gate
            // retries after the interval.
            match writer.request_keyframe(None, kind) {
                Ok(()) => sent = true,
                Err(e) => tracing::debug!(%publisher, "keyframe request not sent: {e}"),
            }
        }
        if sent {
            self.counters.keyframe_requests_sent += 1;
            if let Some(camera) = self.camera_counters(publisher) {
                camera.keyframe_requests_sent += 1;
            }
        }
        self.drain(publisher);
    }
}
