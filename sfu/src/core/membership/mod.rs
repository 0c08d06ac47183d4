//! One membership table for media and control: camera id → its publisher and its viewers,
//! and each peer → its camera and role. Plain state, no I/O.
//!
//! Adding or removing a peer updates this one place; what each side keeps per camera and
//! per peer lives beside the membership it belongs to. Media (`routing`) reads it to fan out
//! frames and to time keyframe requests; control (`control_relay`) reads it to relay data
//! channel messages and API callers' commands (those are not members: each waits on a
//! ticket, kept by the relay). A viewer is bound to a camera id, not to a publisher, so a
//! camera whose publisher reconnects keeps its viewers: the viewer's outgoing track (its own
//! `mid`, SSRC and sequence numbers) does not change, only the frames written into it do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Mid;

use super::feed::Feed;
use super::keyframe::KeyframeGate;
use crate::{PeerId, VideoCodec, ViewerAccess};
use sightline_protocol::control::{RateLimit, TokenBucket};

pub(super) mod control_relay;
mod control_tally;
mod routing;

use control_relay::ApiCallers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publisher,
    Viewer,
}

/// Where a peer belongs.
#[derive(Debug)]
struct Member {
    camera: String,
    role: Role,
}

#[derive(Debug)]
struct Publisher {
    peer: PeerId,
    /// The m-line each codec's video arrives on (where its PLIs go), by
    /// [`VideoCodec::index`]. A publisher without VP8 has no VP8 m-line.
    mids: [Option<Mid>; 2],
    connected: bool,
    /// Its `control` data channel is open.
    control_open: bool,
    /// Its offer had a data channel: it may open `control` (a WHIP client's has none).
    controllable: bool,
}

impl Publisher {
    fn ready(&self, codec: VideoCodec) -> Option<Mid> {
        self.mids[codec.index()].filter(|_| self.connected)
    }
}

#[derive(Debug)]
struct Viewer {
    peer: PeerId,
    /// The viewer's m-line we send on.
    mid: Mid,
    /// What it is sent: one of the publisher's codecs.
    codec: VideoCodec,
    /// Media written before ICE+DTLS are up is dropped by str0m, so wait for it.
    connected: bool,
    /// No delta frame may go out until the viewer has had a keyframe from the current
    /// publisher: a decoder fed deltas without their reference shows garbage.
    waiting_keyframe: bool,
    /// The viewer asked not to get video for now (its control channel's `pause`).
    paused: bool,
    /// What it may do on its control channel, and its rate limit there.
    access: ViewerAccess,
    bucket: TokenBucket,
    /// Its `control` data channel is open.
    control_open: bool,
}

/// One codec's stream of a camera: its viewers' keyframe needs and its outgoing frames.
#[derive(Debug)]
struct Lane {
    gate: KeyframeGate,
    /// The frames going out to the lane's viewers, packetised once.
    feed: Feed,
}

#[derive(Debug)]
struct Camera {
    publisher: Option<Publisher>,
    viewers: Vec<Viewer>,
    /// By [`VideoCodec::index`]. Viewers of one codec wait for that codec's keyframes only.
    lanes: [Lane; 2],
    /// The publisher's last `capabilities` and `state` broadcasts, for viewers who join later.
    capabilities: Option<Arc<str>>,
    state: Option<Arc<str>>,
}

impl Camera {
    fn is_empty(&self) -> bool {
        self.publisher.is_none() && self.viewers.is_empty()
    }

    /// The feed changed: every viewer must restart from a keyframe of the new publisher,
    /// and the old publisher's cached broadcasts go with it (the new one announces its own).
    fn publisher_changed(&mut self) {
        for v in &mut self.viewers {
            v.waiting_keyframe = true;
        }
        for (lane, codec) in self.lanes.iter_mut().zip(VideoCodec::ALL) {
            lane.gate.publisher_changed();
            lane.feed.publisher_changed();
            if self.viewers.iter().any(|v| v.connected && v.codec == codec) {
                lane.gate.want();
            }
        }
        self.capabilities = None;
        self.state = None;
    }

    /// Ask for a keyframe of `codec`.
    fn want_keyframe(&mut self, codec: VideoCodec) {
        self.lanes[codec.index()].gate.want();
    }

    fn viewer_mut(&mut self, peer: PeerId) -> Option<&mut Viewer> {
        self.viewers.iter_mut().find(|v| v.peer == peer)
    }
}

#[derive(Debug)]
pub(crate) struct Membership {
    keyframe_interval: Duration,
    limit: RateLimit,
    cameras: HashMap<String, Camera>,
    members: HashMap<PeerId, Member>,
    /// Control commands from outside WebRTC, waiting for the publisher's answer.
    api: ApiCallers,
    /// Control commands by type and result.
    tally: control_tally::ControlTally,
}

/// Counts for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RouteCounts {
    pub publishers: usize,
    pub viewers: usize,
    pub tracks: usize,
}

