//! Camera control over the membership table: who may send what on `control` data
//! channels, where each message goes, what new viewers are told at once. Plain state, no
//! I/O.
//!
//! The core tells the table about `control` channels opening and closing and hands it every
//! message; it answers with [`Outgoing`] actions (texts to write to channels, pause/resume
//! of a viewer's media) that the core carries out.
//!
//! A command may also come from outside WebRTC (`SfuHandle::control`, for a REST door):
//! [`Membership::api_command`] takes it with a ticket, a `PeerId` no peer has, and sends
//! it down the viewers' path (rate limit per caller name, envelope, permission, relay to
//! the publisher tagged `from` the ticket). Pause and resume are refused: an API caller has
//! no video. Every answer (the relay's refusal, or the publisher's reply `to` the ticket)
//! is an [`Outgoing::Send`] to the ticket, which the core hands back to the caller instead
//! of writing it to a channel, and ends the ticket; broadcasts never go to tickets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_protocol::control::relay::{
    admit, ok_text, refusal_text, welcome_text, Admission, Sender,
};
use sightline_protocol::control::{
    CommandType, ControlError, ControlErrorCode, RateLimit, Refusal, TokenBucket,
};

use super::control_tally::{command_of, refusal_code, Tallied};
use super::{Membership, Role};
use crate::core::control_wire::{route_publisher_message, CacheSlot, PublisherRoute};
use crate::{PeerId, ViewerAccess};

/// Something the core must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Write this text on the peer's control channel. Broadcasts share one `Arc`.
    Send { to: PeerId, text: Arc<str> },
    /// Stop forwarding media to this viewer.
    Pause(PeerId),
    /// Forward media to this viewer again (from a keyframe).
    Resume(PeerId),
    /// Ask this camera's publisher for a keyframe (its publisher has no control channel).
    Keyframe(String),
}

/// Who a command came from, where the two kinds of sender differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A viewer, on its `control` channel: it may pause and resume its own video.
    Viewer,
    /// An API caller waiting on a ticket: it has no video to pause.
    Api,
}

/// The sender of one command: its id (a viewer's, or an API caller's ticket), the camera it
/// speaks to and what it may do there.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    id: PeerId,
    camera: &'a str,
    origin: Origin,
    access: ViewerAccess,
}

/// API callers (see [`Membership::api_command`]): the tickets waiting for an answer and
/// each caller's rate limit.
#[derive(Debug, Default)]
pub(crate) struct ApiCallers {
    /// Ticket → the camera it asked. A publisher may answer only its own camera's tickets.
    tickets: HashMap<PeerId, String>,
    /// Rate limits by the caller's name (a token's subject, a client's address).
    buckets: HashMap<String, TokenBucket>,
}

/// Beyond this many API callers' buckets, the full ones are dropped when a new caller
/// comes. A full bucket is what a new one would be, so nobody gains or loses a token; the
/// rest are callers heard from within the last `burst / per_second` seconds.
const API_BUCKETS: usize = 1024;

impl ApiCallers {
    fn bucket(&mut self, caller: &str, limit: RateLimit, now: Instant) -> &mut TokenBucket {
        if !self.buckets.contains_key(caller) {
            if self.buckets.len() >= API_BUCKETS {
                self.buckets.retain(|_, b| !b.is_full(now));
            }
            self.buckets
                .insert(caller.to_owned(), TokenBucket::new(limit, now));
        }
        self.buckets.get_mut(caller).expect("inserted above")
    }
}

/// Now, twice: for rate limits and for the replies' timestamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) at: Instant,
    pub(crate) unix_ms: u64,
}

impl Clock {
    #[cfg(test)]
    pub(crate) fn now() -> Self {
        Clock {
            at: Instant::now(),
            unix_ms: sightline_protocol::control::unix_millis(),
        }
    }
}

