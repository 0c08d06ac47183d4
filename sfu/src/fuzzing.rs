//! The SFU's boundary for fuzzing (`fuzz/`): what signaling hands it from outside, SDP
//! offers and trickled candidates, run through a real core without sockets. Not an API.

use std::time::Instant;

use crate::core::{Core, CoreConfig, RateLimit};
use crate::ViewerAccess;

/// A core kept across inputs (building one costs more than most inputs); every peer an input
/// creates is closed before the next.
pub struct OfferTarget {
    core: Core,
}

impl Default for OfferTarget {
    fn default() -> Self {
        let now = Instant::now();
        let addr = "10.0.0.1:5000".parse().expect("a socket address");
        let config = CoreConfig {
            local_addrs: vec![addr],
            public: None,
            tcp_addrs: vec![addr],
            keyframe_request_interval: std::time::Duration::from_millis(250),
            control_rate_limit: RateLimit::default(),
            fan_out_threads: 1,
        };
        OfferTarget {
            core: Core::new(config, now, 1_700_000_000_000),
        }
    }
}

impl OfferTarget {
    /// `sdp` as a viewer's offer, a publisher's offer and a viewer's ICE restart, and
    /// `candidate` trickled to whichever peer was created. Errors are expected; a panic is
    /// a bug.
    pub fn run(&mut self, sdp: &str, candidate: &str) {
        let now = Instant::now();
        if let Ok(answer) = self.core.subscribe(now, "cam", sdp, ViewerAccess::Control) {
            let _ = self.core.add_remote_candidate(now, answer.peer, candidate);
            let _ = self.core.restart_ice(now, answer.peer, sdp);
            self.core.close_peer(answer.peer);
        }
        if let Ok(answer) = self.core.publish(now, "cam", sdp) {
            let _ = self.core.add_remote_candidate(now, answer.peer, candidate);
            self.core.close_peer(answer.peer);
        }
        self.core.transmits().clear();
        while self.core.poll_event().is_some() {}
    }
}