impl Membership {
    pub(crate) fn new(keyframe_request_interval: Duration, control_rate_limit: RateLimit) -> Self {
        Membership {
            keyframe_interval: keyframe_request_interval,
            limit: control_rate_limit,
            cameras: HashMap::new(),
            members: HashMap::new(),
            api: ApiCallers::default(),
            tally: control_tally::ControlTally::default(),
        }
    }

    fn camera_mut(&mut self, camera: &str) -> &mut Camera {
        if !self.cameras.contains_key(camera) {
            self.cameras.insert(
                camera.to_owned(),
                Camera {
                    publisher: None,
                    viewers: Vec::new(),
                    lanes: VideoCodec::ALL.map(|codec| Lane {
                        gate: KeyframeGate::new(self.keyframe_interval),
                        feed: Feed::new(codec),
                    }),
                    capabilities: None,
                    state: None,
                },
            );
        }
        self.cameras.get_mut(camera).expect("inserted above")
    }

    fn camera_of(&mut self, peer: PeerId) -> Option<(&mut Camera, Role)> {
        let member = self.members.get(&peer)?;
        let role = member.role;
        Some((self.cameras.get_mut(&member.camera)?, role))
    }

    /// The camera `peer` belongs to.
    pub(crate) fn camera_id(&self, peer: PeerId) -> Option<&str> {
        self.members.get(&peer).map(|m| m.camera.as_str())
    }

    /// Each camera with viewers now, and how many.
    pub(crate) fn viewer_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.cameras
            .iter()
            .map(|(id, cam)| (id.as_str(), cam.viewers.len()))
    }

    pub(crate) fn role(&self, peer: PeerId) -> Option<Role> {
        self.members.get(&peer).map(|m| m.role)
    }

    /// Make `peer` the camera's publisher. Returns the publisher it replaces (already
    /// forgotten here; the caller closes its connection).
    pub(crate) fn set_publisher(&mut self, camera: &str, peer: PeerId) -> Option<PeerId> {
        let cam = self.camera_mut(camera);
        let old = cam.publisher.replace(Publisher {
            peer,
            mids: [None; 2],
            connected: false,
            control_open: false,
            controllable: true,
        });
        cam.publisher_changed();
        let old = old.map(|p| p.peer);
        if let Some(old) = old {
            self.members.remove(&old);
        }
        self.members.insert(
            peer,
            Member {
                camera: camera.to_owned(),
                role: Role::Publisher,
            },
        );
        old
    }

    /// The publisher's offer had no data channel (WHIP): commands for its camera are
    /// answered by the relay (`unsupported`, or a keyframe request it carries out).
    pub(crate) fn publisher_without_control(&mut self, peer: PeerId) {
        if let Some((cam, Role::Publisher)) = self.camera_of(peer) {
            if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                p.controllable = false;
            }
        }
    }

    /// Ask the camera's publisher for an H.264 keyframe (coalesced like viewers' requests).
    pub(crate) fn camera_wants_keyframe(&mut self, camera: &str) {
        if let Some(cam) = self.cameras.get_mut(camera) {
            cam.want_keyframe(VideoCodec::H264);
        }
    }

    /// A viewer of `camera` that we send video to on `mid`, with what it may do on its
    /// control channel.
    pub(crate) fn add_viewer(
        &mut self,
        camera: &str,
        peer: PeerId,
        mid: Mid,
        access: ViewerAccess,
        now: Instant,
    ) {
        let bucket = TokenBucket::new(self.limit, now);
        self.camera_mut(camera).viewers.push(Viewer {
            peer,
            mid,
            codec: VideoCodec::H264,
            connected: false,
            waiting_keyframe: true,
            paused: false,
            access,
            bucket,
            control_open: false,
        });
        self.members.insert(
            peer,
            Member {
                camera: camera.to_owned(),
                role: Role::Viewer,
            },
        );
    }

    /// Forget a peer, for media and control alike. Returns its role if it was known.
    pub(crate) fn remove_peer(&mut self, peer: PeerId) -> Option<Role> {
        let member = self.members.remove(&peer)?;
        let Some(cam) = self.cameras.get_mut(&member.camera) else {
            return Some(member.role);
        };
        match member.role {
            Role::Publisher => {
                if cam.publisher.as_ref().is_some_and(|p| p.peer == peer) {
                    cam.publisher = None;
                    cam.publisher_changed();
                }
            }
            Role::Viewer => cam.viewers.retain(|v| v.peer != peer),
        }
        if cam.is_empty() {
            self.cameras.remove(&member.camera);
        }
        Some(member.role)
    }

    /// Control commands by type and result so far.
    pub(crate) fn control_counts(&self) -> Vec<crate::ControlCount> {
        self.tally.counts()
    }

    pub(crate) fn counts(&self) -> RouteCounts {
        let mut c = RouteCounts::default();
        for cam in self.cameras.values() {
            if let Some(p) = &cam.publisher {
                c.publishers += 1;
                c.tracks += p.mids.iter().flatten().count();
            }
            c.viewers += cam.viewers.len();
            c.tracks += cam.viewers.len();
        }
        c
    }
}
