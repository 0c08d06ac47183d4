//! Frame fan-out: one publisher frame → every admitted viewer. Never decodes.

use std::sync::Arc;

use str0m::media::{Frequency, MediaData};

use super::feed::FramePackets;
use super::Core;
use crate::{PeerId, SfuEvent, VideoCodec};

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
        if keyframe && codec == VideoCodec::H264 {
            self.note_sequence_parameters(publisher, &data.data);
        }
        if !data.contiguous {
            self.counters.frames_after_loss += 1;
            // Packets were lost on the way in beyond what NACK recovered: viewers' pictures
            // break until the next keyframe.
            self.members.stream_broken(publisher, codec);
        }
        let mut targets = std::mem::take(&mut self.targets);
        self.members
            .frame_targets(publisher, codec, keyframe, &mut targets);
        // Packetised when someone is sent it now, or kept for the viewers who connect next.
        let feed = self
            .members
            .feed(publisher, codec)
            .filter(|feed| !targets.is_empty() || feed.keeps(keyframe));
        if let Some(feed) = feed {
            let time = data.time.rebase(Frequency::NINETY_KHZ).numer() as u32;
            let frame = feed.packetize(time, data.network_time, &data.data, keyframe);
            // Watchers share one copy of the access unit.
            let mut shared = None;
            let mut forwarded = 0;
            let mut viewers = std::mem::take(&mut self.scratch_ids);
            viewers.clear();
            for &(viewer, _) in &targets {
                if self.is_watcher(viewer) {
                    self.watcher_frame(viewer, &data, frame.rtp_time, &mut shared);
                    forwarded += 1;
                } else {
                    viewers.push(viewer);
                }
            }
            viewers.sort_unstable();
            let mut sent = std::mem::take(&mut self.sent_ids);
            self.write_frame_to(&frame, &viewers, &mut sent);
            for &viewer in &sent {
                self.counters.frames_forwarded += 1;
                forwarded += 1;
                self.first_frame_sent(viewer);
            }
            let written = !sent.is_empty();
            self.scratch_ids = viewers;
            self.sent_ids = sent;
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

impl Core {
    /// A viewer whose media has just connected is sent the camera's last keyframe and every
    /// frame since (see [`super::gop_cache`]), back to back, and goes on live from there.
    /// They keep their order but not their spacing: each is stamped one RTP tick before the
    /// next, the last with its own time, so the viewer's jitter buffer takes them as on time
    /// and shows the newest at once instead of playing the past second out at its pace.
    pub(super) fn replay(&mut self, viewer: PeerId, frames: &[Arc<FramePackets>]) {
        let (Some(last), Some(peer)) = (frames.last(), self.peers.get_mut(viewer)) else {
            return;
        };
        let Some(tx) = peer.tx.as_mut() else {
            // No send stream yet: wait for a keyframe like any viewer.
            self.members.restart_at_keyframe(viewer);
            return;
        };
        let behind = |i: usize| (frames.len() - 1 - i) as u32;
        for (i, frame) in frames.iter().enumerate() {
            let time = last.rtp_time.wrapping_sub(behind(i));
            if !tx.write_at(&mut peer.rtc, frame, time, last.wallclock) {
                // No send stream after all: wait for a keyframe like any viewer.
                self.members.restart_at_keyframe(viewer);
                return;
            }
        }
        let n = frames.len() as u64;
        self.counters.frames_forwarded += n;
        self.counters.gop_replays += 1;
        if let Some(camera) = self.camera_counters(viewer) {
            camera.frames_forwarded += n;
            camera.keyframes_forwarded += 1;
        }
        self.first_frame_sent(viewer);
        // str0m hands queued RTP to its pacer in its timeout handler. Run it right away:
        // the frames leave now, not on the viewer's next timeout.
        self.poke(viewer);
    }

    /// Frames were queued on `viewer`'s `Rtc`: if they are its first, that is timed.
    fn first_frame_sent(&mut self, viewer: PeerId) {
        if let Some(peer) = self.peers.get_mut(viewer) {
            if !peer.first_frame_sent {
                peer.first_frame_sent = true;
                let waited = self.now.saturating_duration_since(peer.created);
                self.counters.first_frame.0.record(waited);
            }
        }
    }

    /// A publisher's keyframe: signaling hears of its SPS when it is new or changed.
    fn note_sequence_parameters(&mut self, publisher: PeerId, access_unit: &[u8]) {
        let Some(sps) = sps_in(access_unit) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(publisher) else {
            return;
        };
        if peer.sps.as_deref() == Some(sps) {
            return;
        }
        peer.sps = Some(sps.to_vec());
        self.events.push_back(SfuEvent::SequenceParameters {
            peer: publisher,
            sps: sps.to_vec(),
        });
    }
}

/// The first sequence parameter set (NAL type 7) of an Annex-B access unit, without its
/// start code or trailing zeros. Parameter sets lead a keyframe, so the search usually ends
/// within its first bytes rather than scanning the slices.
fn sps_in(access_unit: &[u8]) -> Option<&[u8]> {
    const NAL_SPS: u8 = 7;
    crate::annex_b::nal_units(access_unit).find(|unit| unit[0] & 0x1f == NAL_SPS)
}

#[cfg(test)]
mod sps_tests {
    use super::sps_in;

    #[test]
    fn the_sps_is_found_among_the_units_of_a_keyframe() {
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x02];
        let frame = [
            &[0, 0, 0, 1, 0x09, 0xf0][..],
            &[0, 0, 0, 1][..],
            &sps[..],
            &[0, 0, 1, 0x68, 0xce, 0x3c, 0x80][..],
            &[0, 0, 0, 1, 0x65, 1, 2, 3][..],
        ]
        .concat();
        assert_eq!(sps_in(&frame), Some(&sps[..]));
        let last = [
            &[0, 0, 1, 0x65, 1][..],
            &[0, 0, 1][..],
            &sps[..],
            &[0, 0][..],
        ]
        .concat();
        assert_eq!(
            sps_in(&last),
            Some(&sps[..]),
            "the last unit, trailing zeros gone"
        );
    }

    #[test]
    fn frames_without_an_sps_or_start_code_give_none() {
        assert_eq!(sps_in(&[]), None);
        assert_eq!(sps_in(&[0x67, 1, 2]), None, "no start code");
        assert_eq!(sps_in(&[0, 0, 1, 0x65, 1, 2]), None);
        assert_eq!(sps_in(&[0, 0, 1]), None);
        assert_eq!(sps_in(&[0, 0, 1, 0, 0, 1]), None);
    }
}
