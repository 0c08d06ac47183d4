//! The core's side of camera control: `control` data channels in and out, and API callers'
//! commands in and their answers out. The decisions are the relay's
//! ([`super::membership::control_relay`]); this only carries bytes, applies pause/resume to
//! the routing and hands API callers their answers ([`Core::poll_api_reply`]).

use std::time::Instant;

use sightline_protocol::control::CHANNEL_LABEL;
use str0m::channel::{ChannelData, ChannelId};

use super::membership::control_relay::Outgoing;
use super::Core;
use crate::{PeerId, ViewerAccess};

impl Core {
    /// One control command from outside WebRTC (see [`crate::SfuHandle::control`]) for
    /// `camera`'s publisher, as a caller with `access`, rate-limited by the name `caller`.
    /// Returns the ticket its answer will come back under ([`Core::poll_api_reply`]); a
    /// refusal may be there at once. The ticket waits until answered or
    /// [`Core::forget_control`]led.
    pub(crate) fn control(
        &mut self,
        now: Instant,
        camera: &str,
        command: &str,
        access: ViewerAccess,
        caller: &str,
    ) -> PeerId {
        self.now = now;
        let ticket = self.peers.new_id();
        let clock = self.clock();
        let mut out = Vec::new();
        self.members.api_command(
            ticket,
            camera,
            access,
            caller,
            command.as_bytes(),
            clock,
            &mut out,
        );
        self.carry_out(out);
        self.settle();
        ticket
    }

    /// The next answer to an API caller's command: its ticket and the JSON text.
    pub(crate) fn poll_api_reply(&mut self) -> Option<(PeerId, String)> {
        self.api_replies.pop_front()
    }

    /// The caller behind `ticket` stopped waiting: a later reply to it is dropped.
    pub(crate) fn forget_control(&mut self, ticket: PeerId) {
        self.members.end_ticket(ticket);
        self.api_replies.retain(|(t, _)| *t != ticket);
    }

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

    pub(super) fn carry_out(&mut self, out: Vec<Outgoing>) {
        for o in out {
            match o {
                Outgoing::Send { to, text } => {
                    // A ticket has no channel: the text is its caller's answer, and the end
                    // of the ticket.
                    if self.members.end_ticket(to) {
                        self.api_replies.push_back((to, text.to_string()));
                    } else {
                        self.write_control(to, &text);
                    }
                }
                Outgoing::Pause(viewer) => {
                    self.members.set_paused(viewer, true);
                }
                Outgoing::Resume(viewer) => {
                    self.members.set_paused(viewer, false);
                }
                Outgoing::Keyframe(camera) => self.members.camera_wants_keyframe(&camera),
            }
        }
    }

    /// Write one text message on a peer's control channel. A full SCTP buffer drops the
    /// message (a viewer that does not read its channel must not grow our memory).
    fn write_control(&mut self, to: PeerId, text: &str) {
        if self.is_watcher(to) {
            self.watcher_control(to, text);
            return;
        }
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
