//! Viewers' media connections that a new signaling session may take over.
//!
//! A phone that changes networks loses its WebSocket and its media path at once. Its page
//! opens a new socket and restarts ICE on the media connection it still has, presenting
//! the key it was given with its answer (`ice_restart` with `resume`). The server often has
//! not noticed the old socket is dead yet, so the old session may still hold the
//! connection; it is told to let go ([`Resumes::take`] says who held it).
//!
//! This table is the one place that says which session owns which SFU peer: a session
//! closes its peer only if the table still names it the owner, so a peer taken over is
//! never closed by the session that lost it. Plain state, tested without sockets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sightline_protocol::wire::RESUME_GRACE_SECS;
use sightline_sfu::{PeerId, ViewerAccess};

use super::registry::SessionId;

/// How long an orphaned connection waits for a new session.
pub(super) const RESUME_GRACE: Duration = Duration::from_secs(RESUME_GRACE_SECS);

/// A viewer's media connection through the SFU, as the session that owns it holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resumable {
    pub(super) peer: PeerId,
    pub(super) camera_id: String,
    pub(super) access: ViewerAccess,
    pub(super) owner: SessionId,
}

#[derive(Debug, Default)]
pub(super) struct Resumes {
    by_key: HashMap<String, Resumable>,
    /// Keys whose owner's socket was lost: waiting for a new session until expiry.
    orphans: HashSet<String>,
}

impl Resumes {
    /// Record `owner`'s new connection under a fresh, unguessable key.
    pub(super) fn issue(&mut self, connection: Resumable) -> String {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.by_key.insert(key.clone(), connection);
        key
    }

    /// The connection under `key`, without taking it (to check the newcomer may have it).
    pub(super) fn peek(&self, key: &str) -> Option<&Resumable> {
        self.by_key.get(key)
    }

    /// A new session takes the connection under `key`: the key is spent. The result names
    /// the old owner, which must let go (unless its socket is already gone).
    pub(super) fn take(&mut self, key: &str) -> Option<(Resumable, bool)> {
        let orphaned = self.orphans.remove(key);
        self.by_key.remove(key).map(|r| (r, orphaned))
    }

    /// `owner` is done with its connection (it closes it, or the SFU did): whether the
    /// connection was still its own to close.
    pub(super) fn forget(&mut self, key: &str, owner: SessionId) -> bool {
        if self.by_key.get(key).is_some_and(|r| r.owner == owner) {
            self.by_key.remove(key);
            self.orphans.remove(key);
            true
        } else {
            false
        }
    }

    /// `owner`'s socket was lost: its connection waits for a new session. False if it was
    /// not (or no longer) its own.
    pub(super) fn orphan(&mut self, key: &str, owner: SessionId) -> bool {
        if self.by_key.get(key).is_some_and(|r| r.owner == owner) {
            self.orphans.insert(key.to_owned());
            true
        } else {
            false
        }
    }

    /// The grace is over: the peer to close, if nobody took the orphan.
    pub(super) fn expire(&mut self, key: &str) -> Option<PeerId> {
        if !self.orphans.remove(key) {
            return None;
        }
        self.by_key.remove(key).map(|r| r.peer)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(owner: SessionId) -> Resumable {
        Resumable {
            peer: PeerId(7),
            camera_id: "cam".into(),
            access: ViewerAccess::ViewOnly,
            owner,
        }
    }

    #[test]
    fn keys_are_fresh_and_unguessable() {
        let mut r = Resumes::default();
        let a = r.issue(connection(1));
        let b = r.issue(connection(1));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(r.peek("00000000000000000000000000000000").is_none());
    }

    #[test]
    fn a_taken_connection_is_not_closed_by_the_session_that_lost_it() {
        let mut r = Resumes::default();
        let key = r.issue(connection(1));
        assert_eq!(r.peek(&key).unwrap().owner, 1);
        let (taken, orphaned) = r.take(&key).unwrap();
        assert_eq!((taken.peer, orphaned), (PeerId(7), false));
        assert!(r.take(&key).is_none(), "a key is spent once used");
        assert!(!r.forget(&key, 1), "the old owner must not close it");
        assert!(!r.orphan(&key, 1));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_orphan_is_taken_or_expires() {
        let mut r = Resumes::default();
        let key = r.issue(connection(1));
        assert!(!r.orphan(&key, 2), "only the owner orphans it");
        assert!(r.orphan(&key, 1));
        let (_, orphaned) = r.take(&key).unwrap();
        assert!(orphaned);
        assert_eq!(r.expire(&key), None, "taken before the grace ended");

        let key = r.issue(connection(1));
        assert_eq!(
            r.expire(&key),
            None,
            "not orphaned: its owner still holds it"
        );
        assert!(r.orphan(&key, 1));
        assert_eq!(r.expire(&key), Some(PeerId(7)));
        assert!(r.take(&key).is_none());
    }

    #[test]
    fn an_owner_forgets_its_own_connection_only() {
        let mut r = Resumes::default();
        let key = r.issue(connection(1));
        assert!(!r.forget(&key, 2));
        assert!(r.forget(&key, 1));
        assert!(!r.forget(&key, 1));
        assert!(!r.forget("nope", 1));
        assert_eq!(r.len(), 0);
    }
}
