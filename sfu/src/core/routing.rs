//! Who feeds whom: camera id → its publisher peer and its viewers. Plain state, no I/O.
//!
//! The core asks this table where each frame goes ([`Routing::frame_targets`]) and
//! which publishers to ask for a keyframe ([`Routing::due_keyframe_requests`]); it tells it
//! about peers coming, connecting and going. A viewer is bound to a camera id, not to a
//! publisher, so a camera whose publisher reconnects keeps its viewers: the viewer's
//! outgoing track (its own `mid`, SSRC and sequence numbers) does not change, only the
//! frames written into it do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::Mid;

use super::feed::Feed;
use super::keyframe::KeyframeGate;
use crate::PeerId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publisher,
    Viewer,
}

#[derive(Debug)]
struct PeerRoute {
    camera: String,
    role: Role,
}

#[derive(Debug)]
struct PublisherRoute {
    peer: PeerId,
    /// The m-line the publisher's video arrives on (where PLIs go).
    mid: Option<Mid>,
    connected: bool,
}

impl PublisherRoute {
    fn ready(&self) -> Option<Mid> {
        self.mid.filter(|_| self.connected)
    }
}

#[derive(Debug)]
struct ViewerRoute {
    peer: PeerId,
    /// The viewer's m-line we send on.
    mid: Mid,
    /// Media written before ICE+DTLS are up is dropped by str0m, so wait for it.
    connected: bool,
    /// No delta frame may go out until the viewer has had a keyframe from the current
    /// publisher: a decoder fed deltas without their reference shows garbage.
    waiting_keyframe: bool,
    /// The viewer asked not to get video for now (its control channel's `pause`).
    paused: bool,
}

#[derive(Debug)]
struct Camera {
    publisher: Option<PublisherRoute>,
    viewers: Vec<ViewerRoute>,
    gate: KeyframeGate,
    /// The frames going out to the viewers, packetised once.
    feed: Feed,
}

impl Camera {
    fn is_empty(&self) -> bool {
        self.publisher.is_none() && self.viewers.is_empty()
    }

    /// The feed changed: every viewer must restart from a keyframe of the new publisher.
    fn reset_viewers(&mut self) {
        for v in &mut self.viewers {
            v.waiting_keyframe = true;
        }
        self.gate.publisher_changed();
        self.feed.publisher_changed();
        if self.viewers.iter().any(|v| v.connected) {
            self.gate.want();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Routing {
    interval: Duration,
    cameras: HashMap<String, Camera>,
    peers: HashMap<PeerId, PeerRoute>,
}

/// Counts for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RouteCounts {
    pub publishers: usize,
    pub viewers: usize,
    pub tracks: usize,
}

impl Routing {
    pub(crate) fn new(keyframe_request_interval: Duration) -> Self {
        Routing {
            interval: keyframe_request_interval,
            cameras: HashMap::new(),
            peers: HashMap::new(),
        }
    }

    fn camera_mut(&mut self, camera: &str) -> &mut Camera {
        if !self.cameras.contains_key(camera) {
            self.cameras.insert(
                camera.to_owned(),
                Camera {
                    publisher: None,
                    viewers: Vec::new(),
                    gate: KeyframeGate::new(self.interval),
                    feed: Feed::new(),
                },
            );
        }
        self.cameras.get_mut(camera).expect("inserted above")
    }

    fn camera_of(&mut self, peer: PeerId) -> Option<(&mut Camera, Role)> {
        let route = self.peers.get(&peer)?;
        let role = route.role;
        Some((self.cameras.get_mut(&route.camera)?, role))
    }

    pub(crate) fn role(&self, peer: PeerId) -> Option<Role> {
        self.peers.get(&peer).map(|r| r.role)
    }

    /// Make `peer` the camera's publisher. Returns the publisher it replaces (already
    /// forgotten here; the caller closes its connection).
    pub(crate) fn set_publisher(&mut self, camera: &str, peer: PeerId) -> Option<PeerId> {
        let cam = self.camera_mut(camera);
        let old = cam.publisher.replace(PublisherRoute {
            peer,
            mid: None,
            connected: false,
        });
        cam.reset_viewers();
        let old = old.map(|p| p.peer);
        if let Some(old) = old {
            self.peers.remove(&old);
        }
        self.peers.insert(
            peer,
            PeerRoute {
                camera: camera.to_owned(),
                role: Role::Publisher,
            },
        );
        old
    }

    /// The m-line the publisher's video arrives on.
    pub(crate) fn set_publisher_mid(&mut self, peer: PeerId, mid: Mid) {
        if let Some((cam, Role::Publisher)) = self.camera_of(peer) {
            if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                p.mid = Some(mid);
            }
        }
    }

    pub(crate) fn add_viewer(&mut self, camera: &str, peer: PeerId, mid: Mid) {
        self.camera_mut(camera).viewers.push(ViewerRoute {
            peer,
            mid,
            connected: false,
            waiting_keyframe: true,
            paused: false,
        });
        self.peers.insert(
            peer,
            PeerRoute {
                camera: camera.to_owned(),
                role: Role::Viewer,
            },
        );
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
                    v.waiting_keyframe = true;
                    cam.gate.want();
                }
            }
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

