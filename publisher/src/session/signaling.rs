//! The signaling state machine: what a publisher session does with each server message, as
//! plain code without I/O, so every exchange is tested without a server. The session loop
//! ([`super`]) feeds it messages and carries out the [`Step`]s it returns; the messages the
//! publisher reports its source with are built here too.

use sightline_protocol::wire::{ClientMessage, IceServer, ServerMessage, SourceState};

use crate::source::supervisor::SourceReport;

/// Where the publisher is in the signaling exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected, waiting for `hello`.
    AwaitHello,
    /// Sent `register`, waiting for `registered`.
    AwaitRegistered,
    /// Sent the offer, waiting for `answer`.
    AwaitAnswer,
    /// Answer applied; media may flow.
    Live,
}

/// What the session loop should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Use these ICE servers (the server's `hello`; may be empty), send `register` and move
    /// to [`Phase::AwaitRegistered`].
    Register(Vec<IceServer>),
    /// Fresh TURN credentials: the SFU connection is up already (the next one gets its own
    /// in its `hello`); direct viewers' connections use them.
    IceServers(Vec<IceServer>),
    /// Answer a direct viewer's offer with a connection of our own.
    DirectOffer {
        viewer: u64,
        sdp: String,
        may_control: bool,
    },
    /// A direct viewer's candidate.
    DirectCandidate(u64, Candidate),
    /// Close a direct viewer's connection (it left).
    DirectClose(u64),
    /// Create the offer, send it, move to [`Phase::AwaitAnswer`].
    Offer,
    /// Apply this SDP answer, add any buffered candidates, move to [`Phase::Live`].
    ApplyAnswer(String),
    /// Add this remote candidate now.
    AddCandidate(Candidate),
    /// Keep this remote candidate until the answer is applied.
    BufferCandidate(Candidate),
    /// The server says how many viewers the camera has (on-demand start and stop), and how
    /// many of them are sent VP8 (the VP8 encoder runs only for them).
    Demand(u32, u32),
    /// The server wants a JPEG of the picture now, `width` wide at most.
    Snapshot {
        request: u64,
        width: Option<u32>,
    },
    /// Give up on this session (it is torn down and retried after a backoff).
    Fail(String),
    /// The server took this camera id out of its registry: if it is ours, end the session
    /// and do not reconnect.
    Removed(String),
    /// Worth a log line, nothing else.
    Note(String),
    Ignore,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

/// Decide what to do with `msg` in `phase`. Returns the step and the phase after it.
pub fn on_message(phase: Phase, msg: ServerMessage) -> (Step, Phase) {
    use Phase::*;
    match (phase, msg) {
        (AwaitHello, ServerMessage::Hello { ice_servers, .. }) => {
            (Step::Register(ice_servers), AwaitRegistered)
        }
        (_, ServerMessage::IceServers { ice_servers }) => (Step::IceServers(ice_servers), phase),
        (AwaitRegistered, ServerMessage::Registered { .. }) => (Step::Offer, AwaitAnswer),
        (AwaitAnswer, ServerMessage::Answer { sdp, .. }) => (Step::ApplyAnswer(sdp), Live),
        (
            AwaitAnswer | Live,
            ServerMessage::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            },
        ) => {
            if candidate.trim().is_empty() {
                return (Step::Ignore, phase); // end of candidates
            }
            let c = Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            };
            if phase == Live {
                (Step::AddCandidate(c), phase)
            } else {
                (Step::BufferCandidate(c), phase)
            }
        }
        // Direct viewers come once we are registered, whether or not the SFU answered yet.
        (
            AwaitAnswer | Live,
            ServerMessage::DirectOffer {
                viewer,
                sdp,
                may_control,
            },
        ) => (
            Step::DirectOffer {
                viewer,
                sdp,
                may_control,
            },
            phase,
        ),
        (
            AwaitAnswer | Live,
            ServerMessage::DirectCandidate {
                viewer,
                candidate,
                sdp_mid,
                sdp_mline_index,
            },
        ) if !candidate.trim().is_empty() => (
            Step::DirectCandidate(
                viewer,
                Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                },
            ),
            phase,
        ),
        // End of its candidates.
        (AwaitAnswer | Live, ServerMessage::DirectCandidate { .. }) => (Step::Ignore, phase),
        (_, ServerMessage::DirectClose { viewer }) => (Step::DirectClose(viewer), phase),
        // Sent right after `registered` and on every change, whatever our phase.
        (
            AwaitRegistered | AwaitAnswer | Live,
            ServerMessage::Demand {
                viewers,
                vp8_viewers,
                ..
            },
        ) => (Step::Demand(viewers, vp8_viewers), phase),
        // Before we are live an error means registration or the offer was refused: this
        // session cannot go anywhere. Once live, the server is complaining about something
        // minor (a stray candidate): log it and carry on.
        (AwaitHello | AwaitRegistered | AwaitAnswer, ServerMessage::Error { code, message }) => (
            Step::Fail(format!("server refused: {}: {message}", code.as_str())),
            phase,
        ),
        (Live, ServerMessage::Error { code, message }) => (
            Step::Note(format!("server error: {}: {message}", code.as_str())),
            phase,
        ),
        // In any phase: the session answers, with a reason when it has no picture yet.
        (_, ServerMessage::SnapshotRequest { request, width }) => {
            (Step::Snapshot { request, width }, phase)
        }
        // The socket closes next, and the session reconnects as after any lost connection.
        (_, ServerMessage::ServerStopping) => (
            Step::Note("the server is stopping; reconnecting once it is back".into()),
            phase,
        ),
        (_, ServerMessage::CameraRemoved { camera_id }) => (Step::Removed(camera_id), phase),
        // Broadcasts for viewers (our own source_state comes back to us too).
        (
            _,
            ServerMessage::CameraOnline { .. }
            | ServerMessage::CameraOffline { .. }
            | ServerMessage::SourceState { .. },
        ) => (Step::Ignore, phase),
        (_, other) => (
            Step::Note(format!("unexpected in {phase:?}: {}", other.to_json())),
            phase,
        ),
    }
}

