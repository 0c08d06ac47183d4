//! When a connected peer connection counts as lost: plain state, no I/O.
//!
//! webrtc-rs reports `disconnected` when ICE has had no answer to its consent checks for
//! 5 s. On a lossy link (a phone on a poor cell, a camera on weak Wi-Fi) that happens
//! while media still flows: a couple of checks in a row lost, and the next answer brings
//! the connection back to `connected`. Ending the session there cost every viewer seconds
//! of black while a fresh session was set up over the same poor link. So `disconnected` is
//! given [`DISCONNECTED_GRACE`] to recover; `failed` and `closed` end the session at once.

use std::time::Duration;

use tokio::time::Instant;
use webrtc::peer_connection::RTCPeerConnectionState;

/// How long a `disconnected` peer connection may take to come back before the session is
/// given up. With the 5 s ICE needs to say `disconnected`, a link that is really gone is
/// left after about 10 s; the signaling WebSocket closing (a server restart) ends the
/// session sooner.
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(5);

/// What a peer connection state means for the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Carry,
    /// Media came up for the first time: start it.
    Up,
    /// The session is over, for this reason.
    End(String),
}

#[derive(Debug, Default)]
pub struct Liveness {
    /// Since when the connection has been `disconnected`, if it is.
    disconnected_at: Option<Instant>,
}

impl Liveness {
    /// A new state reported by the peer connection at `now`; `media_up`: it has been
    /// `connected` before (the session's own record, [`Verdict::Up`] sets it).
    pub fn on_state(
        &mut self,
        state: RTCPeerConnectionState,
        media_up: bool,
        now: Instant,
    ) -> Verdict {
        match state {
            RTCPeerConnectionState::Connected => {
                self.disconnected_at = None;
                if media_up {
                    Verdict::Carry
                } else {
                    Verdict::Up
                }
            }
            RTCPeerConnectionState::Disconnected if media_up => {
                self.disconnected_at.get_or_insert(now);
                Verdict::Carry
            }
            RTCPeerConnectionState::Disconnected
            | RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Closed => Verdict::End(format!("peer connection {state}")),
            _ => Verdict::Carry,
        }
    }

    /// When the session ends unless the connection comes back (`None`: it is not waiting).
    pub fn deadline(&self) -> Option<Instant> {
        self.disconnected_at.map(|at| at + DISCONNECTED_GRACE)
    }

    /// The reason to end the session once [`Self::deadline`] has passed.
    pub fn gave_up(&self) -> String {
        format!(
            "peer connection disconnected for {}s without coming back",
            DISCONNECTED_GRACE.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RTCPeerConnectionState::*;

    #[test]
    fn the_first_connected_starts_media_and_later_ones_do_not() {
        let (mut l, now) = (Liveness::default(), Instant::now());
        assert_eq!(l.on_state(Connecting, false, now), Verdict::Carry);
        assert_eq!(l.on_state(Connected, false, now), Verdict::Up);
        assert_eq!(l.on_state(Disconnected, true, now), Verdict::Carry);
        assert_eq!(l.on_state(Connected, true, now), Verdict::Carry);
    }

    #[test]
    fn disconnected_waits_for_the_grace_and_connected_calls_it_off() {
        let (mut l, t0) = (Liveness::default(), Instant::now());
        l.on_state(Connected, false, t0);
        assert_eq!(l.deadline(), None);
        assert_eq!(l.on_state(Disconnected, true, t0), Verdict::Carry);
        assert_eq!(l.deadline(), Some(t0 + DISCONNECTED_GRACE));
        // A repeated report does not move the deadline on.
        l.on_state(Disconnected, true, t0 + Duration::from_secs(2));
        assert_eq!(l.deadline(), Some(t0 + DISCONNECTED_GRACE));
        l.on_state(Connected, true, t0 + Duration::from_secs(3));
        assert_eq!(l.deadline(), None);
        assert!(
            l.gave_up().contains("disconnected for 5s"),
            "{}",
            l.gave_up()
        );
    }

    #[test]
    fn failed_and_closed_end_at_once_and_so_does_disconnected_before_media() {
        let now = Instant::now();
        for state in [Failed, Closed] {
            let mut l = Liveness::default();
            assert_eq!(
                l.on_state(state, true, now),
                Verdict::End(format!("peer connection {state}"))
            );
        }
        // Before media ever flowed, the setup timeouts are in charge; a connection that
        // drops during setup is not waited for.
        let mut l = Liveness::default();
        assert!(matches!(
            l.on_state(Disconnected, false, now),
            Verdict::End(_)
        ));
        assert_eq!(l.deadline(), None);
    }
}
