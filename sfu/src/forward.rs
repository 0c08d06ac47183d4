//! Frame fan-out: one publisher frame → every admitted viewer's writer. Never decodes.

use str0m::media::MediaData;

use crate::media_loop::MediaLoop;
use crate::PeerId;

impl MediaLoop {
    /// A whole Annex-B frame from `publisher`. Each viewer gets it through its own writer
    /// and payload type, so the publisher's SSRC, sequence numbers and PT never reach
    /// viewers and a publisher change is invisible to them apart from the picture.
    pub(crate) fn forward(&mut self, publisher: PeerId, data: MediaData) {
        if !data.contiguous {
            // Packets were lost on the way in beyond what NACK recovered: viewers' pictures
            // break until the next keyframe.
            self.routing.keyframe_wanted_by(publisher);
        }
        let mut targets = std::mem::take(&mut self.targets);
        self.routing
            .frame_targets(publisher, data.is_keyframe(), &mut targets);
        for &(viewer, mid) in &targets {
            let Some(peer) = self.peers.get_mut(&viewer) else {
                continue;
            };
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            match writer.write(pt, data.network_time, data.time, data.data.clone()) {
                Ok(()) => self.counters.frames_forwarded += 1,
                Err(e) => tracing::debug!(%viewer, "write failed: {e}"),
            }
            self.drain(viewer);
        }
        self.targets = targets;
    }
}
