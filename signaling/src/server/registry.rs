//! The camera registry: which cameras exist, which session publishes each, who watches.
//!
//! Plain state, no I/O: the WebSocket sessions call into it under one lock and act on what it
//! returns (replies, broadcasts). The one outside thing it reads is the time, through a
//! [`Clock`] tests can move.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use sightline_protocol::control::unix_millis;
use sightline_protocol::wire::{CameraInfo, CameraState, ErrorCode, SourceStatus, WireError};

/// A signaling session (one WebSocket connection).
pub type SessionId = u64;

#[derive(Debug, Clone)]
struct Camera {
    name: String,
    width: u32,
    height: u32,
    fps: u32,
    publisher: Option<SessionId>,
    /// The live publisher's token subject, when it may be taken over by the same subject.
    publisher_subject: Option<String>,
    viewers: BTreeSet<SessionId>,
    /// How many viewers the current publisher takes directly (P2P); 0: none.
    p2p_max: u32,
    /// The viewers (a subset of `viewers`) whose media comes straight from the publisher.
    direct: BTreeSet<SessionId>,
    /// The viewers (a subset of `viewers`) the SFU sends VP8: the publisher encodes VP8
    /// only while there are any.
    vp8: BTreeSet<SessionId>,
    /// What the current publisher last said about its source (`None` before it said
    /// anything, and while offline).
    source: Option<SourceStatus>,
    /// When its publisher registered or went away (ms since the epoch); while online the
    /// camera is listed as seen now.
    seen_ms: u64,
}

/// The wall clock in milliseconds since the Unix epoch; tests make their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub fn new(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now_ms))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(unix_millis)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({} ms)", self.now_ms())
    }
}

/// What a publisher announces when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub camera_id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// How many direct (P2P) viewers the publisher takes.
    pub p2p_max: u32,
    /// The publisher's token subject (tokens only). A registration with the same subject
    /// as the live publisher's takes the camera over at once: the same device reconnecting
    /// should not wait for its old session to time out.
    pub subject: Option<String>,
}

/// A successful registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub camera: CameraInfo,
    /// The session that held the camera until now (a same-subject takeover): it must end.
    pub replaced: Option<SessionId>,
}

/// What a camera's publisher is told in `demand`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub viewers: u32,
    /// Of them, those sent VP8.
    pub vp8_viewers: u32,
}

/// A camera taken out of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub camera_id: String,
    /// The session that was publishing it: it must be told, and end.
    pub publisher: Option<SessionId>,
}

#[derive(Debug, Default)]
pub struct Registry {
    cameras: BTreeMap<String, Camera>,
    clock: Clock,
}

impl Registry {
    pub fn with_clock(clock: Clock) -> Self {
        Registry {
            cameras: BTreeMap::new(),
            clock,
        }
    }

    /// Take `camera_id` out (`DELETE /api/cameras/{id}`), online or not; its viewers'
    /// subscriptions go with it. `None`: there was no such camera.
    pub fn remove(&mut self, camera_id: &str) -> Option<Removed> {
        let cam = self.cameras.remove(camera_id)?;
        Some(Removed {
            camera_id: camera_id.to_owned(),
            publisher: cam.publisher,
        })
    }

    /// Take out every camera that has been offline for `keep_ms` or longer.
    pub fn forget_offline(&mut self, keep_ms: u64) -> Vec<Removed> {
        let now = self.clock.now_ms();
        let stale: Vec<String> = self
            .cameras
            .iter()
            .filter(|(_, c)| c.publisher.is_none() && now.saturating_sub(c.seen_ms) >= keep_ms)
            .map(|(id, _)| id.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|id| self.remove(&id))
            .collect()
    }

