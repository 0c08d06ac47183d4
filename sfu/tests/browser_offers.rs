//! Offers as browsers write them: many codecs, audio and data m-lines next to the video.

use std::net::IpAddr;

use sightline_sfu::{Sfu, SfuConfig, SfuError, VideoCodec, ViewerAccess};

const FINGERPRINT: &str = "a=fingerprint:sha-256 3A:1B:27:5C:0F:8E:9D:44:21:6A:7B:CC:DE:01:23:45:67:89:AB:CD:EF:10:32:54:76:98:BA:DC:FE:11:22:33";

/// A Chromium-style offer: `video_dir` for the video m-line, audio recvonly, a data channel.
fn chrome_offer(video_dir: &str, with_h264: bool) -> String {
    let (pts, h264) = if with_h264 {
        (
            "96 97 102 103 108 109 45",
            "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 goog-remb\r\na=rtcp-fb:102 transport-cc\r\na=rtcp-fb:102 ccm fir\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\na=rtpmap:108 H264/90000\r\na=rtcp-fb:108 goog-remb\r\na=rtcp-fb:108 transport-cc\r\na=rtcp-fb:108 ccm fir\r\na=rtcp-fb:108 nack\r\na=rtcp-fb:108 nack pli\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n",
        )
    } else {
        ("96 97 45", "")
    };
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n{FINGERPRINT}\r\n\
a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n{FINGERPRINT}\r\n\
a=setup:actpass\r\na=mid:1\r\na=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a={video_dir}\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n{h264}\
a=rtpmap:45 AV1/90000\r\na=rtcp-fb:45 nack pli\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n{FINGERPRINT}\r\n\
a=setup:actpass\r\na=mid:2\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
    )
}

async fn start() -> sightline_sfu::SfuHandle {
    Sfu::start(SfuConfig {
        bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
        ..SfuConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn chromium_viewer_offer_is_answered_with_h264_only() {
    let sfu = start().await;
    let answer = sfu
        .subscribe(
            "cam",
            &chrome_offer("recvonly", true),
            ViewerAccess::ViewOnly,
        )
        .await
        .unwrap();
    let sdp = &answer.sdp;
    assert_eq!(answer.codec, VideoCodec::H264);
    assert!(sdp.contains("a=sendonly"), "{sdp}");
    assert!(sdp.contains("H264/90000"), "{sdp}");
    assert!(sdp.contains("profile-level-id=42e01f"), "{sdp}");
    assert!(!sdp.contains("VP8"), "{sdp}");
    assert!(!sdp.contains("AV1"), "{sdp}");
    let s = sfu.stats().await;
    assert_eq!((s.peers, s.viewers, s.tracks), (1, 1, 1));
}

#[tokio::test]
async fn chromium_publisher_offer_is_accepted() {
    let sfu = start().await;
    let answer = sfu
        .publish("cam", &chrome_offer("sendonly", true))
        .await
        .unwrap();
    assert!(answer.sdp.contains("a=recvonly"), "{}", answer.sdp);
    assert_eq!(sfu.stats().await.publishers, 1);
}

/// A browser without H.264 (Debian's Firefox ESR) is answered with VP8 alone.
#[tokio::test]
async fn viewer_offer_without_h264_is_answered_with_vp8_only() {
    let sfu = start().await;
    let answer = sfu
        .subscribe(
            "cam",
            &chrome_offer("recvonly", false),
            ViewerAccess::ViewOnly,
        )
        .await
        .unwrap();
    let sdp = &answer.sdp;
    assert_eq!(answer.codec, VideoCodec::Vp8);
    assert!(sdp.contains("VP8/90000"), "{sdp}");
    assert!(!sdp.contains("H264") && !sdp.contains("AV1"), "{sdp}");
}

#[tokio::test]
async fn offer_with_neither_codec_is_rejected_clearly() {
    let sfu = start().await;
    let vp9_and_av1 =
        chrome_offer("recvonly", false).replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP9/90000");
    match sfu
        .subscribe("cam", &vp9_and_av1, ViewerAccess::ViewOnly)
        .await
    {
        Err(SfuError::InvalidSdp(m)) => {
            assert!(m.contains("H.264 or VP8"), "{m}")
        }
        other => panic!("expected InvalidSdp, got {:?}", other.map(|a| a.sdp)),
    }
    assert_eq!(sfu.stats().await.peers, 0);
    // A publisher must send H.264.
    match sfu.publish("cam", &chrome_offer("sendonly", false)).await {
        Err(SfuError::InvalidSdp(m)) => assert!(m.contains("H.264"), "{m}"),
        other => panic!("expected InvalidSdp, got {:?}", other.map(|a| a.sdp)),
    }
}

#[tokio::test]
async fn offer_without_video_is_rejected_clearly() {
    let sfu = start().await;
    let offer = chrome_offer("recvonly", true);
    let audio_only: String = offer[..offer.find("m=video").unwrap()].to_owned();
    let audio_only = audio_only.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0");
    match sfu
        .subscribe("cam", &audio_only, ViewerAccess::ViewOnly)
        .await
    {
        Err(SfuError::InvalidSdp(m)) => assert!(m.contains("video"), "{m}"),
        other => panic!("expected InvalidSdp, got {:?}", other.map(|a| a.sdp)),
    }
}

/// A WHIP client's offer (as OBS or ffmpeg write them): sendonly audio and one H.264
/// format, with `fmtp` as its parameters.
fn whip_offer(fmtp: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n{FINGERPRINT}\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n{FINGERPRINT}\r\n\
a=setup:actpass\r\na=mid:1\r\na=sendonly\r\na=rtcp-mux\r\n\
a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 {fmtp}\r\n"
    )
}

/// WHIP clients send whatever profile their encoder makes: every profile browsers decode is
/// taken, packetization-mode 0 (one NAL unit per packet, no fragmentation) is not.
#[tokio::test]
async fn publisher_offers_in_any_browser_profile_are_accepted_and_mode_0_is_not() {
    let sfu = start().await;
    for profile in ["42e01f", "42001f", "4d001f", "64001f", "640028", "64002a"] {
        let offer = whip_offer(&format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
        ));
        let answer = sfu
            .publish(&format!("cam-{profile}"), &offer)
            .await
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert!(
            answer.sdp.contains("a=recvonly"),
            "{profile}: {}",
            answer.sdp
        );
        assert!(
            answer.sdp.contains("H264/90000"),
            "{profile}: {}",
            answer.sdp
        );
    }
    let refused = |fmtp: &str| {
        let sfu = sfu.clone();
        let offer = whip_offer(fmtp);
        async move {
            sfu.publish("cam-bad", &offer)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let mode0 = refused("packetization-mode=0;profile-level-id=42e01f").await;
    assert!(mode0.contains("packetization-mode 1"), "{mode0}");
    let high10 = refused("packetization-mode=1;profile-level-id=6e001f").await;
    assert!(high10.contains("H.264"), "{high10}");
}
