//! The names every side checks the same way: camera ids, control request ids (and preset
//! names). The server, the SFU, the publisher and the web client all apply these rules, so
//! they live in one place.

use crate::wire::{ErrorCode, WireError};

/// Longest camera id accepted at registration.
pub const MAX_CAMERA_ID_LEN: usize = 64;

/// Longest control `request_id` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

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
    fn request_ids() {
        assert_eq!(validate_request_id("r1"), Ok(()));
        assert_eq!(validate_request_id(&"x".repeat(MAX_REQUEST_ID_LEN)), Ok(()));
        assert!(validate_request_id("").is_err());
        assert!(validate_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).is_err());
    }
}
