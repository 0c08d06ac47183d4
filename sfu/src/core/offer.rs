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

#[cfg(test)]
mod tests {
    use super::video_mids;

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