    /// Forget a peer. Returns its role if it was known.
    pub(crate) fn remove_peer(&mut self, peer: PeerId) -> Option<Role> {
        let route = self.peers.remove(&peer)?;
        let Some(cam) = self.cameras.get_mut(&route.camera) else {
            return Some(route.role);
        };
        match route.role {
            Role::Publisher => {
                if cam.publisher.as_ref().is_some_and(|p| p.peer == peer) {
                    cam.publisher = None;
                    cam.reset_viewers();
                }
            }
            Role::Viewer => cam.viewers.retain(|v| v.peer != peer),
        }
        if cam.is_empty() {
            self.cameras.remove(&route.camera);
        }
        Some(route.role)
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

    pub(crate) fn counts(&self) -> RouteCounts {
        let mut c = RouteCounts::default();
        for cam in self.cameras.values() {
            if let Some(p) = &cam.publisher {
                c.publishers += 1;
                c.tracks += usize::from(p.mid.is_some());
            }
            c.viewers += cam.viewers.len();
            c.tracks += cam.viewers.len();
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IV: Duration = Duration::from_millis(250);

    fn mid(s: &str) -> Mid {
        Mid::from(s)
    }

    fn targets(r: &mut Routing, publisher: PeerId, kf: bool) -> Vec<PeerId> {
        let mut out = Vec::new();
        r.frame_targets(publisher, kf, &mut out);
        out.into_iter().map(|(p, _)| p).collect()
    }

    fn due(r: &mut Routing, now: Instant) -> Vec<PeerId> {
        let mut out = Vec::new();
        r.due_keyframe_requests(now, &mut out);
        out.into_iter().map(|(p, _)| p).collect()
    }

    /// Camera "cam" with a connected publisher 1 (mid "0").
    fn live_camera() -> Routing {
        let mut r = Routing::new(IV);
        assert_eq!(r.set_publisher("cam", PeerId(1)), None);
        r.set_publisher_mid(PeerId(1), mid("0"));
        r.peer_connected(PeerId(1));
        r
    }

    #[test]
    fn viewer_gets_nothing_until_connected_then_only_from_a_keyframe() {
        let mut r = live_camera();
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
        r.peer_connected(PeerId(2));
        assert!(targets(&mut r, PeerId(2), true).is_empty());
        assert!(targets(&mut r, PeerId(99), true).is_empty());
    }

    #[test]
    fn many_viewers_joining_cause_one_request_and_one_keyframe_releases_all() {
        let mut r = live_camera();
        let t0 = Instant::now();
        for i in 10..60 {
            r.add_viewer("cam", PeerId(i), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        let mut r = Routing::new(IV);
        let t0 = Instant::now();
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
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
            r.add_viewer("cam", PeerId(v), mid("v"));
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
        r.add_viewer("cam", PeerId(2), mid("v"));
        r.add_viewer("other", PeerId(6), mid("v"));
        r.peer_connected(PeerId(2));
        r.peer_connected(PeerId(6));
        assert_eq!(targets(&mut r, PeerId(1), true), vec![PeerId(2)]);
        assert_eq!(targets(&mut r, PeerId(5), true), vec![PeerId(6)]);
    }

    #[test]
    fn counts_return_to_zero_when_everyone_leaves() {
        let mut r = live_camera();
        r.add_viewer("cam", PeerId(2), mid("v"));
        r.add_viewer("cam2", PeerId(3), mid("v"));
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
        assert!(r.peers.is_empty());
        assert_eq!(r.remove_peer(PeerId(2)), None);
    }
}
