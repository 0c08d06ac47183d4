//! The `RtcConfig` each peer is built from: one for publishers (frame mode, so the SFU gets
//! whole frames), one for viewers (RTP mode, fed ready-made packets; no congestion-control
//! extensions).

use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::{from_feature_flags, CryptoProvider};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind, Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Rtc, RtcConfig};

use super::membership::Role;
use crate::VideoCodec;

/// H.264 Constrained Baseline level 3.1: what browsers (Safari included) all decode.
pub(crate) const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;
/// str0m's own defaults for this profile; offers may renumber them, str0m maps.
const H264_PT: u8 = 108;
const H264_RTX_PT: u8 = 109;
/// The other H.264 profiles browsers decode (Baseline, Main, High, level 3.1), each with
/// its RTX payload type. Only publishers are offered them: a WHIP client (OBS, ffmpeg,
/// GStreamer) may send any of them, and the SFU forwards access units whatever their
/// profile (browsers decode by the stream's SPS, not by what was negotiated).
const H264_MORE_PROFILES: [(u32, u8, u8); 3] = [
    (0x42001f, 110, 111),
    (0x4d001f, 112, 113),
    (0x64001f, 114, 115),
];
const VP8_PT: u8 = 96;
const VP8_RTX_PT: u8 = 97;
/// Where viewers' `playout-delay` header extension goes (see `viewer_tx`) unless their
/// offer numbers it: a number the standard map leaves free.
const PLAYOUT_DELAY_EXT_ID: u8 = 12;
/// How often str0m reports a peer's statistics: a publisher's NACKs sent, a viewer's
/// received.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// ice-lite (the SFU has a public address and answers checks, it does not make them), and
/// the two codecs a publisher sends: H.264, and VP8 for viewers without H.264 (only while
/// such viewers watch). Each viewer is sent exactly one payload format the publisher
/// sends, so frames are forwarded without transcoding. The RTX payload types make str0m
/// answer viewers' NACKs from its send buffer.
///
/// Viewers get no transport-wide congestion control extensions: the SFU runs no bandwidth
/// estimator, so the TWCC feedback a viewer would send every 50 ms (and the per-packet
/// transport sequence number and abs-send-time stamps we would write) is pure cost: it was
/// about as many datagrams in as media packets out at low bitrates. Publishers keep the
/// standard set, so their own congestion control gets TWCC feedback from us. Viewers also
/// get `playout-delay`, so browsers show each frame as soon as it is decoded.
pub(crate) fn rtc_config(role: Role, codecs: &[VideoCodec], cert: Option<&DtlsCert>) -> RtcConfig {
    let mut config = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .set_stats_interval(Some(STATS_INTERVAL));
    if let Some(cert) = cert {
        config = config.set_dtls_cert(cert.clone());
    }
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
        config = config.set_extension(PLAYOUT_DELAY_EXT_ID, Extension::PlayoutDelay);
    }
    for codec in codecs {
        match codec {
            VideoCodec::H264 => {
                config.codec_config().add_h264(
                    H264_PT.into(),
                    Some(H264_RTX_PT.into()),
                    true,
                    H264_PROFILE_LEVEL_ID,
                );
                if role == Role::Publisher {
                    for (profile, pt, rtx) in H264_MORE_PROFILES {
                        config
                            .codec_config()
                            .add_h264(pt.into(), Some(rtx.into()), true, profile);
                    }
                }
            }
            VideoCodec::Vp8 => config.codec_config().add_config(
                VP8_PT.into(),
                Some(VP8_RTX_PT.into()),
                Codec::Vp8,
                Frequency::NINETY_KHZ,
                None,
                FormatParams::default(),
            ),
        }
    }
    config
}

/// The `codec` payload type negotiated on the m-line, if any.
pub(crate) fn negotiated(rtc: &Rtc, mid: Mid, codec: VideoCodec) -> Option<Pt> {
    let media = rtc.media(mid)?;
    if media.kind() != MediaKind::Video {
        return None;
    }
    let want = match codec {
        VideoCodec::H264 => Codec::H264,
        VideoCodec::Vp8 => Codec::Vp8,
    };
    let pts = media.remote_pts();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == want && pts.contains(&p.pt()))
        .map(|p| p.pt())
}

/// The one DTLS certificate every peer of a core presents. Without it str0m makes a key pair
/// and a self-signed certificate for each new peer, on the media loop, delaying every packet
/// behind it. Peers authenticate the certificate by the fingerprint in the SDP exchanged over
/// signaling, not by its uniqueness, so one per server is as safe (it is what Janus does);
/// it changes when the server restarts. `None` (str0m makes one per peer) only if the crypto
/// provider cannot make certificates.
pub(crate) fn server_certificate() -> Option<DtlsCert> {
    match CryptoProvider::get_default() {
        Some(provider) => provider.dtls_provider.generate_certificate(),
        None => from_feature_flags().dtls_provider.generate_certificate(),
    }
}
