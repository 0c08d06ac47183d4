//! ICE servers the server hands its clients (the shape of WebRTC's `RTCIceServer`).

use serde::{Deserialize, Serialize};

/// One STUN or TURN server. TURN entries carry short-lived credentials (TURN REST: the
/// username is `expiry:subject`, the credential an HMAC of it under a secret the TURN server
/// shares), so a client asks again before they expire: the server sends fresh ones in
/// `ice_servers` messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp`, `turns:host:port?transport=tcp`.
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
