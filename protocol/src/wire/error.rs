//! Why a signaling message was refused.

use serde::{Deserialize, Serialize};

/// Machine-readable reason in [`ServerMessage::Error`](super::ServerMessage::Error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON that is not one of the known messages.
    BadMessage,
    /// A `type` the server does not know.
    UnknownType,
    /// Larger than [`MAX_MESSAGE_BYTES`](super::MAX_MESSAGE_BYTES).
    TooLarge,
    /// A field has a value out of range (empty id, zero width, ...).
    InvalidField,
    /// The SDP could not be parsed or offers nothing we can use (no H.264, no video).
    InvalidSdp,
    /// The ICE candidate could not be parsed.
    InvalidCandidate,
    /// Subscribe to a camera id the server has never seen.
    UnknownCamera,
    /// Register a camera id that already has a live publisher.
    CameraAlreadyLive,
    /// The message does not fit the session's state (offer before register/subscribe,
    /// register twice, subscribe from a publisher...).
    WrongState,
    /// The media engine failed; the message says why.
    Internal,
    /// Not allowed for this session: its token's role or cameras do not cover it, or the
    /// camera is held by another publisher.
    Forbidden,
    /// No valid token: missing, malformed, expired, badly signed, or unsigned (`alg: none`);
    /// the message says which.
    Unauthorized,
    /// Too many failed authentications from this address; retry later.
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidSdp => "invalid_sdp",
            ErrorCode::InvalidCandidate => "invalid_candidate",
            ErrorCode::UnknownCamera => "unknown_camera",
            ErrorCode::CameraAlreadyLive => "camera_already_live",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::Internal => "internal",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

/// A refusal: what goes back to the sender in [`ServerMessage::Error`](super::ServerMessage::Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_refusals_have_snake_case_names() {
        for (code, name) in [
            (ErrorCode::Unauthorized, "unauthorized"),
            (ErrorCode::Forbidden, "forbidden"),
            (ErrorCode::RateLimited, "rate_limited"),
        ] {
            assert_eq!(code.as_str(), name);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }
}
