//! The core's side of camera control: `control` data channels in and out. The decisions
//! are the relay's ([`super::control_relay`]); this only carries bytes and applies
//! pause/resume to the routing.

use sightline_protocol::control::CHANNEL_LABEL;
use str0m::channel::{ChannelData, ChannelId};

use super::membership::control_relay::Outgoing;
use super::Core;
use crate::PeerId;

impl Core {
    pub(super) fn control_channel_open(&mut self, id: PeerId, channel: ChannelId, label: &str) {
        if label != CHANNEL_LABEL {
            tracing::debug!(peer = %id, label, "data channel ignored (not `control`)");
            return;
        }
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.control = Some(channel);
        let mut out = Vec::new();
        self.members.channel_opened(id, &mut out);
        self.carry_out(out);
    }

    pub(super) fn control_channel_data(&mut self, id: PeerId, data: ChannelData) {
        if self.peers.get(id).and_then(|p| p.control) != Some(data.id) {
            return;
        }
        let mut out = Vec::new();
        let clock = self.clock();
        self.members
            .on_message(id, &data.data, data.binary, clock, &mut out);
        self.carry_out(out);
    }

    pub(super) fn control_channel_closed(&mut self, id: PeerId, channel: ChannelId) {
        if let Some(peer) = self
            .peers
            .get_mut(id)
            .filter(|p| p.control == Some(channel))
        {
            peer.control = None;
            self.members.channel_closed(id);
        }
    }

    fn carry_out(&mut self, out: Vec<Outgoing>) {
        for o in out {
            match o {
                Outgoing::Send { to, text } => self.write_control(to, &text),
                Outgoing::Pause(viewer) => {
                    self.members.set_paused(viewer, true);
                }
                Outgoing::Resume(viewer) => {
                    self.members.set_paused(viewer, false);
                }
            }
        }
    }

    /// Write one text message on a peer's control channel. A full SCTP buffer drops the
    /// message (a viewer that does not read its channel must not grow our memory).
    fn write_control(&mut self, to: PeerId, text: &str) {
        let Some(peer) = self.peers.get_mut(to) else {
            return;
        };
        let Some(mut channel) = peer.control.and_then(|c| peer.rtc.channel(c)) else {
            return;
        };
        match channel.write(false, text.as_bytes()) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(peer = %to, "control channel full; message dropped"),
            Err(e) => tracing::debug!(peer = %to, "control write failed: {e}"),
        }
        // Let str0m put the data on the wire now, not at the peer's next timeout.
        self.poke(to);
    }
}