    /// A publisher session takes a camera id. Refused while another publisher holds it,
    /// unless both carry the same subject (then the new one takes over); a returning camera
    /// keeps its viewers.
    pub fn register(
        &mut self,
        session: SessionId,
        reg: Registration,
    ) -> Result<Registered, WireError> {
        let entry = self
            .cameras
            .entry(reg.camera_id.clone())
            .or_insert_with(|| Camera {
                name: String::new(),
                width: 0,
                height: 0,
                fps: 0,
                publisher: None,
                publisher_subject: None,
                viewers: BTreeSet::new(),
                p2p_max: 0,
                direct: BTreeSet::new(),
                vp8: BTreeSet::new(),
                source: None,
                seen_ms: 0,
            });
        let mut replaced = None;
        if let Some(other) = entry.publisher.filter(|other| *other != session) {
            let same_subject = reg.subject.is_some() && reg.subject == entry.publisher_subject;
            if same_subject {
                replaced = Some(other);
            } else {
                return Err(WireError::new(
                    ErrorCode::CameraAlreadyLive,
                    format!("camera `{}` already has a live publisher", reg.camera_id),
                ));
            }
        }
        entry.name = if reg.name.is_empty() {
            reg.camera_id.clone()
        } else {
            reg.name
        };
        entry.width = reg.width;
        entry.height = reg.height;
        entry.fps = reg.fps;
        entry.publisher = Some(session);
        entry.publisher_subject = reg.subject;
        entry.p2p_max = reg.p2p_max;
        // Direct viewers were the old publisher's peers; they fall back and ask again.
        entry.direct.clear();
        // A new publisher's source is unknown until it reports.
        entry.source = None;
        entry.seen_ms = self.clock.now_ms();
        Ok(Registered {
            camera: info(&reg.camera_id, entry, entry.seen_ms),
            replaced,
        })
    }

    /// The publisher session is gone: the camera goes offline (its viewers stay subscribed).
    /// Returns the camera id if this session was its publisher.
    pub fn unregister(&mut self, session: SessionId, camera_id: &str) -> Option<String> {
        let cam = self.cameras.get_mut(camera_id)?;
        if cam.publisher != Some(session) {
            return None;
        }
        cam.publisher = None;
        cam.publisher_subject = None;
        cam.source = None;
        cam.direct.clear();
        cam.seen_ms = self.clock.now_ms();
        Some(camera_id.to_string())
    }

