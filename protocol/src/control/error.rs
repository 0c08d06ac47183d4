//! Why a control message was refused, in a form a client can act on.

use serde::{Deserialize, Serialize};

/// Machine-readable reason in [`ControlError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlErrorCode {
    /// Not JSON, not an object, a missing or mistyped field.
    BadMessage,
    /// Larger than [`super::MAX_CONTROL_MESSAGE_BYTES`].
    TooLarge,
    /// `v` is not a version this side speaks.
    UnsupportedVersion,
    /// A `type` that is not a command.
    UnknownCommand,
    /// A setting name that does not exist.
    UnknownSetting,
    /// A value of the wrong type, out of range, off the step, not one of the choices.
    InvalidValue,
    /// The camera's source cannot honour this setting.
    Unsupported,
    /// No preset by that name.
    UnknownPreset,
    /// The viewer is view-only (decided by the server).
    Forbidden,
    /// Too many commands from this viewer; `retry_after_ms` says when to try again.
    RateLimited,
    /// The camera has no publisher with an open control channel.
    Unavailable,
    /// The publisher accepted the command but could not carry it out (encoder, camera).
    Failed,
}

impl ControlErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlErrorCode::BadMessage => "bad_message",
            ControlErrorCode::TooLarge => "too_large",
            ControlErrorCode::UnsupportedVersion => "unsupported_version",
            ControlErrorCode::UnknownCommand => "unknown_command",
            ControlErrorCode::UnknownSetting => "unknown_setting",
            ControlErrorCode::InvalidValue => "invalid_value",
            ControlErrorCode::Unsupported => "unsupported",
            ControlErrorCode::UnknownPreset => "unknown_preset",
            ControlErrorCode::Forbidden => "forbidden",
            ControlErrorCode::RateLimited => "rate_limited",
            ControlErrorCode::Unavailable => "unavailable",
            ControlErrorCode::Failed => "failed",
        }
    }
}

/// A refusal: `{"code":"invalid_value","field":"bitrate","message":"bitrate: ..."}`.
/// The message always starts with the field's name when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ControlError {
    pub code: ControlErrorCode,
    /// The setting or message field at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// With `rate_limited`: when the next command will be accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ControlError {
    pub fn new(code: ControlErrorCode, message: impl Into<String>) -> Self {
        ControlError {
            code,
            field: None,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// An error about `field`; the message is prefixed with `field: `.
    pub fn field(code: ControlErrorCode, field: &str, message: impl AsRef<str>) -> Self {
        ControlError {
            code,
            field: Some(field.to_owned()),
            message: format!("{field}: {}", message.as_ref()),
            retry_after_ms: None,
        }
    }
}
