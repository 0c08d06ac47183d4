//! Per-camera counters ([`CameraStats`]). What is counted once per frame or per request goes
//! straight into the camera's entry; what is counted per packet (a viewer's bytes, packets
//! and retransmissions) is kept on the viewer's [`Peer`] and added in when stats are read,
//! and for good when the viewer leaves, so the hot path does no camera lookup.

use std::collections::BTreeMap;

use super::peers::Peer;
use super::Core;
use crate::{CameraStats, PeerId};

/// What one viewer was sent, and the NACKs it sent us.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SentCounters {
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) rtx: u64,
    pub(super) nacks_received: u64,
}

impl SentCounters {
    /// One SRTP packet leaving for the viewer; `rtx_ssrc` is its retransmission stream's.
    /// The RTP header (and its SSRC, bytes 8–11) is not encrypted.
    pub(super) fn count(&mut self, datagram: &[u8], rtx_ssrc: Option<u32>) {
        self.packets += 1;
        self.bytes += datagram.len() as u64;
        let ssrc = datagram
            .get(8..12)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if ssrc.is_some() && ssrc == rtx_ssrc {
            self.rtx += 1;
        }
    }

    fn add_to(&self, camera: &mut CameraStats) {
        camera.packets_sent += self.packets;
        camera.bytes_sent += self.bytes;
        camera.rtx_sent += self.rtx;
        camera.nacks_received += self.nacks_received;
    }
}

impl Core {
    /// The counters of the camera `peer` belongs to (none for an unknown peer).
    pub(super) fn camera_counters(&mut self, peer: PeerId) -> Option<&mut CameraStats> {
        let camera = self.members.camera_id(peer)?;
        if !self.camera_counters.contains_key(camera) {
            self.camera_counters
                .insert(camera.to_owned(), CameraStats::default());
        }
        self.camera_counters.get_mut(camera)
    }

    /// A viewer leaves: what it was sent stays counted for its camera. Call before it
    /// leaves the membership table.
    pub(super) fn retire_counters(&mut self, id: PeerId, peer: &Peer) {
        if let Some(camera) = self.camera_counters(id) {
            peer.sent.add_to(camera);
        }
    }

    /// Every camera's counters now, with its live viewers' and its viewer count.
    pub(super) fn camera_stats(&self) -> BTreeMap<String, CameraStats> {
        let mut cameras: BTreeMap<String, CameraStats> = self
            .camera_counters
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        for (id, peer) in self.peers.iter() {
            if let Some(camera) = self.members.camera_id(id) {
                peer.sent
                    .add_to(cameras.entry(camera.to_owned()).or_default());
            }
        }
        for (camera, viewers) in self.members.viewer_counts() {
            cameras.entry(camera.to_owned()).or_default().viewers = viewers;
        }
        cameras
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_on_the_retransmission_ssrc_count_as_rtx() {
        let mut sent = SentCounters::default();
        let packet = |ssrc: u32| {
            let mut p = vec![0x80, 108, 0, 1, 0, 0, 0, 0];
            p.extend(ssrc.to_be_bytes());
            p.extend([0; 20]);
            p
        };
        sent.count(&packet(1111), Some(2222));
        sent.count(&packet(2222), Some(2222));
        sent.count(&packet(2222), None);
        sent.count(&[0x80, 108, 0, 1], Some(2222));
        assert_eq!((sent.packets, sent.rtx), (4, 1));
        assert_eq!(sent.bytes, 3 * 32 + 4);
        let mut camera = CameraStats::default();
        sent.add_to(&mut camera);
        sent.add_to(&mut camera);
        assert_eq!((camera.packets_sent, camera.rtx_sent), (8, 2));
    }
}
