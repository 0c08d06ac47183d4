//! The `RtcConfig` each peer is built from: one for publishers (frame mode, so the SFU gets
//! whole frames), one for viewers (RTP mode, fed ready-made packets; no congestion-control
//! extensions).

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Rtc, RtcConfig};

use super::membership::Role;

/// H.264 Constrained Baseline level 3.1: what browsers (Safari included) all decode.
pub(crate) const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;
/// str0m's own defaults for this profile; offers may renumber them, str0m maps.
const H264_PT: u8 = 108;
const H264_RTX_PT: u8 = 109;

/// ice-lite (the SFU has a public address and answers checks, it does not make them) and
/// H.264 only, so every viewer is offered exactly the payload format the publisher sends and
/// frames can be forwarded without transcoding. The RTX payload type makes str0m answer
/// viewers' NACKs from its send buffer.
///
/// Viewers get no transport-wide congestion control extensions: the SFU runs no bandwidth
/// estimator, so the TWCC feedback a viewer would send every 50 ms (and the per-packet
/// transport sequence number and abs-send-time stamps we would write) is pure cost: it was
/// about as many datagrams in as media packets out at low bitrates. Publishers keep the
/// standard set, so their own congestion control gets TWCC feedback from us.
pub(crate) fn rtc_config(role: Role) -> RtcConfig {
    let mut config = Rtc::builder().set_ice_lite(true).clear_codecs();
    if role == Role::Viewer {
        // Viewers get ready-made RTP packets (see `feed`): str0m's frame API would
        // packetise every frame again for each of them.
        config = config.set_rtp_mode(true).clear_extension_map();
        for (id, ext) in str0m::rtp::ExtensionMap::standard().iter() {
            if !matches!(
                ext,
                Extension::TransportSequenceNumber | Extension::AbsoluteSendTime
            ) {
                config = config.set_extension(id, ext.clone());
            }
        }
    }
    config.codec_config().add_h264(
        H264_PT.into(),
        Some(H264_RTX_PT.into()),
        true,
        H264_PROFILE_LEVEL_ID,
    );
    config
}

/// The H.264 payload type negotiated on the m-line, if any.
pub(crate) fn negotiated_h264(rtc: &Rtc, mid: Mid) -> Option<Pt> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Video {
        return None;
    }
    let pts = media.remote_pts();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == Codec::H264 && pts.contains(&p.pt()))
        .map(|p| p.pt())
}