impl Membership {
    /// The peer's `control` channel opened. A viewer is welcomed and gets the camera's
    /// last capabilities and state at once.
    pub(crate) fn channel_opened(&mut self, peer: PeerId, out: &mut Vec<Outgoing>) {
        let limit = self.limit;
        let Some((cam, role)) = self.camera_of(peer) else {
            return;
        };
        if role == Role::Publisher {
            if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                p.control_open = true;
            }
            return;
        }
        let Some(v) = cam.viewer_mut(peer) else {
            return;
        };
        v.control_open = true;
        let may_control = v.access == ViewerAccess::Control;
        let camera = &self.members[&peer].camera;
        let text = welcome_text(&peer.to_string(), camera, may_control, limit);
        out.push(Outgoing::Send {
            to: peer,
            text: text.into(),
        });
        if let Some(cam) = self.cameras.get(camera) {
            for cached in [&cam.capabilities, &cam.state].into_iter().flatten() {
                out.push(Outgoing::Send {
                    to: peer,
                    text: cached.clone(),
                });
            }
        }
    }

    pub(crate) fn channel_closed(&mut self, peer: PeerId) {
        match self.camera_of(peer) {
            Some((cam, Role::Publisher)) => {
                if let Some(p) = cam.publisher.as_mut().filter(|p| p.peer == peer) {
                    p.control_open = false;
                }
            }
            Some((cam, Role::Viewer)) => {
                if let Some(v) = cam.viewer_mut(peer) {
                    v.control_open = false;
                }
            }
            None => {}
        }
    }

    /// A message on the peer's `control` channel.
    pub(crate) fn on_message(
        &mut self,
        peer: PeerId,
        data: &[u8],
        binary: bool,
        clock: Clock,
        out: &mut Vec<Outgoing>,
    ) {
        match self.role(peer) {
            Some(Role::Publisher) => self.publisher_message(peer, data, binary, out),
            Some(Role::Viewer) => self.viewer_message(peer, data, binary, clock, out),
            None => {}
        }
    }

    fn viewer_message(
        &mut self,
        peer: PeerId,
        data: &[u8],
        binary: bool,
        clock: Clock,
        out: &mut Vec<Outgoing>,
    ) {
        let Some((cam, Role::Viewer)) = self.camera_of(peer) else {
            return;
        };
        let Some(viewer) = cam.viewer_mut(peer) else {
            return;
        };
        let access = viewer.access;
        let taken = viewer.bucket.take(clock.at);
        let from = Caller {
            id: peer,
            camera: &self.members[&peer].camera,
            origin: Origin::Viewer,
            access,
        };
        let tallied = self.command(from, taken, data, binary, clock, out);
        self.tally.record(tallied, clock.at);
    }

    /// One command from an API caller, waiting on `ticket` (an id no peer has) for the
    /// answer: the same checks and relay as a viewer's, charged to `caller`'s own bucket.
    /// Every answer comes as an [`Outgoing::Send`] to the ticket, which [`Self::end_ticket`]
    /// then closes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn api_command(
        &mut self,
        ticket: PeerId,
        camera: &str,
        access: ViewerAccess,
        caller: &str,
        data: &[u8],
        clock: Clock,
        out: &mut Vec<Outgoing>,
    ) {
        self.api.tickets.insert(ticket, camera.to_owned());
        let taken = self.api.bucket(caller, self.limit, clock.at).take(clock.at);
        let from = Caller {
            id: ticket,
            camera,
            origin: Origin::Api,
            access,
        };
        let tallied = self.command(from, taken, data, false, clock, out);
        self.tally.record(tallied, clock.at);
    }

    /// Forget an API caller's ticket (answered, or its caller gave up). True if it was
    /// still waiting.
    pub(crate) fn end_ticket(&mut self, ticket: PeerId) -> bool {
        self.api.tickets.remove(&ticket).is_some()
    }

    /// The one path of every command, once its sender's bucket was charged (`taken`): the
    /// relay's rules decide; a command for the camera goes to its publisher. Returns what
    /// the tally counts.
    fn command(
        &self,
        from: Caller<'_>,
        taken: Result<(), Duration>,
        data: &[u8],
        binary: bool,
        clock: Clock,
        out: &mut Vec<Outgoing>,
    ) -> Tallied {
        let id = from.id.to_string();
        let sender = Sender {
            id: &id,
            may_control: from.access == ViewerAccess::Control,
            has_video: from.origin == Origin::Viewer,
        };
        let send = |text: String| Outgoing::Send {
            to: from.id,
            text: text.into(),
        };
        match admit(sender, taken, self.limit, data, binary, clock.unix_ms) {
            Admission::Refuse(text) => {
                let result = refusal_code(&text);
                out.push(send(text));
                Tallied::Decided {
                    command: command_of(data),
                    result,
                }
            }
            Admission::Pause { pause, reply } => {
                out.push(if pause {
                    Outgoing::Pause(from.id)
                } else {
                    Outgoing::Resume(from.id)
                });
                out.push(send(reply));
                Tallied::Decided {
                    command: Some(if pause {
                        CommandType::Pause
                    } else {
                        CommandType::Resume
                    }),
                    result: "ok",
                }
            }
            Admission::Relay {
                text,
                request_id,
                command,
            } => {
                let publisher = self
                    .cameras
                    .get(from.camera)
                    .and_then(|c| c.publisher.as_ref());
                let refuse = |code: ControlErrorCode, message: String| {
                    let refusal = Refusal {
                        request_id: Some(request_id.clone()),
                        from: None,
                        error: ControlError::new(code, message),
                    };
                    send(refusal_text(refusal, None, clock.unix_ms))
                };
                let decided = |result| Tallied::Decided {
                    command: Some(command),
                    result,
                };
                match publisher {
                    Some(p) if p.control_open => {
                        out.push(Outgoing::Send {
                            to: p.peer,
                            text: text.into(),
                        });
                        Tallied::Relayed {
                            from: from.id,
                            request_id,
                            command,
                        }
                    }
                    // A WHIP client: only what the SFU can do itself.
                    Some(p) if !p.controllable && command == CommandType::RequestKeyframe => {
                        out.push(Outgoing::Keyframe(from.camera.to_owned()));
                        let message = "keyframe requested from the camera (PLI)";
                        out.push(send(ok_text(&request_id, message, clock.unix_ms)));
                        decided("ok")
                    }
                    Some(p) if !p.controllable => {
                        out.push(refuse(
                            ControlErrorCode::Unsupported,
                            format!(
                                "camera `{}` is published over WHIP, without a control channel: \
                                 only pause, resume and request_keyframe work",
                                from.camera
                            ),
                        ));
                        decided(ControlErrorCode::Unsupported.as_str())
                    }
                    _ => {
                        out.push(refuse(
                            ControlErrorCode::Unavailable,
                            format!(
                                "camera `{}` has no publisher with an open control channel",
                                from.camera
                            ),
                        ));
                        decided(ControlErrorCode::Unavailable.as_str())
                    }
                }
            }
        }
    }

    fn publisher_message(
        &mut self,
        peer: PeerId,
        data: &[u8],
        binary: bool,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(camera) = self
            .members
            .get(&peer)
            .filter(|m| m.role == Role::Publisher)
            .map(|m| m.camera.clone())
        else {
            return;
        };
        let Some(cam) = self.cameras.get_mut(&camera) else {
            return;
        };
        if cam.publisher.as_ref().is_none_or(|p| p.peer != peer) {
            return;
        }
        let route = match route_publisher_message(data, binary) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(publisher = %peer, %camera, "control message from the publisher dropped: {e}");
                return;
            }
        };
        // Checked as UTF-8 by the envelope's JSON parse.
        let text: Arc<str> = String::from_utf8_lossy(data).into();
        match route {
            PublisherRoute::To(target) => {
                let open_viewer = cam
                    .viewers
                    .iter()
                    .any(|v| v.peer == target && v.control_open);
                let waiting_caller = self.api.tickets.get(&target) == Some(&camera);
                self.tally.answered(target, data);
                if open_viewer || waiting_caller {
                    out.push(Outgoing::Send { to: target, text });
                } else {
                    tracing::debug!(publisher = %peer, to = %target, "reply for a viewer or API caller that is gone");
                }
            }
            PublisherRoute::Broadcast { cache } => {
                match cache {
                    Some(CacheSlot::Capabilities) => cam.capabilities = Some(text.clone()),
                    Some(CacheSlot::State) => cam.state = Some(text.clone()),
                    None => {}
                }
                for v in &cam.viewers {
                    if v.control_open {
                        out.push(Outgoing::Send {
                            to: v.peer,
                            text: text.clone(),
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use str0m::media::Mid;

    use super::*;
    use crate::core::RateLimit;

    const P: PeerId = PeerId(1);
    const A: PeerId = PeerId(2);
    const B: PeerId = PeerId(3);

    struct Fixture {
        relay: Membership,
        clock: Clock,
    }

    impl Fixture {
        /// Camera "cam": publisher P; viewer A may control, viewer B is view-only; all open.
        fn new() -> Self {
            let clock = Clock::now();
            let mut relay = Membership::new(
                Duration::from_millis(250),
                RateLimit {
                    per_second: 2.0,
                    burst: 3,
                },
            );
            relay.set_publisher("cam", P);
            relay.add_viewer("cam", A, Mid::from("v"), ViewerAccess::Control, clock.at);
            relay.add_viewer("cam", B, Mid::from("v"), ViewerAccess::ViewOnly, clock.at);
            let mut out = Vec::new();
            for p in [P, A, B] {
                relay.channel_opened(p, &mut out);
            }
            Fixture { relay, clock }
        }

        /// An API caller's command to "cam", waiting on `ticket`.
        fn api(
            &mut self,
            ticket: PeerId,
            access: ViewerAccess,
            caller: &str,
            text: &str,
        ) -> Vec<Outgoing> {
            self.api_to("cam", ticket, access, caller, text)
        }

        fn api_to(
            &mut self,
            camera: &str,
            ticket: PeerId,
            access: ViewerAccess,
            caller: &str,
            text: &str,
        ) -> Vec<Outgoing> {
            let mut out = Vec::new();
            self.relay.api_command(
                ticket,
                camera,
                access,
                caller,
                text.as_bytes(),
                self.clock,
                &mut out,
            );
            out
        }

        fn send(&mut self, from: PeerId, text: &str) -> Vec<Outgoing> {
            let mut out = Vec::new();
            self.relay
                .on_message(from, text.as_bytes(), false, self.clock, &mut out);
            out
        }
    }

    /// The texts each peer gets, as JSON.
    fn to(out: &[Outgoing], peer: PeerId) -> Vec<Value> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::Send { to, text } if *to == peer => {
                    Some(serde_json::from_str(text).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    fn error_code(v: &Value) -> &str {
        v["error"]["code"].as_str().unwrap_or("")
    }

    #[test]
    fn a_command_reaches_the_publisher_tagged_with_the_viewer() {
        let mut f = Fixture::new();
        let out = f.send(A, r#"{"v":1,"type":"update_settings","request_id":"r1","settings":{"fps":15},"from":"peer-3"}"#);
        assert_eq!(out.len(), 1);
        let got = to(&out, P);
        assert_eq!(
            got[0]["from"], "peer-2",
            "the SFU's tag, not the forged one"
        );
        assert_eq!(got[0]["settings"]["fps"], 15);
    }

    #[test]
    fn a_reply_goes_only_to_the_viewer_it_names() {
        let mut f = Fixture::new();
        let reply = r#"{"v":1,"type":"response","request_id":"r1","to":"peer-2","success":true,"message":"ok","timestamp":1}"#;
        let out = f.send(P, reply);
        assert_eq!(
            out,
            vec![Outgoing::Send {
                to: A,
                text: reply.into()
            }]
        );
        // To a peer that is not a viewer of this camera (the publisher itself, a stranger).
        assert!(f.send(P, &reply.replace("peer-2", "peer-1")).is_empty());
        assert!(f.send(P, &reply.replace("peer-2", "peer-99")).is_empty());
    }

    #[test]
    fn broadcasts_reach_every_open_viewer_and_new_ones_get_the_last() {
        let mut f = Fixture::new();
        let caps = r#"{"v":1,"type":"capabilities","settings":{}}"#;
        let state1 = r#"{"v":1,"type":"state","n":1}"#;
        let state2 = r#"{"v":1,"type":"state","n":2}"#;
        for text in [caps, state1, state2] {
            let out = f.send(P, text);
            assert_eq!(to(&out, A).len(), 1);
            assert_eq!(to(&out, B).len(), 1);
            assert!(to(&out, P).is_empty());
        }
        // A viewer whose channel is not open yet gets nothing now...
        f.relay.add_viewer(
            "cam",
            PeerId(4),
            Mid::from("v"),
            ViewerAccess::ViewOnly,
            f.clock.at,
        );
        assert!(to(&f.send(P, r#"{"v":1,"type":"notice"}"#), PeerId(4)).is_empty());
        // ...and welcome, capabilities, the latest state when it opens.
        let mut out = Vec::new();
        f.relay.channel_opened(PeerId(4), &mut out);
        let got = to(&out, PeerId(4));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["type"], "welcome");
        assert_eq!(got[0]["viewer"], "peer-4");
        assert_eq!(got[0]["may_control"], false);
        assert_eq!(got[1]["type"], "capabilities");
        assert_eq!(got[2]["n"], 2);
    }

    #[test]
    fn a_new_publisher_drops_the_old_ones_cache_and_voice() {
        let mut f = Fixture::new();
        f.send(P, r#"{"v":1,"type":"state","n":1}"#);
        f.relay.set_publisher("cam", PeerId(9));
        assert!(
            f.send(P, r#"{"v":1,"type":"state","n":2}"#).is_empty(),
            "old publisher is not heard"
        );
        let mut out = Vec::new();
        f.relay.add_viewer(
            "cam",
            PeerId(5),
            Mid::from("v"),
            ViewerAccess::Control,
            f.clock.at,
        );
        f.relay.channel_opened(PeerId(5), &mut out);
        assert_eq!(to(&out, PeerId(5)).len(), 1, "welcome only");
        // Commands wait for the new publisher's channel.
        let out = f.send(A, r#"{"v":1,"type":"get_status","request_id":"s"}"#);
        assert_eq!(error_code(&to(&out, A)[0]), "unavailable");
        f.relay.channel_opened(PeerId(9), &mut Vec::new());
        let out = f.send(A, r#"{"v":1,"type":"get_status","request_id":"s"}"#);
        assert_eq!(to(&out, PeerId(9)).len(), 1);
    }

    #[test]
    fn view_only_viewers_are_refused_without_the_publisher_seeing_it() {
        let mut f = Fixture::new();
        let out = f.send(
            B,
            r#"{"v":1,"type":"update_settings","request_id":"r5","settings":{"fps":15}}"#,
        );
        assert!(to(&out, P).is_empty());
        let got = to(&out, B);
        assert_eq!(error_code(&got[0]), "forbidden");
        assert_eq!(got[0]["request_id"], "r5");
        assert!(got[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("this viewer is view-only"));
        // Reading is allowed.
        let out = f.send(B, r#"{"v":1,"type":"get_capabilities","request_id":"r6"}"#);
        assert_eq!(to(&out, P)[0]["from"], "peer-3");
    }

    #[test]
    fn pause_and_resume_are_handled_here() {
        let mut f = Fixture::new();
        let out = f.send(B, r#"{"v":1,"type":"pause","request_id":"p"}"#);
        assert_eq!(out[0], Outgoing::Pause(B));
        let got = to(&out, B);
        assert_eq!(
            (got[0]["success"].as_bool(), got[0]["request_id"].as_str()),
            (Some(true), Some("p"))
        );
        assert!(to(&out, P).is_empty());
        let out = f.send(B, r#"{"v":1,"type":"resume","request_id":"q"}"#);
        assert_eq!(out[0], Outgoing::Resume(B));
    }

    #[test]
    fn malformed_commands_get_clear_errors() {
        let mut f = Fixture::new();
        let cases = [
            ("{oops", "bad_message"),
            (
                r#"{"v":2,"type":"get_status","request_id":"a"}"#,
                "unsupported_version",
            ),
            (
                r#"{"v":1,"type":"zoom","request_id":"a"}"#,
                "unknown_command",
            ),
        ];
        for (text, code) in cases {
            f.clock.at += Duration::from_secs(1); // stay under the rate limit
            let out = f.send(A, text);
            assert!(to(&out, P).is_empty(), "{text}");
            assert_eq!(error_code(&to(&out, A)[0]), code, "{text}");
        }
        let mut out = Vec::new();
        f.relay.on_message(A, b"{}", true, f.clock, &mut out);
        assert_eq!(error_code(&to(&out, A)[0]), "bad_message");
    }

    #[test]
    fn the_rate_limit_answers_with_retry_after() {
        let mut f = Fixture::new();
        let cmd = r#"{"v":1,"type":"get_status","request_id":"x"}"#;
        for _ in 0..3 {
            assert_eq!(to(&f.send(A, cmd), P).len(), 1);
        }
        let out = f.send(A, cmd);
        assert!(to(&out, P).is_empty());
        let got = &to(&out, A)[0];
        assert_eq!(error_code(got), "rate_limited");
        assert_eq!(got["request_id"], "x");
        assert_eq!(got["error"]["retry_after_ms"], 500);
        assert!(
            got["message"]
                .as_str()
                .unwrap()
                .contains("retry after 500 ms"),
            "{got}"
        );
        // Other viewers have their own bucket.
        assert_eq!(to(&f.send(B, cmd), P).len(), 1);
        f.clock.at += Duration::from_millis(500);
        assert_eq!(to(&f.send(A, cmd), P).len(), 1);
    }

    #[test]
    fn closed_channels_and_removed_peers_get_nothing() {
        let mut f = Fixture::new();
        f.relay.channel_closed(B);
        let out = f.send(P, r#"{"v":1,"type":"state"}"#);
        assert_eq!((to(&out, A).len(), to(&out, B).len()), (1, 0));
        f.relay.remove_peer(A);
        assert!(f.send(P, r#"{"v":1,"type":"state"}"#).is_empty());
        assert!(f
            .send(A, r#"{"v":1,"type":"get_status","request_id":"x"}"#)
            .is_empty());
        f.relay.remove_peer(P);
        f.relay.remove_peer(B);
        assert!(f.relay.cameras.is_empty() && f.relay.members.is_empty());
    }

    #[test]
    fn cameras_are_separate() {
        let mut f = Fixture::new();
        f.relay.set_publisher("other", PeerId(20));
        f.relay.add_viewer(
            "other",
            PeerId(21),
            Mid::from("v"),
            ViewerAccess::Control,
            f.clock.at,
        );
        f.relay.channel_opened(PeerId(20), &mut Vec::new());
        f.relay.channel_opened(PeerId(21), &mut Vec::new());
        let out = f.send(P, r#"{"v":1,"type":"state"}"#);
        assert!(to(&out, PeerId(21)).is_empty());
        let out = f.send(
            PeerId(21),
            r#"{"v":1,"type":"get_status","request_id":"o"}"#,
        );
        assert_eq!((to(&out, PeerId(20)).len(), to(&out, P).len()), (1, 0));
        // A publisher cannot address another camera's viewer.
        assert!(f
            .send(P, r#"{"v":1,"type":"response","to":"peer-21"}"#)
            .is_empty());
    }

    /// API callers' tickets.
    const T: PeerId = PeerId(100);
    const U: PeerId = PeerId(101);

    #[test]
    fn an_api_command_reaches_the_publisher_tagged_with_its_ticket() {
        let mut f = Fixture::new();
        let out = f.api(
            T,
            ViewerAccess::Control,
            "alice",
            r#"{"v":1,"type":"update_settings","request_id":"h1","settings":{"fps":15},"from":"peer-2"}"#,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        let got = to(&out, P);
        assert_eq!(
            got[0]["from"], "peer-100",
            "the ticket, not the forged sender"
        );
        assert_eq!(got[0]["request_id"], "h1");
        assert_eq!(got[0]["settings"]["fps"], 15);
        assert_eq!(f.relay.api.tickets.get(&T).map(String::as_str), Some("cam"));
    }

    #[test]
    fn the_publishers_reply_goes_to_the_ticket_only_and_broadcasts_never_do() {
        let mut f = Fixture::new();
        f.api(
            T,
            ViewerAccess::Control,
            "alice",
            r#"{"v":1,"type":"get_status","request_id":"h1"}"#,
        );
        let state = f.send(P, r#"{"v":1,"type":"state","n":1}"#);
        assert!(to(&state, T).is_empty(), "{state:?}");
        assert_eq!((to(&state, A).len(), to(&state, B).len()), (1, 1));
        let reply = r#"{"v":1,"type":"response","request_id":"h1","to":"peer-100","success":true,"message":"ok","timestamp":1}"#;
        let out = f.send(P, reply);
        assert_eq!(
            out,
            vec![Outgoing::Send {
                to: T,
                text: reply.into()
            }]
        );
        // The core ends the ticket on that answer; a late second reply goes nowhere.
        assert!(f.relay.end_ticket(T));
        assert!(f.send(P, reply).is_empty());
        assert!(!f.relay.end_ticket(T));
    }

    #[test]
    fn a_forgotten_tickets_late_reply_is_dropped() {
        let mut f = Fixture::new();
        f.api(
            T,
            ViewerAccess::Control,
            "alice",
            r#"{"v":1,"type":"get_status","request_id":"h1"}"#,
        );
        assert!(f.relay.end_ticket(T), "the caller gave up");
        let out = f.send(
            P,
            r#"{"v":1,"type":"response","request_id":"h1","to":"peer-100","success":true}"#,
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(f.relay.api.tickets.is_empty());
    }

    #[test]
    fn a_publisher_answers_only_its_own_cameras_tickets() {
        let mut f = Fixture::new();
        f.relay.set_publisher("other", PeerId(20));
        f.relay.channel_opened(PeerId(20), &mut Vec::new());
        let out = f.api_to(
            "other",
            U,
            ViewerAccess::Control,
            "alice",
            r#"{"v":1,"type":"get_status","request_id":"o"}"#,
        );
        assert_eq!(to(&out, PeerId(20))[0]["from"], "peer-101");
        assert!(f
            .send(P, r#"{"v":1,"type":"response","to":"peer-101"}"#)
            .is_empty());
        assert_eq!(
            to(
                &f.send(PeerId(20), r#"{"v":1,"type":"response","to":"peer-101"}"#),
                U
            )
            .len(),
            1
        );
    }

    #[test]
    fn a_view_only_api_caller_may_read_but_not_change() {
        let mut f = Fixture::new();
        let out = f.api(
            T,
            ViewerAccess::ViewOnly,
            "alice",
            r#"{"v":1,"type":"update_settings","request_id":"w","settings":{"fps":5}}"#,
        );
        assert!(to(&out, P).is_empty());
        let got = to(&out, T);
        assert_eq!(error_code(&got[0]), "forbidden");
        assert_eq!(got[0]["request_id"], "w");
        assert!(got[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("this caller is view-only"));
        let out = f.api(
            U,
            ViewerAccess::ViewOnly,
            "alice",
            r#"{"v":1,"type":"get_status","request_id":"r"}"#,
        );
        assert_eq!(to(&out, P)[0]["from"], "peer-101");
        assert!(to(&out, U).is_empty());
    }

    #[test]
    fn api_callers_are_rate_limited_each_by_name() {
        let mut f = Fixture::new();
        let cmd = r#"{"v":1,"type":"get_status","request_id":"x"}"#;
        for n in 0..3 {
            let out = f.api(PeerId(100 + n), ViewerAccess::Control, "alice", cmd);
            assert_eq!(to(&out, P).len(), 1);
        }
        let out = f.api(PeerId(110), ViewerAccess::Control, "alice", cmd);
        assert!(to(&out, P).is_empty());
        let got = &to(&out, PeerId(110))[0];
        assert_eq!(error_code(got), "rate_limited");
        assert_eq!(got["request_id"], "x");
        assert_eq!(got["error"]["retry_after_ms"], 500);
        // Another caller and the viewers have buckets of their own.
        let out = f.api(PeerId(111), ViewerAccess::Control, "bob", cmd);
        assert_eq!(to(&out, P).len(), 1);
        assert_eq!(to(&f.send(A, cmd), P).len(), 1);
        f.clock.at += Duration::from_millis(500);
        let out = f.api(PeerId(112), ViewerAccess::Control, "alice", cmd);
        assert_eq!(to(&out, P).len(), 1);
    }

    #[test]
    fn api_callers_buckets_are_bounded_by_dropping_full_ones() {
        let mut f = Fixture::new();
        let cmd = r#"{"v":1,"type":"get_status","request_id":"x"}"#;
        for n in 0..API_BUCKETS as u64 + 10 {
            f.api(
                PeerId(1000 + n),
                ViewerAccess::Control,
                &format!("c{n}"),
                cmd,
            );
        }
        // All drawn from just now: none can go.
        assert_eq!(f.relay.api.buckets.len(), API_BUCKETS + 10);
        // Full again a second later (2/s, burst 3): the next new caller clears them.
        f.clock.at += Duration::from_secs(1);
        f.api(PeerId(5000), ViewerAccess::Control, "late", cmd);
        assert_eq!(f.relay.api.buckets.len(), 1);
    }

    #[test]
    fn bad_api_commands_are_refused_to_the_ticket() {
        let mut f = Fixture::new();
        let cases = [
            ("{oops", "bad_message"),
            (r#"{"v":1,"type":"get_status"}"#, "bad_message"),
            (
                r#"{"v":1,"type":"zoom","request_id":"a"}"#,
                "unknown_command",
            ),
        ];
        for (n, (text, code)) in cases.into_iter().enumerate() {
            let ticket = PeerId(100 + n as u64);
            let out = f.api(ticket, ViewerAccess::Control, &format!("c{n}"), text);
            assert!(to(&out, P).is_empty(), "{text}");
            assert_eq!(error_code(&to(&out, ticket)[0]), code, "{text}");
        }
    }

    #[test]
    fn pause_and_resume_are_refused_to_api_callers() {
        let mut f = Fixture::new();
        for (ticket, ty) in [(T, "pause"), (U, "resume")] {
            let text = format!(r#"{{"v":1,"type":"{ty}","request_id":"p"}}"#);
            let out = f.api(ticket, ViewerAccess::Control, "alice", &text);
            assert_eq!(out.len(), 1, "no pause or resume of anyone: {out:?}");
            let got = &to(&out, ticket)[0];
            assert_eq!(error_code(got), "bad_message");
            assert_eq!(got["request_id"], "p");
            assert_eq!(
                got["message"],
                "pause/resume apply to a viewer's own video; not available here"
            );
        }
    }

    #[test]
    fn an_api_command_without_a_publisher_is_unavailable() {
        let mut f = Fixture::new();
        let cmd = r#"{"v":1,"type":"get_status","request_id":"u"}"#;
        let out = f.api_to("nowhere", T, ViewerAccess::Control, "alice", cmd);
        let got = &to(&out, T)[0];
        assert_eq!(error_code(got), "unavailable");
        assert_eq!(got["request_id"], "u");
        assert!(got["message"].as_str().unwrap().contains("`nowhere`"));
        assert!(
            !f.relay.cameras.contains_key("nowhere"),
            "asking makes no camera"
        );
        // A publisher whose channel is closed cannot answer either.
        f.relay.channel_closed(P);
        let out = f.api(U, ViewerAccess::Control, "alice", cmd);
        assert_eq!(error_code(&to(&out, U)[0]), "unavailable");
    }

    #[test]
    fn a_whip_camera_takes_keyframe_requests_and_refuses_the_rest_as_unsupported() {
        let mut f = Fixture::new();
        f.relay.channel_closed(P);
        f.relay.publisher_without_control(P);
        let out = f.send(A, r#"{"v":1,"type":"request_keyframe","request_id":"k"}"#);
        assert!(out.contains(&Outgoing::Keyframe("cam".into())), "{out:?}");
        let got = &to(&out, A)[0];
        assert_eq!(got["success"], true, "{got}");
        assert_eq!(got["request_id"], "k");
        assert!(to(&out, P).is_empty(), "nothing goes to the publisher");

        let update = r#"{"v":1,"type":"update_settings","request_id":"u","settings":{"fps":5}}"#;
        let out = f.send(A, update);
        let got = &to(&out, A)[0];
        assert_eq!(error_code(got), "unsupported", "{got}");
        assert!(
            got["error"]["message"].as_str().unwrap().contains("WHIP"),
            "{got}"
        );
        // The relay's own checks still come first: a view-only viewer is forbidden.
        assert_eq!(error_code(&to(&f.send(B, update), B)[0]), "forbidden");
        // Pause and resume are the SFU's own, whoever publishes.
        let out = f.send(B, r#"{"v":1,"type":"pause","request_id":"p"}"#);
        assert!(out.contains(&Outgoing::Pause(B)), "{out:?}");

        let counts: Vec<_> = f
            .relay
            .control_counts()
            .into_iter()
            .map(|c| (c.command, c.result, c.count))
            .collect();
        let want = |c: &str, r: &str| (c.to_owned(), r.to_owned(), 1);
        assert_eq!(
            counts,
            [
                want("pause", "ok"),
                want("request_keyframe", "ok"),
                want("update_settings", "forbidden"),
                want("update_settings", "unsupported"),
            ]
        );
    }
}
