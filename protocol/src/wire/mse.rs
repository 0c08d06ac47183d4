//! The MSE door (`GET /api/cameras/{id}/mse`, a WebSocket), for browsers without WebRTC.
//!
//! Server → browser: a text [`MseInit`], then a binary init segment (`ftyp` + `moov`); then
//! one binary fragment (`moof` + `mdat`) per frame, and a new `MseInit` + init segment
//! whenever the picture's format changes. Text messages are also the camera-control
//! messages a `control` data channel carries (`welcome` first), or an `error`
//! ({code, message}, as in signaling) before the server closes a refused socket.
//! Browser → server: control commands, as on the data channel.

use serde::{Deserialize, Serialize};

/// The next binary message is an init segment for this format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "mse_init")]
pub struct MseInit {
    /// RFC 6381, for `MediaSource.isTypeSupported` / `addSourceBuffer`: `avc1.42c01f`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_tagged_for_the_page() {
        let init = MseInit {
            codec: "avc1.42c01f".into(),
            width: 640,
            height: 480,
        };
        let text = serde_json::to_string(&init).unwrap();
        assert_eq!(
            text,
            r#"{"type":"mse_init","codec":"avc1.42c01f","width":640,"height":480}"#
        );
        assert_eq!(serde_json::from_str::<MseInit>(&text).unwrap(), init);
        assert!(serde_json::from_str::<MseInit>(r#"{"type":"error","codec":"x"}"#).is_err());
    }
}