    /// The publisher of `camera_id` reports its source's state. Returns whether it changed
    /// (only changes are broadcast, so a publisher repeating itself costs viewers nothing).
    /// Refused unless `session` is that camera's current publisher.
    pub fn set_source_state(
        &mut self,
        session: SessionId,
        camera_id: &str,
        status: SourceStatus,
    ) -> Result<bool, WireError> {
        let cam = self
            .cameras
            .get_mut(camera_id)
            .filter(|c| c.publisher == Some(session))
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::WrongState,
                    format!("only the live publisher of `{camera_id}` reports its source state"),
                )
            })?;
        if cam.source.as_ref() == Some(&status) {
            return Ok(false);
        }
        cam.source = Some(status);
        Ok(true)
    }

    /// The picture size of `camera_id` as its stream says (a WHIP publisher announces
    /// none). The camera as it is now, if `session` publishes it and the size changed.
    pub fn set_picture_size(
        &mut self,
        session: SessionId,
        camera_id: &str,
        (width, height): (u32, u32),
    ) -> Option<CameraInfo> {
        let cam = self
            .cameras
            .get_mut(camera_id)
            .filter(|c| c.publisher == Some(session))?;
        if (cam.width, cam.height) == (width, height) {
            return None;
        }
        (cam.width, cam.height) = (width, height);
        Some(info(camera_id, cam, self.clock.now_ms()))
    }

    /// A viewer session watches a known camera (online or offline).
    pub fn subscribe(
        &mut self,
        session: SessionId,
        camera_id: &str,
    ) -> Result<CameraInfo, WireError> {
        let cam = self.cameras.get_mut(camera_id).ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownCamera,
                format!("no camera `{camera_id}` has ever registered here"),
            )
        })?;
        cam.viewers.insert(session);
        Ok(info(camera_id, cam, self.clock.now_ms()))
    }

    pub fn unsubscribe(&mut self, session: SessionId, camera_id: &str) {
        if let Some(cam) = self.cameras.get_mut(camera_id) {
            cam.viewers.remove(&session);
            cam.direct.remove(&session);
            cam.vp8.remove(&session);
        }
    }

    /// Whether the SFU sends this subscribed viewer VP8. Returns whether that changed.
    pub fn set_vp8(&mut self, session: SessionId, camera_id: &str, vp8: bool) -> bool {
        let Some(cam) = self
            .cameras
            .get_mut(camera_id)
            .filter(|c| c.viewers.contains(&session))
        else {
            return false;
        };
        if vp8 {
            cam.vp8.insert(session)
        } else {
            cam.vp8.remove(&session)
        }
    }

    /// What the camera's publisher should be told now.
    pub fn demand(&self, camera_id: &str) -> Demand {
        self.cameras
            .get(camera_id)
            .map_or(Demand::default(), |c| Demand {
                viewers: c.viewers.len() as u32,
                vp8_viewers: c.vp8.len() as u32,
            })
    }

    /// A subscribed viewer asks for media straight from the publisher. Granted while the
    /// camera is online, its publisher takes direct viewers and has a free slot; otherwise
    /// the reason, for the viewer (it watches through the SFU instead).
    pub fn grant_direct(&mut self, viewer: SessionId, camera_id: &str) -> Result<(), String> {
        let cam = self
            .cameras
            .get_mut(camera_id)
            .filter(|c| c.viewers.contains(&viewer))
            .ok_or_else(|| format!("not subscribed to `{camera_id}`"))?;
        if cam.publisher.is_none() {
            return Err(format!("camera `{camera_id}` is offline"));
        }
        if cam.direct.contains(&viewer) {
            return Ok(());
        }
        if cam.p2p_max == 0 {
            return Err(format!(
                "camera `{camera_id}` takes no direct viewers (its publisher runs with --p2p-max 0 or predates P2P)"
            ));
        }
        if cam.direct.len() as u32 >= cam.p2p_max {
            return Err(format!(
                "camera `{camera_id}` already has {} direct viewers, its most (--p2p-max)",
                cam.p2p_max
            ));
        }
        cam.direct.insert(viewer);
        Ok(())
    }

    /// The viewer's direct path ends (it left, moved to the SFU, or the publisher gave it
    /// up). Returns the publisher to tell, if the viewer had a direct slot.
    pub fn end_direct(&mut self, viewer: SessionId, camera_id: &str) -> Option<SessionId> {
        let cam = self.cameras.get_mut(camera_id)?;
        if cam.direct.remove(&viewer) {
            cam.publisher
        } else {
            None
        }
    }

    /// The publisher session that serves `viewer` directly on `camera_id`, if any.
    pub fn direct_publisher(&self, viewer: SessionId, camera_id: &str) -> Option<SessionId> {
        let cam = self.cameras.get(camera_id)?;
        cam.direct
            .contains(&viewer)
            .then_some(cam.publisher)
            .flatten()
    }

    /// Whether `publisher` publishes `camera_id` and `viewer` watches it directly: a
    /// publisher may only speak to its own direct viewers.
    pub fn serves_directly(
        &self,
        publisher: SessionId,
        camera_id: &str,
        viewer: SessionId,
    ) -> bool {
        self.direct_publisher(viewer, camera_id) == Some(publisher)
    }

    /// The session publishing `camera_id` now, if it is online.
    pub fn publisher(&self, camera_id: &str) -> Option<SessionId> {
        self.cameras.get(camera_id).and_then(|c| c.publisher)
    }

    pub fn get(&self, camera_id: &str) -> Option<CameraInfo> {
        let now = self.clock.now_ms();
        self.cameras.get(camera_id).map(|c| info(camera_id, c, now))
    }

    /// Every camera, online ones first, then by id.
    pub fn list(&self) -> Vec<CameraInfo> {
        let now = self.clock.now_ms();
        let mut all: Vec<CameraInfo> = self
            .cameras
            .iter()
            .map(|(id, c)| info(id, c, now))
            .collect();
        all.sort_by_key(|c| c.state != CameraState::Online);
        all
    }
}

