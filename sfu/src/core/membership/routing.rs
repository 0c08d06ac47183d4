//! Media over the membership table: where each frame goes ([`Membership::frame_targets`]),
//! which publishers to ask for a keyframe ([`Membership::due_keyframe_requests`]), and the
//! media side of peers connecting, pausing and asking for keyframes.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::Mid;

use super::{Membership, Role};
use crate::core::feed::{Feed, FramePackets};
use crate::{PeerId, VideoCodec};

impl Membership {
    /// The m-line the publisher's `codec` video arrives on.
    pub(crate) fn set_publisher_mid(&mut self, peer: PeerId, codec: VideoCodec, mid: Mid) {
        if let Some((cam, Role::Publisher)) = self.camera_of(peer) {
            if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                p.mids[codec.index()] = Some(mid);
            }
        }
    }

    /// The codec a viewer is sent (H.264 unless set here, before it connects).
    pub(crate) fn set_viewer_codec(&mut self, viewer: PeerId, codec: VideoCodec) {
        if let Some((cam, Role::Viewer)) = self.camera_of(viewer) {
            if let Some(v) = cam.viewer_mut(viewer) {
                v.codec = codec;
            }
        }
    }

    /// The codec a viewer is sent; `None` for anyone else.
    pub(crate) fn viewer_codec(&mut self, viewer: PeerId) -> Option<VideoCodec> {
        match self.camera_of(viewer)? {
            (cam, Role::Viewer) => cam.viewer_mut(viewer).map(|v| v.codec),
            _ => None,
        }
    }

    /// Which codec arrives on a publisher's m-line `mid`, if it is one of its video m-lines.
    pub(crate) fn publisher_codec(&mut self, publisher: PeerId, mid: Mid) -> Option<VideoCodec> {
        let (cam, _) = self.camera_of(publisher)?;
        let p = cam.publisher.as_ref().filter(|p| p.peer == publisher)?;
        VideoCodec::ALL
            .into_iter()
            .find(|c| p.mids[c.index()] == Some(mid))
    }

    /// How many of a camera's viewers are sent `codec`.
    #[cfg(test)]
    pub(crate) fn viewers_of(&self, camera: &str, codec: VideoCodec) -> usize {
        self.cameras
            .get(camera)
            .map_or(0, |c| c.viewers.iter().filter(|v| v.codec == codec).count())
    }

    /// The peer's ICE and DTLS are up. A viewer must start at a keyframe: when the caller
    /// can send it packets (`replay_at`, the time now) and the camera keeps its last
    /// keyframe and the frames since, they are returned for the caller to send it at once;
    /// else it waits for the next keyframe, asked for now.
    pub(crate) fn peer_connected(
        &mut self,
        peer: PeerId,
        replay_at: Option<Instant>,
    ) -> Option<Vec<Arc<FramePackets>>> {
        let (cam, role) = self.camera_of(peer)?;
        match role {
            Role::Publisher => {
                if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                    p.connected = true;
                }
                // Viewers already waiting get their first picture from an immediate
                // request, not from the publisher's next periodic IDR.
                for codec in VideoCodec::ALL {
                    if cam
                        .viewers
                        .iter()
                        .any(|v| v.connected && v.waiting_keyframe && v.codec == codec)
                    {
                        cam.want_keyframe(codec);
                    }
                }
            }
            Role::Viewer => {
                let v = cam.viewers.iter_mut().find(|v| v.peer == peer)?;
                v.connected = true;
                if let Some(now) = replay_at.filter(|_| !v.paused) {
                    let frames = cam.lanes[v.codec.index()].feed.since_keyframe(now);
                    if let Some(frames) = frames {
                        v.waiting_keyframe = false;
                        return Some(frames.to_vec());
                    }
                }
                self.restart_at_keyframe(peer);
            }
        }
        None
    }

    /// A connected viewer gets nothing more until the next keyframe, asked for now: it is
    /// new, or it lost frames it cannot do without.
    pub(crate) fn restart_at_keyframe(&mut self, viewer: PeerId) {
        let Some((cam, Role::Viewer)) = self.camera_of(viewer) else {
            return;
        };
        if let Some(v) = cam.viewer_mut(viewer).filter(|v| v.connected) {
            v.waiting_keyframe = true;
            let codec = v.codec;
            cam.want_keyframe(codec);
        }
    }

    /// A viewer sent PLI/FIR: its picture is broken until the next keyframe of its codec,
    /// so ask for one (coalesced with everyone else's).
    pub(crate) fn keyframe_wanted_by(&mut self, viewer: PeerId) {
        if let Some((cam, Role::Viewer)) = self.camera_of(viewer) {
            if let Some(codec) = cam.viewer_mut(viewer).map(|v| v.codec) {
                cam.want_keyframe(codec);
            }
        }
    }

    /// The publisher's `codec` stream had a gap: its viewers' pictures are broken.
    pub(crate) fn stream_broken(&mut self, publisher: PeerId, codec: VideoCodec) {
        if let Some((cam, Role::Publisher)) = self.camera_of(publisher) {
            cam.want_keyframe(codec);
            cam.lanes[codec.index()].feed.stream_broken();
        }
    }

    /// Stop or restart forwarding to a viewer. A resumed viewer starts again at a keyframe,
    /// asked for at once: its decoder lost the reference frames while paused. Returns false
    /// for a peer that is not a viewer.
    pub(crate) fn set_paused(&mut self, viewer: PeerId, paused: bool) -> bool {
        let Some((cam, Role::Viewer)) = self.camera_of(viewer) else {
            return false;
        };
        let Some(v) = cam.viewers.iter_mut().find(|v| v.peer == viewer) else {
            return false;
        };
        let resumed = v.paused && !paused;
        v.paused = paused;
        if resumed {
            v.waiting_keyframe = true;
            if v.connected {
                let codec = v.codec;
                cam.want_keyframe(codec);
            }
        }
        true
    }

    /// Where a `codec` frame from `publisher` goes: pushes `(viewer, mid)` into `out`
    /// (cleared first; the caller reuses it so the hot path does not allocate). A keyframe
    /// releases the codec's waiting viewers and answers its outstanding keyframe request.
    pub(crate) fn frame_targets(
        &mut self,
        publisher: PeerId,
        codec: VideoCodec,
        is_keyframe: bool,
        out: &mut Vec<(PeerId, Mid)>,
    ) {
        out.clear();
        let Some((cam, Role::Publisher)) = self.camera_of(publisher) else {
            return;
        };
        if cam.publisher.as_ref().is_none_or(|p| p.peer != publisher) {
            return;
        }
        for v in &mut cam.viewers {
            if !v.connected || v.paused || v.codec != codec {
                continue;
            }
            if v.waiting_keyframe {
                if !is_keyframe {
                    continue;
                }
                v.waiting_keyframe = false;
            }
            out.push((v.peer, v.mid));
        }
        if is_keyframe {
            cam.lanes[codec.index()].gate.keyframe_arrived();
        }
    }

    /// The `codec` feed `publisher` currently feeds, if it is the camera's publisher.
    pub(crate) fn feed(&mut self, publisher: PeerId, codec: VideoCodec) -> Option<&mut Feed> {
        let (cam, role) = self.camera_of(publisher)?;
        let current = cam.publisher.as_ref().is_some_and(|p| p.peer == publisher);
        (role == Role::Publisher && current).then_some(&mut cam.lanes[codec.index()].feed)
    }

    /// The earliest time a keyframe request is due (only for publishers able to take one).
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.cameras
            .values()
            .flat_map(|c| {
                VideoCodec::ALL.into_iter().filter_map(move |codec| {
                    c.publisher.as_ref()?.ready(codec)?;
                    c.lanes[codec.index()].gate.next_deadline(now)
                })
            })
            .min()
    }

    /// Publishers to send a PLI to now, as `(publisher, receiving mid)`. Each is recorded
    /// as requested, so the next one waits out the interval.
    pub(crate) fn due_keyframe_requests(&mut self, now: Instant, out: &mut Vec<(PeerId, Mid)>) {
        out.clear();
        for cam in self.cameras.values_mut() {
            let Some(publisher) = cam.publisher.as_ref() else {
                continue;
            };
            for codec in VideoCodec::ALL {
                let Some(mid) = publisher.ready(codec) else {
                    continue;
                };
                if cam.lanes[codec.index()].gate.poll_request(now) {
                    out.push((publisher.peer, mid));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::RouteCounts;
    use super::*;
    use crate::core::RateLimit;
    use crate::ViewerAccess;

    const IV: Duration = Duration::from_millis(250);

    fn mid(s: &str) -> Mid {
        Mid::from(s)
    }

    fn targets(r: &mut Membership, publisher: PeerId, kf: bool) -> Vec<PeerId> {
        let mut out = Vec::new();
        r.frame_targets(publisher, VideoCodec::H264, kf, &mut out);
        out.into_iter().map(|(p, _)| p).collect()
    }

    fn due(r: &mut Membership, now: Instant) -> Vec<PeerId> {
        let mut out = Vec::new();
        r.due_keyframe_requests(now, &mut out);
        out.into_iter().map(|(p, _)| p).collect()
    }

    /// A view-only viewer of `camera` (mid "v"), not connected yet.
    fn watch(r: &mut Membership, camera: &str, viewer: PeerId) {
        r.add_viewer(
            camera,
            viewer,
            mid("v"),
            ViewerAccess::ViewOnly,
            Instant::now(),
        );
    }

    /// Camera "cam" with a connected publisher 1 (mid "0").
    fn live_camera() -> Membership {
        let mut r = Membership::new(IV, RateLimit::default());
        assert_eq!(r.set_publisher("cam", PeerId(1)), None);
        r.set_publisher_mid(PeerId(1), VideoCodec::H264, mid("0"));
        r.peer_connected(PeerId(1), None);
        r
    }

    #[test]
    fn viewer_gets_nothing_until_connected_then_only_from_a_keyframe() {
        let mut r = live_camera();
        watch(&mut r, "cam", PeerId(2));
        assert!(
            targets(&mut r, PeerId(1), true).is_empty(),
            "not connected yet"
        );
        r.peer_connected(PeerId(2), None);
        assert!(
            targets(&mut r, PeerId(1), false).is_empty(),
            "delta before keyframe"
        );
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
        assert_eq!(targets(&mut r, PeerId(1), false), vec![PeerId(2)]);
    }

    /// The publisher's `codec` frame, packetised as the core does.
    fn feed_frame(r: &mut Membership, keyframe: bool, time: u32) {
        let feed = r
            .feed(PeerId(1), VideoCodec::H264)
            .expect("the publisher's feed");
        feed.packetize(time, Instant::now(), &[0, 0, 0, 1, 0x65, 1, 2], keyframe);
    }

    #[test]
    fn a_viewer_connecting_after_a_keyframe_is_given_the_frames_since_and_nothing_is_asked() {
        let mut r = live_camera();
        let t0 = Instant::now();
        feed_frame(&mut r, true, 3000);
        feed_frame(&mut r, false, 6000);
        watch(&mut r, "cam", PeerId(2));
        let replay = r.peer_connected(PeerId(2), Some(t0)).expect("a replay");
        let times: Vec<u32> = replay.iter().map(|f| f.rtp_time).collect();
        assert_eq!(times, vec![3000, 6000]);
        assert!(due(&mut r, t0).is_empty(), "the publisher is not asked");
        assert_eq!(
            targets(&mut r, PeerId(1), false),
            vec![PeerId(2)],
            "it goes on live with the next delta"
        );
    }

    #[test]
    fn without_replay_or_after_a_loss_a_viewer_waits_for_a_keyframe_asked_for() {
        let mut r = live_camera();
        let t0 = Instant::now();
        feed_frame(&mut r, true, 3000);
        watch(&mut r, "cam", PeerId(2));
        assert!(r.peer_connected(PeerId(2), None).is_none(), "a watcher");
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        targets(&mut r, PeerId(1), true);

        r.stream_broken(PeerId(1), VideoCodec::H264);
        watch(&mut r, "cam", PeerId(3));
        assert!(
            r.peer_connected(PeerId(3), Some(t0)).is_none(),
            "the frames kept break off"
        );
        assert_eq!(due(&mut r, t0 + IV), vec![PeerId(1)]);

        // A new publisher's camera has nothing kept from the old one.
        feed_frame(&mut r, true, 9000);
        assert_eq!(r.set_publisher("cam", PeerId(4)), Some(PeerId(1)));
        watch(&mut r, "cam", PeerId(5));
        assert!(r.peer_connected(PeerId(5), Some(t0)).is_none());
    }

    #[test]
    fn frames_from_a_peer_that_is_not_the_publisher_go_nowhere() {
        let mut r = live_camera();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        assert!(targets(&mut r, PeerId(2), true).is_empty());
        assert!(targets(&mut r, PeerId(99), true).is_empty());
    }

    #[test]
    fn many_viewers_joining_cause_one_request_and_one_keyframe_releases_all() {
        let mut r = live_camera();
        let t0 = Instant::now();
        for i in 10..60 {
            watch(&mut r, "cam", PeerId(i));
            r.peer_connected(PeerId(i), None);
        }
        assert_eq!(r.next_deadline(t0), Some(t0));
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        assert!(due(&mut r, t0 + Duration::from_millis(100)).is_empty());
        assert_eq!(targets(&mut r, PeerId(1), true).len(), 50);
        assert_eq!(r.next_deadline(t0 + IV), None, "answered");
        assert!(due(&mut r, t0 + IV * 4).is_empty());
    }

    #[test]
    fn unanswered_request_is_repeated() {
        let mut r = live_camera();
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        // Only deltas arrive.
        assert!(targets(&mut r, PeerId(1), false).is_empty());
        assert_eq!(r.next_deadline(t0), Some(t0 + IV));
        assert_eq!(due(&mut r, t0 + IV), vec![PeerId(1)]);
    }

    #[test]
    fn viewer_pli_asks_the_publisher_without_starving_the_viewer() {
        let mut r = live_camera();
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        targets(&mut r, PeerId(1), true);
        r.keyframe_wanted_by(PeerId(2));
        r.keyframe_wanted_by(PeerId(2));
        assert!(
            due(&mut r, t0 + Duration::from_millis(10)).is_empty(),
            "throttled"
        );
        assert_eq!(due(&mut r, t0 + IV), vec![PeerId(1)]);
        assert_eq!(targets(&mut r, PeerId(1), false), vec![PeerId(2)]);
    }

    #[test]
    fn no_request_while_publisher_is_not_connected() {
        let mut r = Membership::new(IV, RateLimit::default());
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        assert_eq!(r.next_deadline(t0), None);
        assert!(due(&mut r, t0).is_empty());
        r.set_publisher("cam", PeerId(1));
        r.set_publisher_mid(PeerId(1), VideoCodec::H264, mid("0"));
        assert!(due(&mut r, t0).is_empty(), "publisher not connected");
        r.peer_connected(PeerId(1), None);
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
    }

    #[test]
    fn a_keyframe_that_passed_before_the_viewer_connected_does_not_count() {
        // After a restart the publisher's first IDR often goes out while a viewer's ICE and
        // DTLS are still under way: that viewer still needs a request of its own.
        let mut r = live_camera();
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        assert!(targets(&mut r, PeerId(1), true).is_empty());
        assert_eq!(r.next_deadline(t0), None, "nobody waits yet");
        r.peer_connected(PeerId(2), None);
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        assert!(targets(&mut r, PeerId(1), false).is_empty());
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
    }

    #[test]
    fn viewers_survive_publisher_reconnect_and_wait_for_its_keyframe() {
        let mut r = live_camera();
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        due(&mut r, t0);
        targets(&mut r, PeerId(1), true);
        assert_eq!(r.remove_peer(PeerId(1)), Some(Role::Publisher));
        assert_eq!(r.counts().viewers, 1);
        r.set_publisher("cam", PeerId(3));
        r.set_publisher_mid(PeerId(3), VideoCodec::H264, mid("1"));
        r.peer_connected(PeerId(3), None);
        // Asked at once although the old publisher was asked a moment ago.
        assert_eq!(due(&mut r, t0 + Duration::from_millis(1)), vec![PeerId(3)]);
        assert!(targets(&mut r, PeerId(3), false).is_empty());
        assert_eq!(targets(&mut r, PeerId(3), true), vec![PeerId(2)]);
        assert!(
            targets(&mut r, PeerId(1), true).is_empty(),
            "old publisher is gone"
        );
    }

    #[test]
    fn a_second_publisher_replaces_the_first() {
        let mut r = live_camera();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2), None);
        targets(&mut r, PeerId(1), true);
        assert_eq!(r.set_publisher("cam", PeerId(3)), Some(PeerId(1)));
        assert_eq!(r.role(PeerId(1)), None);
        assert_eq!(r.remove_peer(PeerId(1)), None, "already forgotten");
        r.set_publisher_mid(PeerId(3), VideoCodec::H264, mid("0"));
        r.peer_connected(PeerId(3), None);
        assert!(
            targets(&mut r, PeerId(3), false).is_empty(),
            "needs new keyframe"
        );
        assert_eq!(targets(&mut r, PeerId(3), true), vec![PeerId(2)]);
        assert_eq!(r.counts().publishers, 1);
    }

    #[test]
    fn a_paused_viewer_gets_nothing_and_resumes_at_a_keyframe() {
        let mut r = live_camera();
        let t0 = Instant::now();
        for v in [2, 3] {
            watch(&mut r, "cam", PeerId(v));
            r.peer_connected(PeerId(v), None);
        }
        due(&mut r, t0);
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2), PeerId(3)]);
        assert!(r.set_paused(PeerId(2), true));
        assert_eq!(targets(&mut r, PeerId(1), false), vec![PeerId(3)]);
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(3)]);
        let t1 = t0 + IV * 2;
        assert!(due(&mut r, t1).is_empty(), "pausing asks for nothing");
        assert!(r.set_paused(PeerId(2), false));
        assert_eq!(
            due(&mut r, t1),
            vec![PeerId(1)],
            "resuming asks for a keyframe"
        );
        assert_eq!(
            targets(&mut r, PeerId(1), false),
            vec![PeerId(3)],
            "no delta first"
        );
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2), PeerId(3)]);
        // Resuming a viewer that is not paused changes nothing.
        assert!(r.set_paused(PeerId(2), false));
        assert_eq!(
            targets(&mut r, PeerId(1), false),
            vec![PeerId(2), PeerId(3)]
        );
        assert!(
            !r.set_paused(PeerId(1), true),
            "a publisher cannot be paused"
        );
        assert!(!r.set_paused(PeerId(42), true));
    }

    /// A VP8 viewer beside an H.264 one: each gets only its codec's frames, from its
    /// codec's keyframe on, and asks for keyframes on its codec's m-line only.
    #[test]
    fn each_codec_is_a_lane_of_its_own() {
        let mut r = live_camera();
        r.set_publisher_mid(PeerId(1), VideoCodec::Vp8, mid("1"));
        assert_eq!(
            r.publisher_codec(PeerId(1), mid("1")),
            Some(VideoCodec::Vp8)
        );
        assert_eq!(
            r.publisher_codec(PeerId(1), mid("0")),
            Some(VideoCodec::H264)
        );
        assert_eq!(r.publisher_codec(PeerId(1), mid("9")), None);
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        watch(&mut r, "cam", PeerId(3));
        r.set_viewer_codec(PeerId(3), VideoCodec::Vp8);
        assert_eq!(r.viewers_of("cam", VideoCodec::Vp8), 1);
        r.peer_connected(PeerId(3), None);
        let mut out = Vec::new();
        r.due_keyframe_requests(t0, &mut out);
        assert_eq!(
            out,
            vec![(PeerId(1), mid("1"))],
            "a VP8 keyframe is asked for"
        );
        let vp8 = |r: &mut Membership, kf| {
            let mut out = Vec::new();
            r.frame_targets(PeerId(1), VideoCodec::Vp8, kf, &mut out);
            out.into_iter().map(|(p, _)| p).collect::<Vec<_>>()
        };
        assert!(
            targets(&mut r, PeerId(1), true).is_empty(),
            "no H.264 viewer connected"
        );
        assert_eq!(vp8(&mut r, true), vec![PeerId(3)]);
        r.peer_connected(PeerId(2), None);
        r.due_keyframe_requests(t0 + IV, &mut out);
        assert_eq!(
            out,
            vec![(PeerId(1), mid("0"))],
            "the H.264 viewer asks on mid 0"
        );
        assert!(vp8(&mut r, true).contains(&PeerId(3)));
        assert!(!vp8(&mut r, true).contains(&PeerId(2)));
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
        // A broken VP8 stream asks for VP8 only.
        r.stream_broken(PeerId(1), VideoCodec::Vp8);
        r.due_keyframe_requests(t0 + IV * 3, &mut out);
        assert_eq!(out, vec![(PeerId(1), mid("1"))]);
    }

    #[test]
    fn cameras_are_independent() {
        let mut r = live_camera();
        r.set_publisher("other", PeerId(5));
        r.set_publisher_mid(PeerId(5), VideoCodec::H264, mid("0"));
        r.peer_connected(PeerId(5), None);
        watch(&mut r, "cam", PeerId(2));
        watch(&mut r, "other", PeerId(6));
        r.peer_connected(PeerId(2), None);
        r.peer_connected(PeerId(6), None);
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
        assert_eq!(targets(&mut r, PeerId(5), true), vec![PeerId(6)]);
    }

    #[test]
    fn counts_return_to_zero_when_everyone_leaves() {
        let mut r = live_camera();
        watch(&mut r, "cam", PeerId(2));
        watch(&mut r, "cam2", PeerId(3));
        assert_eq!(
            r.counts(),
            RouteCounts {
                publishers: 1,
                viewers: 2,
                tracks: 3
            }
        );
        for p in [1, 2, 3] {
            assert!(r.remove_peer(PeerId(p)).is_some());
        }
        assert_eq!(r.counts(), RouteCounts::default());
        assert!(r.cameras.is_empty());
        assert!(r.members.is_empty());
        assert_eq!(r.remove_peer(PeerId(2)), None);
    }
}
