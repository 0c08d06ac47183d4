//! One peer connection as the media loop holds it.

use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::Rtc;

use crate::routing::Role;
use crate::viewer_tx::ViewerTx;

/// A peer whose ICE+DTLS never come up is given up on after this long (str0m's own ICE
/// timeout only runs once checks have started).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Peer {
    pub(crate) rtc: Rtc,
    pub(crate) role: Role,
    /// A viewer's send side, once its m-line is known.
    pub(crate) tx: Option<ViewerTx>,
    /// Its open `control` data channel.
    pub(crate) control: Option<ChannelId>,
    /// ICE+DTLS came up at least once.
    pub(crate) connected: bool,
    pub(crate) created: Instant,
    /// When str0m next wants `Input::Timeout`.
    pub(crate) next_timeout: Instant,
}

impl Peer {
    pub(crate) fn new(rtc: Rtc, role: Role, now: Instant) -> Self {
        Peer {
            rtc,
            role,
            tx: None,
            control: None,
            connected: false,
            created: now,
            next_timeout: now,
        }
    }

    /// The earliest instant this peer needs attention.
    pub(crate) fn deadline(&self) -> Instant {
        if self.connected {
            self.next_timeout
        } else {
            self.next_timeout.min(self.created + CONNECT_TIMEOUT)
        }
    }
}