/// What the list says about `cam` at `now_ms`.
fn info(id: &str, cam: &Camera, now_ms: u64) -> CameraInfo {
    CameraInfo {
        id: id.to_string(),
        name: cam.name.clone(),
        width: cam.width,
        height: cam.height,
        fps: cam.fps,
        state: if cam.publisher.is_some() {
            CameraState::Online
        } else {
            CameraState::Offline
        },
        viewers: cam.viewers.len() as u32,
        source_state: cam.source.clone(),
        last_seen: if cam.publisher.is_some() {
            now_ms
        } else {
            cam.seen_ms
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::wire::SourceState;

    fn reg(id: &str) -> Registration {
        Registration {
            camera_id: id.into(),
            name: format!("{id} name"),
            width: 640,
            height: 480,
            fps: 30,
            p2p_max: 0,
            subject: None,
        }
    }

    /// A registry on a clock the test moves, and the hand that moves it.
    fn on_clock(start_ms: u64) -> (Registry, Arc<std::sync::atomic::AtomicU64>) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let now = Arc::new(AtomicU64::new(start_ms));
        let hand = now.clone();
        let r = Registry::with_clock(Clock::new(move || hand.load(Ordering::Relaxed)));
        (r, now)
    }

    #[test]
    fn last_seen_is_now_while_online_and_the_leaving_time_after() {
        use std::sync::atomic::Ordering;
        let (mut r, now) = on_clock(1_000);
        r.register(1, reg("a")).unwrap();
        now.store(5_000, Ordering::Relaxed);
        assert_eq!(r.get("a").unwrap().last_seen, 5_000, "online: seen now");
        r.unregister(1, "a");
        now.store(9_000, Ordering::Relaxed);
        assert_eq!(
            r.get("a").unwrap().last_seen,
            5_000,
            "offline: when it left"
        );
        assert_eq!(r.list()[0].last_seen, 5_000);
    }

    #[test]
    fn offline_cameras_are_forgotten_after_the_ttl_and_online_ones_never() {
        use std::sync::atomic::Ordering;
        let (mut r, now) = on_clock(0);
        r.register(1, reg("gone")).unwrap();
        r.register(2, reg("live")).unwrap();
        r.subscribe(10, "gone").unwrap();
        now.store(1_000, Ordering::Relaxed);
        r.unregister(1, "gone");
        now.store(60_999, Ordering::Relaxed);
        assert!(r.forget_offline(60_000).is_empty(), "not yet");
        now.store(61_000, Ordering::Relaxed);
        let forgotten = r.forget_offline(60_000);
        assert_eq!(
            forgotten,
            vec![Removed {
                camera_id: "gone".into(),
                publisher: None
            }]
        );
        assert_eq!(r.get("gone"), None);
        assert!(r.subscribe(10, "gone").is_err(), "its viewers went with it");
        now.store(10_000_000, Ordering::Relaxed);
        assert!(r.forget_offline(60_000).is_empty(), "online cameras stay");
        assert!(r.get("live").is_some());
    }

    #[test]
    fn removal_names_the_publisher_to_tell() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        r.register(2, reg("b")).unwrap();
        r.unregister(2, "b");
        assert_eq!(
            r.remove("a"),
            Some(Removed {
                camera_id: "a".into(),
                publisher: Some(1)
            })
        );
        assert_eq!(r.remove("a"), None, "gone already");
        assert_eq!(
            r.remove("b").unwrap().publisher,
            None,
            "offline: nobody to tell"
        );
        assert!(r.list().is_empty());
        // The old publisher's session ending later changes nothing, and the id is free.
        assert_eq!(r.unregister(1, "a"), None);
        r.register(3, reg("a")).unwrap();
        assert_eq!(r.get("a").unwrap().state, CameraState::Online);
    }

    #[test]
    fn only_the_publisher_sets_the_picture_size_and_only_changes_count() {
        let mut r = Registry::default();
        let mut whip = reg("whip-cam");
        (whip.width, whip.height) = (0, 0);
        r.register(1, whip).unwrap();
        assert_eq!(
            r.set_picture_size(2, "whip-cam", (640, 480)),
            None,
            "not its publisher"
        );
        let cam = r.set_picture_size(1, "whip-cam", (640, 480)).unwrap();
        assert_eq!((cam.width, cam.height), (640, 480));
        assert_eq!(
            r.set_picture_size(1, "whip-cam", (640, 480)),
            None,
            "no change"
        );
        assert_eq!(r.get("whip-cam").unwrap().width, 640);
        assert_eq!(r.set_picture_size(1, "nobody", (1, 1)), None);
    }

    #[test]
    fn direct_slots_are_capped_and_freed() {
        let mut r = Registry::default();
        let p2p = |n| Registration {
            p2p_max: n,
            ..reg("a")
        };
        r.register(1, p2p(2)).unwrap();
        for v in [10, 11, 12] {
            r.subscribe(v, "a").unwrap();
        }
        assert_eq!(r.grant_direct(10, "a"), Ok(()));
        assert_eq!(
            r.grant_direct(10, "a"),
            Ok(()),
            "asking again is no new slot"
        );
        assert_eq!(r.grant_direct(11, "a"), Ok(()));
        let full = r.grant_direct(12, "a").unwrap_err();
        assert!(full.contains("--p2p-max"), "{full}");
        assert!(r.serves_directly(1, "a", 10));
        assert!(!r.serves_directly(2, "a", 10), "another session");
        assert!(!r.serves_directly(1, "a", 12));
        // Leaving frees a slot, and says whom to tell.
        assert_eq!(r.end_direct(10, "a"), Some(1));
        assert_eq!(r.end_direct(10, "a"), None);
        assert_eq!(r.grant_direct(12, "a"), Ok(()));
        r.unsubscribe(11, "a");
        assert_eq!(r.direct_publisher(11, "a"), None);
        // Not subscribed, or an unknown camera: refused.
        assert!(r.grant_direct(99, "a").is_err());
        assert!(r.grant_direct(10, "nope").is_err());
        // A publisher without P2P, and an offline camera, take nobody directly.
        r.register(2, reg("b")).unwrap();
        r.subscribe(10, "b").unwrap();
        assert!(r
            .grant_direct(10, "b")
            .unwrap_err()
            .contains("no direct viewers"));
        assert_eq!(r.unregister(1, "a"), Some("a".into()));
        assert_eq!(
            r.direct_publisher(12, "a"),
            None,
            "the slots went with the publisher"
        );
        assert!(r.grant_direct(12, "a").unwrap_err().contains("offline"));
    }

    #[test]
    fn one_publisher_per_camera() {
        let mut r = Registry::default();
        assert_eq!(
            r.register(1, reg("a")).unwrap().camera.state,
            CameraState::Online
        );
        let err = r.register(2, reg("a")).unwrap_err();
        assert_eq!(err.code, ErrorCode::CameraAlreadyLive);
        // Another camera is fine.
        r.register(2, reg("b")).unwrap();
        assert_eq!(r.list().len(), 2);
    }

    #[test]
    fn the_same_subject_takes_its_live_camera_over() {
        let mut r = Registry::default();
        let alice = |id| Registration {
            subject: Some("alice".into()),
            ..reg(id)
        };
        r.register(1, alice("a")).unwrap();
        r.subscribe(10, "a").unwrap();
        let again = r.register(2, alice("a")).unwrap();
        assert_eq!(again.replaced, Some(1));
        assert_eq!(again.camera.viewers, 1, "viewers stay");
        // The old session's goodbye no longer takes the camera offline.
        assert_eq!(r.unregister(1, "a"), None);
        assert_eq!(r.get("a").unwrap().state, CameraState::Online);
        // Another subject, or none, is refused.
        let bob = Registration {
            subject: Some("bob".into()),
            ..reg("a")
        };
        assert_eq!(
            r.register(3, bob).unwrap_err().code,
            ErrorCode::CameraAlreadyLive
        );
        assert_eq!(
            r.register(4, reg("a")).unwrap_err().code,
            ErrorCode::CameraAlreadyLive
        );
        // A subject-less holder cannot be taken over by anyone.
        r.register(5, reg("b")).unwrap();
        assert!(r.register(6, alice("b")).is_err());
    }

    #[test]
    fn viewers_survive_publisher_restart() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        r.subscribe(10, "a").unwrap();
        r.subscribe(11, "a").unwrap();
        assert_eq!(r.get("a").unwrap().viewers, 2);

        // Only the publisher that holds the camera can take it offline.
        assert_eq!(r.unregister(99, "a"), None);
        assert_eq!(r.unregister(1, "a"), Some("a".into()));
        let a = r.get("a").unwrap();
        assert_eq!((a.state, a.viewers), (CameraState::Offline, 2));

        // A new publisher session takes it back; the viewers are still there.
        let a = r.register(2, reg("a")).unwrap();
        assert_eq!(a.replaced, None);
        assert_eq!((a.camera.state, a.camera.viewers), (CameraState::Online, 2));
        r.unsubscribe(10, "a");
        assert_eq!(r.get("a").unwrap().viewers, 1);
    }

    #[test]
    fn unknown_camera_is_refused() {
        let mut r = Registry::default();
        assert_eq!(
            r.subscribe(1, "nope").unwrap_err().code,
            ErrorCode::UnknownCamera
        );
    }

    fn status(state: SourceState, error: Option<&str>) -> SourceStatus {
        SourceStatus {
            state,
            error: error.map(str::to_owned),
            source: "file:missing.mjpeg".into(),
            detail: None,
        }
    }

    fn live_with(detail: Option<&str>) -> SourceStatus {
        SourceStatus {
            detail: detail.map(str::to_owned),
            ..status(SourceState::Live, None)
        }
    }

    #[test]
    fn a_new_source_detail_alone_is_a_change() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        assert!(r.set_source_state(1, "a", live_with(None)).unwrap());
        // The RTSP source decides on its first SPS: live first, its path a moment later.
        let passthrough = live_with(Some("passthrough (Constrained Baseline 3.1, 1280x720)"));
        assert!(r.set_source_state(1, "a", passthrough.clone()).unwrap());
        assert!(!r.set_source_state(1, "a", passthrough.clone()).unwrap());
        assert_eq!(
            r.get("a").unwrap().source_state,
            Some(passthrough),
            "listed with its detail"
        );
        // ... and it may switch on its first B-slice.
        let reencoding = live_with(Some("re-encoding (Main 3.1, 1280x720; B-frames)"));
        assert!(r.set_source_state(1, "a", reencoding.clone()).unwrap());
        assert_eq!(r.subscribe(10, "a").unwrap().source_state, Some(reencoding));
        // Dropping the detail is a change too.
        assert!(r.set_source_state(1, "a", live_with(None)).unwrap());
        assert_eq!(r.get("a").unwrap().source_state.unwrap().detail, None);
    }

    #[test]
    fn source_state_is_kept_listed_and_deduplicated() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        assert_eq!(
            r.get("a").unwrap().source_state,
            None,
            "unknown until reported"
        );

        let lost = status(SourceState::Lost, Some("no such file"));
        assert!(r.set_source_state(1, "a", lost.clone()).unwrap());
        // The same report again is no change: nothing to broadcast.
        assert!(!r.set_source_state(1, "a", lost.clone()).unwrap());
        assert_eq!(r.get("a").unwrap().source_state, Some(lost.clone()));
        assert_eq!(r.list()[0].source_state, Some(lost));
        // A different error is a change.
        assert!(r
            .set_source_state(1, "a", status(SourceState::Lost, Some("timed out")))
            .unwrap());
        let live = status(SourceState::Live, None);
        assert!(r.set_source_state(1, "a", live.clone()).unwrap());
        // Viewers learn it when they subscribe.
        assert_eq!(r.subscribe(10, "a").unwrap().source_state, Some(live));
    }

    #[test]
    fn only_the_cameras_publisher_reports_its_source() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        r.register(2, reg("b")).unwrap();
        let live = status(SourceState::Live, None);
        for (session, cam) in [(2, "a"), (99, "a"), (1, "nope")] {
            let err = r.set_source_state(session, cam, live.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::WrongState, "{session} {cam}");
        }
        assert_eq!(r.get("a").unwrap().source_state, None);
    }

    #[test]
    fn source_state_goes_with_its_publisher() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        r.set_source_state(1, "a", status(SourceState::Live, None))
            .unwrap();
        r.unregister(1, "a");
        assert_eq!(r.get("a").unwrap().source_state, None, "offline: no source");
        // The old session cannot report for the camera any more.
        assert!(r
            .set_source_state(1, "a", status(SourceState::Live, None))
            .is_err());
        // A new publisher starts unknown, even if the camera had a state before.
        r.register(2, reg("a")).unwrap();
        r.set_source_state(2, "a", status(SourceState::Connecting, None))
            .unwrap();
        r.register(2, reg("a")).unwrap();
        assert_eq!(r.get("a").unwrap().source_state, None);
    }

    #[test]
    fn online_cameras_list_first() {
        let mut r = Registry::default();
        r.register(1, reg("a")).unwrap();
        r.register(2, reg("b")).unwrap();
        r.unregister(1, "a");
        let ids: Vec<_> = r.list().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["b", "a"]);
    }
}
