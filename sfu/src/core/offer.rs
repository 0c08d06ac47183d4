//! What the SFU needs to know about an offer beyond what str0m parses.

/// The `a=mid` of every `m=video` section, in order. str0m reports new m-lines only through
/// events after the connection starts; the answer must be judged before it is sent.
pub(crate) fn video_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
        } else if in_video {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                mids.push(mid.trim().to_owned());
            }
        }
    }
    mids
}

/// Whether the offer has a data channel section (`m=application`).
pub(crate) fn offers_data_channel(sdp: &str) -> bool {
    sdp.lines()
        .any(|line| line.trim().starts_with("m=application "))
}

/// Whether any `m=video` section offers H.264 (an `a=rtpmap:<pt> H264/90000` line).
pub(crate) fn offers_h264(sdp: &str) -> bool {
    let mut in_video = false;
    sdp.lines().map(str::trim).any(|line| {
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video ");
            return false;
        }
        in_video
            && line
                .strip_prefix("a=rtpmap:")
                .and_then(|r| r.split_whitespace().nth(1))
                .is_some_and(|codec| codec.to_ascii_uppercase().starts_with("H264/"))
    })
}

#[cfg(test)]
mod tests {
    use super::{offers_h264, video_mids};

    #[test]
    fn finds_h264_in_video_sections_only() {
        let h264 = "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\n\
                    a=rtpmap:102 h264/90000\r\n";
        assert!(offers_h264(h264));
        let vp8 = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(!offers_h264(vp8), "H.264 outside video does not count");
        assert!(!offers_h264(""));
        assert!(!offers_h264(
            "m=video 9 x 96\r\na=rtpmap:\r\na=rtpmap:96\r\n"
        ));
    }

    #[test]
    fn finds_video_mids_only() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=mid:1\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v2\r\n";
        assert_eq!(video_mids(sdp), vec!["1", "v2"]);
        assert!(video_mids("").is_empty());
    }
}
