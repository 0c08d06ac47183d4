//! Camera control over the membership table: who may send what on `control` data
//! channels, where each message goes, what new viewers are told at once. Plain state, no
//! I/O.
//!
//! The core tells the table about `control` channels opening and closing and hands it every
//! message; it answers with [`Outgoing`] actions (texts to write to channels, pause/resume
//! of a viewer's media) that the core carries out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_protocol::control::{
    peek_request_id, CommandType, ControlError, ControlErrorCode, RateLimitInfo, Refusal,
};

use super::{Membership, Role};
use crate::core::control_wire::{
    ok_text, parse_viewer_command, refusal_text, route_publisher_message, welcome_text, CacheSlot,
    PublisherRoute,
};
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
}

/// The sender of one command: its id, the camera it speaks to and what it may do there.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    id: PeerId,
    camera: &'a str,
    access: ViewerAccess,
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
        let text = welcome_text(
            peer,
            camera,
            may_control,
            RateLimitInfo {
                per_second: limit.per_second,
                burst: limit.burst,
            },
        );
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
            access,
        };
        self.command(from, taken, data, binary, clock, out);
    }

    /// The one path of every command, once its sender's bucket was charged (`taken`):
    /// rate limit, envelope, pause/resume, permission, then the camera's publisher.
    fn command(
        &self,
        from: Caller<'_>,
        taken: Result<(), Duration>,
        data: &[u8],
        binary: bool,
        clock: Clock,
        out: &mut Vec<Outgoing>,
    ) {
        let limit = self.limit;
        let mut refuse = |request_id: Option<String>, error: ControlError, retry: Option<u64>| {
            let text = refusal_text(Refusal { request_id, error }, retry, clock.unix_ms);
            out.push(Outgoing::Send {
                to: from.id,
                text: text.into(),
            })
        };
        // Every message counts, refused ones too: a flood of garbage is a flood.
        if let Err(wait) = taken {
            let ms = wait.as_millis() as u64;
            let error = ControlError::new(
                ControlErrorCode::RateLimited,
                format!(
                    "too many control messages: at most {} per second (bursts of {}); retry after {ms} ms",
                    limit.per_second, limit.burst
                ),
            );
            refuse(peek_request_id(data), error, Some(ms));
            return;
        }
        let cmd = match parse_viewer_command(data, binary) {
            Ok(cmd) => cmd,
            Err(r) => {
                refuse(r.request_id, r.error, None);
                return;
            }
        };
        let request_id = Some(cmd.request_id.clone());
        match cmd.command {
            // The viewer-local commands (`CommandType::is_viewer_local`): answered here.
            CommandType::Pause | CommandType::Resume => {
                let (action, message) = if cmd.command == CommandType::Pause {
                    (
                        Outgoing::Pause(from.id),
                        "paused: no video is sent to this viewer until it resumes",
                    )
                } else {
                    (
                        Outgoing::Resume(from.id),
                        "resumed: video restarts at the next keyframe",
                    )
                };
                out.push(action);
                out.push(Outgoing::Send {
                    to: from.id,
                    text: ok_text(&cmd.request_id, message, clock.unix_ms).into(),
                });
            }
            command if from.access != ViewerAccess::Control && !command.view_only_may_send() => {
                let error = ControlError::new(
                    ControlErrorCode::Forbidden,
                    format!(
                        "this viewer is view-only: `{command}` changes the camera and needs \
                         control (subscribe with the server's control key)"
                    ),
                );
                refuse(request_id, error, None);
            }
            _ => {
                let publisher = self
                    .cameras
                    .get(from.camera)
                    .and_then(|c| c.publisher.as_ref())
                    .filter(|p| p.control_open)
                    .map(|p| p.peer);
                match publisher {
                    Some(publisher) => out.push(Outgoing::Send {
                        to: publisher,
                        text: cmd.tagged(from.id).into(),
                    }),
                    None => {
                        let error = ControlError::new(
                            ControlErrorCode::Unavailable,
                            format!(
                                "camera `{}` has no publisher with an open control channel",
                                from.camera
                            ),
                        );
                        refuse(request_id, error, None);
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
        let Some(camera) = self.members.get(&peer).map(|m| m.camera.clone()) else {
            return;
        };
        let Some((cam, Role::Publisher)) = self.camera_of(peer) else {
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
            PublisherRoute::To(viewer) => {
                let open_viewer = cam
                    .viewers
                    .iter()
                    .any(|v| v.peer == viewer && v.control_open);
                if open_viewer {
                    out.push(Outgoing::Send { to: viewer, text });
                } else {
                    tracing::debug!(publisher = %peer, %viewer, "reply for a viewer that is gone");
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
}