/// The `source_state` message telling the server about the source named `source` (with how
/// it runs, while live, when it says).
pub fn source_report(report: &SourceReport, source: &str) -> ClientMessage {
    let status = report.to_status(source);
    ClientMessage::SourceState {
        state: status.state,
        error: status.error,
        source: status.source,
        detail: status.detail,
    }
}

/// The `source_state` message for a source that is not running on purpose (on demand,
/// nobody watching, or stopped by a viewer).
pub fn idle_report(source: &str) -> ClientMessage {
    ClientMessage::SourceState {
        state: SourceState::Idle,
        error: None,
        source: source.to_owned(),
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::supervisor::SourceHealth;
    use sightline_protocol::wire::{parse_client_message, ErrorCode};

    fn report(health: SourceHealth, detail: Option<&str>) -> SourceReport {
        SourceReport {
            health,
            detail: detail.map(str::to_owned),
        }
    }

    fn turn() -> IceServer {
        IceServer {
            urls: vec!["turn:10.0.0.9:3478?transport=udp".into()],
            username: Some("1:pub".into()),
            credential: Some("c2VjcmV0".into()),
        }
    }

    #[test]
    fn direct_viewers_come_once_registered() {
        let offer = || ServerMessage::DirectOffer {
            viewer: 7,
            sdp: "v=0".into(),
            may_control: true,
        };
        for phase in [Phase::AwaitAnswer, Phase::Live] {
            assert_eq!(
                on_message(phase, offer()),
                (
                    Step::DirectOffer {
                        viewer: 7,
                        sdp: "v=0".into(),
                        may_control: true
                    },
                    phase
                )
            );
            let c = ServerMessage::DirectCandidate {
                viewer: 7,
                candidate: "candidate:1 1 udp 1 10.0.0.2 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            };
            assert!(matches!(on_message(phase, c), (Step::DirectCandidate(7, _), p) if p == phase));
            let end = ServerMessage::DirectCandidate {
                viewer: 7,
                candidate: " ".into(),
                sdp_mid: None,
                sdp_mline_index: None,
            };
            assert_eq!(on_message(phase, end).0, Step::Ignore);
        }
        // Not before we are registered: nothing to answer with.
        assert!(matches!(
            on_message(Phase::AwaitRegistered, offer()).0,
            Step::Note(_)
        ));
        assert_eq!(
            on_message(Phase::Live, ServerMessage::DirectClose { viewer: 7 }),
            (Step::DirectClose(7), Phase::Live)
        );
    }

    fn cand(c: &str) -> ServerMessage {
        ServerMessage::Candidate {
            candidate: c.into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }
    }

    #[test]
    fn happy_path() {
        let (s, p) = on_message(
            Phase::AwaitHello,
            ServerMessage::Hello {
                session_id: 1,
                server_version: "x".into(),
                ice_servers: vec![turn()],
            },
        );
        assert_eq!(
            (s, p),
            (Step::Register(vec![turn()]), Phase::AwaitRegistered)
        );
        let fresh = ServerMessage::IceServers {
            ice_servers: vec![turn()],
        };
        assert_eq!(on_message(p, fresh), (Step::IceServers(vec![turn()]), p));
        let (s, p) = on_message(
            p,
            ServerMessage::Registered {
                camera_id: "c".into(),
            },
        );
        assert_eq!((s, p), (Step::Offer, Phase::AwaitAnswer));
        let (s, p) = on_message(p, cand("candidate:1 1 udp 1 127.0.0.1 5000 typ host"));
        assert!(matches!(s, Step::BufferCandidate(_)));
        let (s, p) = on_message(
            p,
            ServerMessage::Answer {
                sdp: "v=0".into(),
                resume: None,
            },
        );
        assert_eq!((s, p), (Step::ApplyAnswer("v=0".into()), Phase::Live));
        let (s, _) = on_message(p, cand("candidate:2 1 udp 1 127.0.0.1 5001 typ host"));
        assert!(matches!(s, Step::AddCandidate(c) if c.candidate.contains("5001")));
        assert_eq!(on_message(p, cand("")).0, Step::Ignore);
    }

    #[test]
    fn refusal_before_live_fails_the_session() {
        let err = ServerMessage::Error {
            code: ErrorCode::CameraAlreadyLive,
            message: "taken".into(),
        };
        let (s, _) = on_message(Phase::AwaitRegistered, err.clone());
        assert!(
            matches!(&s, Step::Fail(m) if m.contains("camera_already_live")),
            "{s:?}"
        );
        assert!(matches!(on_message(Phase::Live, err).0, Step::Note(_)));
    }

    #[test]
    fn source_reports_are_what_the_server_accepts() {
        let long_detail = "d".repeat(5000);
        for r in [
            report(SourceHealth::Connecting, None),
            report(SourceHealth::Live, None),
            report(
                SourceHealth::Live,
                Some("passthrough (Main 4.0, 1920x1080)"),
            ),
            report(SourceHealth::Live, Some(&long_detail)),
            report(SourceHealth::Live, Some(" \n ")),
            report(
                SourceHealth::Lost {
                    error: "connecting to 127.0.0.1:9: connection refused".into(),
                },
                None,
            ),
            report(SourceHealth::Lost { error: "".into() }, None),
            report(
                SourceHealth::Lost {
                    error: "x".repeat(5000),
                },
                None,
            ),
        ] {
            let msg = source_report(&r, "rtsp://admin:***@cam/1");
            let parsed = parse_client_message(&msg.to_json())
                .unwrap_or_else(|e| panic!("{r:?}: server would refuse: {e}"));
            assert_eq!(parsed, msg);
        }
        let ClientMessage::SourceState { state, error, .. } = source_report(
            &report(
                SourceHealth::Lost {
                    error: "gone".into(),
                },
                None,
            ),
            "file:x",
        ) else {
            panic!("not a source_state");
        };
        assert_eq!((state, error.as_deref()), (SourceState::Lost, Some("gone")));
        let ClientMessage::SourceState { state, detail, .. } = source_report(
            &report(SourceHealth::Live, Some("re-encoding (High 3.1, 1280x720)")),
            "rtsp://cam/1",
        ) else {
            panic!("not a source_state");
        };
        assert_eq!(
            (state, detail.as_deref()),
            (SourceState::Live, Some("re-encoding (High 3.1, 1280x720)"))
        );
    }

    #[test]
    fn a_snapshot_request_is_answered_in_every_phase() {
        let ask = ServerMessage::SnapshotRequest {
            request: 7,
            width: Some(320),
        };
        for phase in [
            Phase::AwaitHello,
            Phase::AwaitRegistered,
            Phase::AwaitAnswer,
            Phase::Live,
        ] {
            assert_eq!(
                on_message(phase, ask.clone()),
                (
                    Step::Snapshot {
                        request: 7,
                        width: Some(320)
                    },
                    phase
                )
            );
        }
    }

    #[test]
    fn demand_is_taken_once_registered() {
        let demand = ServerMessage::Demand {
            camera_id: "c".into(),
            viewers: 2,
            vp8_viewers: 1,
        };
        for phase in [Phase::AwaitRegistered, Phase::AwaitAnswer, Phase::Live] {
            assert_eq!(
                on_message(phase, demand.clone()),
                (Step::Demand(2, 1), phase)
            );
        }
        assert!(matches!(
            on_message(Phase::AwaitHello, demand).0,
            Step::Note(_)
        ));
    }

    #[test]
    fn idle_reports_are_what_the_server_accepts() {
        let msg = idle_report("v4l2:0");
        assert_eq!(parse_client_message(&msg.to_json()).unwrap(), msg);
        assert!(msg.to_json().contains(r#""state":"idle""#));
    }

    #[test]
    fn our_own_source_state_broadcast_is_ignored() {
        let echo = ServerMessage::SourceState {
            camera_id: "c".into(),
            state: SourceState::Live,
            error: None,
            source: "s".into(),
            detail: None,
        };
        assert_eq!(on_message(Phase::Live, echo), (Step::Ignore, Phase::Live));
    }

    #[test]
    fn a_removal_ends_the_session_in_any_phase() {
        for phase in [Phase::AwaitHello, Phase::AwaitAnswer, Phase::Live] {
            let gone = ServerMessage::CameraRemoved {
                camera_id: "porch".into(),
            };
            assert_eq!(
                on_message(phase, gone),
                (Step::Removed("porch".into()), phase)
            );
        }
    }

    #[test]
    fn out_of_order_messages_do_not_advance() {
        let (s, p) = on_message(
            Phase::AwaitHello,
            ServerMessage::Answer {
                sdp: "x".into(),
                resume: None,
            },
        );
        assert!(matches!(s, Step::Note(_)));
        assert_eq!(p, Phase::AwaitHello);
        let (s, p) = on_message(Phase::AwaitHello, cand("candidate:x"));
        assert!(matches!(s, Step::Note(_)));
        assert_eq!(p, Phase::AwaitHello);
    }
}
