//! Frame fan-out: one publisher frame → every admitted viewer's writer. Never decodes.

use std::time::Instant;

use str0m::media::MediaData;
use str0m::Input;

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
        let now = Instant::now();
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
            // str0m packetizes written frames in its timeout handler. Run it right away:
            // one poll cycle per viewer and frame instead of a poll now (which only says
            // "timeout now") plus a timeout and another poll on the next loop turn.
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                peer.rtc.disconnect();
                self.dead.push((viewer, format!("rtc error: {e}")));
            }
            self.drain(viewer);
        }
        self.targets = targets;
    }
}
