//! Frame fan-out: one publisher frame → every admitted viewer. Never decodes.

use str0m::media::{Frequency, MediaData};

use super::Core;
use crate::PeerId;

impl Core {
    /// A whole frame from `publisher`: an Annex-B access unit, or a VP8 frame on its VP8
    /// m-line. It is packetised once (the camera's [`super::feed::Feed`] for that codec)
    /// and the same payloads go to every viewer of the codec under the viewer's own SSRC,
    /// sequence numbers and payload type, so the publisher's never reach viewers and a
    /// publisher change is invisible to them apart from the picture.
    pub(super) fn forward(&mut self, publisher: PeerId, data: MediaData) {
        self.counters.frames_received += 1;
        let keyframe = data.is_keyframe();
        if let Some(camera) = self.camera_counters(publisher) {
            camera.frames_received += 1;
            camera.keyframes_received += u64::from(keyframe);
            camera.bytes_received += data.data.len() as u64;
        }
        let Some(codec) = self.members.publisher_codec(publisher, data.mid) else {
            return;
        };
        if !data.contiguous {
            self.counters.frames_after_loss += 1;
            // Packets were lost on the way in beyond what NACK recovered: viewers' pictures
            // break until the next keyframe.
            self.members.stream_broken(publisher, codec);
        }
        let mut targets = std::mem::take(&mut self.targets);
        self.members
            .frame_targets(publisher, codec, keyframe, &mut targets);
        let feed = self
            .members
            .feed(publisher, codec)
            .filter(|_| !targets.is_empty());
        if let Some(feed) = feed {
            let time = data.time.rebase(Frequency::NINETY_KHZ).numer() as u32;
            let frame = feed.packetize(time, data.network_time, &data.data);
            // Watchers share one copy of the access unit.
            let mut shared = None;
            let mut written = false;
            let mut forwarded = 0;
            for &(viewer, _) in &targets {
                if self.is_watcher(viewer) {
                    self.watcher_frame(viewer, &data, frame.rtp_time, &mut shared);
                    forwarded += 1;
                    continue;
                }
                let Some(peer) = self.peers.get_mut(viewer) else {
                    continue;
                };
                let Some(tx) = peer.tx.as_mut() else {
                    continue;
                };
                if !tx.write(&mut peer.rtc, &frame) {
                    tracing::debug!(%viewer, "no send stream");
                    continue;
                }
                self.counters.frames_forwarded += 1;
                forwarded += 1;
                written = true;
                if !peer.first_frame_sent {
                    peer.first_frame_sent = true;
                    let waited = self.now.saturating_duration_since(peer.created);
                    self.counters.first_frame.0.record(waited);
                }
                // str0m hands queued RTP to its pacer in its timeout handler. Run it right
                // away: the frame leaves now, not on the viewer's next timeout.
                self.poke(viewer);
            }
            if written {
                // `now` is the arrival of the datagram that completed the frame.
                self.frames_in.push(self.now);
            }
            if let Some(camera) = self.camera_counters(publisher) {
                camera.frames_forwarded += forwarded;
                camera.keyframes_forwarded += if keyframe { forwarded } else { 0 };
            }
        }
        self.targets = targets;
    }
}
