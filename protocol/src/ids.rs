//! The names every side checks the same way: camera ids, control request ids and preset
//! names. The server, the publisher and the web client apply these rules, so they live in one
//! place.

use crate::control::{ControlError, ControlErrorCode};
use crate::wire::{ErrorCode, WireError};

/// Longest camera id accepted at registration.
pub const MAX_CAMERA_ID_LEN: usize = 64;

/// Longest control `request_id` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Longest preset name accepted.
pub const MAX_PRESET_NAME_LEN: usize = 32;

/// The presets every camera has (the publisher adapts them to its source). They cannot be
/// saved over, deleted or renamed.
pub const BUILT_IN_PRESETS: &[&str] = &["low_bandwidth", "balanced", "hd"];

/// Camera ids appear in URLs, logs and file names: keep them to a safe alphabet.
pub fn validate_camera_id(id: &str) -> Result<(), WireError> {
    let invalid = |message: String| WireError::new(ErrorCode::InvalidField, message);
    if id.is_empty() || id.len() > MAX_CAMERA_ID_LEN {
        return Err(invalid(format!(
            "camera_id: must be 1..{MAX_CAMERA_ID_LEN} characters"
        )));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(format!(
            "camera_id: `{id}` may only hold letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

/// A command's `request_id` is echoed in its reply and logged: 1..=[`MAX_REQUEST_ID_LEN`]
/// bytes. The error says what is wrong, for the caller to prefix with the command's type.
pub fn validate_request_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN {
        return Err(format!("request_id must be 1..={MAX_REQUEST_ID_LEN} bytes"));
    }
    Ok(())
}

/// Preset names go into file names and UI labels: 1..=[`MAX_PRESET_NAME_LEN`] letters,
/// digits, `-`, `_` or spaces, not starting or ending with a space (so `"night"` and
/// `" night"` cannot be two presets). Checked for names from viewers (`apply_preset`,
/// `save_preset`) and for names read back from a publisher's settings file.
pub fn validate_preset_name(name: &str) -> Result<(), ControlError> {
    let invalid =
        |message: String| ControlError::field(ControlErrorCode::InvalidValue, "name", message);
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
    if name.trim().is_empty() || name.chars().count() > MAX_PRESET_NAME_LEN || !ok_chars {
        return Err(invalid(format!(
            "{name:?}: 1..={MAX_PRESET_NAME_LEN} letters, digits, '-', '_' or spaces"
        )));
    }
    if name.trim() != name {
        return Err(invalid(format!(
            "{name:?}: must not start or end with a space"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_ids() {
        for ok in ["a", "cam-1", "Porch_2.left", &"x".repeat(MAX_CAMERA_ID_LEN)] {
            assert_eq!(validate_camera_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "../etc", "a b", "é", &"x".repeat(MAX_CAMERA_ID_LEN + 1)] {
            let e = validate_camera_id(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidField, "{bad}");
            assert!(e.message.starts_with("camera_id: "), "{}", e.message);
        }
    }

    #[test]
    fn preset_names() {
        for ok in [
            "night",
            "low_bandwidth",
            "My preset-2",
            &"p".repeat(MAX_PRESET_NAME_LEN),
        ] {
            assert_eq!(validate_preset_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            " ",
            "../etc",
            "a/b",
            "é",
            &"p".repeat(MAX_PRESET_NAME_LEN + 1),
        ] {
            let e = validate_preset_name(bad).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ControlErrorCode::InvalidValue, Some("name")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn preset_names_do_not_start_or_end_with_a_space() {
        for bad in [" night", "night ", "  night  "] {
            let e = validate_preset_name(bad).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ControlErrorCode::InvalidValue, Some("name")),
                "{bad:?}"
            );
            assert!(
                e.message.contains("start or end with a space"),
                "{}",
                e.message
            );
        }
        // Spaces inside are fine.
        assert_eq!(validate_preset_name("late night"), Ok(()));
    }

    #[test]
    fn request_ids() {
        assert_eq!(validate_request_id("r1"), Ok(()));
        assert_eq!(validate_request_id(&"x".repeat(MAX_REQUEST_ID_LEN)), Ok(()));
        assert!(validate_request_id("").is_err());
        assert!(validate_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).is_err());
    }
}
