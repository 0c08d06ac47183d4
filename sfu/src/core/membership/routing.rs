//! Media over the membership table: where each frame goes ([`Membership::frame_targets`]),
//! which publishers to ask for a keyframe ([`Membership::due_keyframe_requests`]), and the
//! media side of peers connecting, pausing and asking for keyframes.

use std::time::Instant;

use str0m::media::Mid;

use super::{Membership, Role};
use crate::core::feed::Feed;
use crate::PeerId;

impl Membership {
    /// The m-line the publisher's video arrives on.
    pub(crate) fn set_publisher_mid(&mut self, peer: PeerId, mid: Mid) {
        if let Some((cam, Role::Publisher)) = self.camera_of(peer) {
            if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                p.mid = Some(mid);
            }
        }
    }

    /// The peer's ICE and DTLS are up.
    pub(crate) fn peer_connected(&mut self, peer: PeerId) {
        let Some((cam, role)) = self.camera_of(peer) else {
            return;
        };
        match role {
            Role::Publisher => {
                if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                    p.connected = true;
                }
                // Viewers already waiting get their first picture from an immediate
                // request, not from the publisher's next periodic IDR.
                if cam
                    .viewers
                    .iter()
                    .any(|v| v.connected && v.waiting_keyframe)
                {
                    cam.gate.want();
                }
            }
            Role::Viewer => {
                if let Some(v) = cam.viewers.iter_mut().find(|v| v.peer == peer) {
                    v.connected = true;
                }
                self.restart_at_keyframe(peer);
            }
        }
    }

    /// A connected viewer gets nothing more until the next keyframe, asked for now: it is
    /// new, or it lost frames it cannot do without.
    pub(crate) fn restart_at_keyframe(&mut self, viewer: PeerId) {
        let Some((cam, Role::Viewer)) = self.camera_of(viewer) else {
            return;
        };
        if let Some(v) = cam.viewer_mut(viewer).filter(|v| v.connected) {
            v.waiting_keyframe = true;
            cam.gate.want();
        }
    }

    /// A viewer sent PLI/FIR, or the publisher's stream had a gap: the picture is broken
    /// until the next keyframe, so ask for one (coalesced with everyone else's).
    pub(crate) fn keyframe_wanted_by(&mut self, peer: PeerId) {
        if let Some((cam, _)) = self.camera_of(peer) {
            cam.gate.want();
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
        if v.paused && !paused {
            v.waiting_keyframe = true;
            if v.connected {
                cam.gate.want();
            }
        }
        v.paused = paused;
        true
    }

    /// Where a frame from `publisher` goes: pushes `(viewer, mid)` into `out` (cleared
    /// first; the caller reuses it so the hot path does not allocate). A keyframe releases
    /// waiting viewers and answers the camera's outstanding keyframe request.
    pub(crate) fn frame_targets(
        &mut self,
        publisher: PeerId,
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
            if !v.connected || v.paused {
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
            cam.gate.keyframe_arrived();
        }
    }

    /// The camera feed `publisher` currently feeds, if it is the camera's publisher.
    pub(crate) fn feed(&mut self, publisher: PeerId) -> Option<&mut Feed> {
        let (cam, role) = self.camera_of(publisher)?;
        let current = cam.publisher.as_ref().is_some_and(|p| p.peer == publisher);
        (role == Role::Publisher && current).then_some(&mut cam.feed)
    }

    /// The earliest time a keyframe request is due (only for publishers able to take one).
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.cameras
            .values()
            .filter(|c| c.publisher.as_ref().and_then(|p| p.ready()).is_some())
            .filter_map(|c| c.gate.next_deadline(now))
            .min()
    }

    /// Publishers to send a PLI to now, as `(publisher, receiving mid)`. Each is recorded
    /// as requested, so the next one waits out the interval.
    pub(crate) fn due_keyframe_requests(&mut self, now: Instant, out: &mut Vec<(PeerId, Mid)>) {
        out.clear();
        for cam in self.cameras.values_mut() {
            let Some((peer, mid)) = cam
                .publisher
                .as_ref()
                .and_then(|p| p.ready().map(|m| (p.peer, m)))
            else {
                continue;
            };
            if cam.gate.poll_request(now) {
                out.push((peer, mid));
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
        r.frame_targets(publisher, kf, &mut out);
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
        r.set_publisher_mid(PeerId(1), mid("0"));
        r.peer_connected(PeerId(1));
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
        r.peer_connected(PeerId(2));
        assert!(
            targets(&mut r, PeerId(1), false).is_empty(),
            "delta before keyframe"
        );
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
        assert_eq!(targets(&mut r, PeerId(1), false), vec![PeerId(2)]);
    }

    #[test]
    fn frames_from_a_peer_that_is_not_the_publisher_go_nowhere() {
        let mut r = live_camera();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2));
        assert!(targets(&mut r, PeerId(2), true).is_empty());
        assert!(targets(&mut r, PeerId(99), true).is_empty());
    }

    #[test]
    fn many_viewers_joining_cause_one_request_and_one_keyframe_releases_all() {
        let mut r = live_camera();
        let t0 = Instant::now();
        for i in 10..60 {
            watch(&mut r, "cam", PeerId(i));
            r.peer_connected(PeerId(i));
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
        r.peer_connected(PeerId(2));
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
        r.peer_connected(PeerId(2));
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
        r.peer_connected(PeerId(2));
        assert_eq!(r.next_deadline(t0), None);
        assert!(due(&mut r, t0).is_empty());
        r.set_publisher("cam", PeerId(1));
        r.set_publisher_mid(PeerId(1), mid("0"));
        assert!(due(&mut r, t0).is_empty(), "publisher not connected");
        r.peer_connected(PeerId(1));
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
        r.peer_connected(PeerId(2));
        assert_eq!(due(&mut r, t0), vec![PeerId(1)]);
        assert!(targets(&mut r, PeerId(1), false).is_empty());
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
    }

    #[test]
    fn viewers_survive_publisher_reconnect_and_wait_for_its_keyframe() {
        let mut r = live_camera();
        let t0 = Instant::now();
        watch(&mut r, "cam", PeerId(2));
        r.peer_connected(PeerId(2));
        due(&mut r, t0);
        targets(&mut r, PeerId(1), true);
        assert_eq!(r.remove_peer(PeerId(1)), Some(Role::Publisher));
        assert_eq!(r.counts().viewers, 1);
        r.set_publisher("cam", PeerId(3));
        r.set_publisher_mid(PeerId(3), mid("1"));
        r.peer_connected(PeerId(3));
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
        r.peer_connected(PeerId(2));
        targets(&mut r, PeerId(1), true);
        assert_eq!(r.set_publisher("cam", PeerId(3)), Some(PeerId(1)));
        assert_eq!(r.role(PeerId(1)), None);
        assert_eq!(r.remove_peer(PeerId(1)), None, "already forgotten");
        r.set_publisher_mid(PeerId(3), mid("0"));
        r.peer_connected(PeerId(3));
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
            r.peer_connected(PeerId(v));
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

    #[test]
    fn cameras_are_independent() {
        let mut r = live_camera();
        r.set_publisher("other", PeerId(5));
        r.set_publisher_mid(PeerId(5), mid("0"));
        r.peer_connected(PeerId(5));
        watch(&mut r, "cam", PeerId(2));
        watch(&mut r, "other", PeerId(6));
        r.peer_connected(PeerId(2));
        r.peer_connected(PeerId(6));
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
