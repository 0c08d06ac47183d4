//! Who may control cameras: the server's policy for each viewer, as plain code.
//!
//! With a control key configured (`--control-key`), a viewer that presents it in its
//! `subscribe` may control; one that presents nothing watches view-only; a wrong key is
//! refused. Without a key, viewers connecting from this machine (loopback) may control, so
//! the local demo works out of the box, and everyone else watches view-only.

use std::net::IpAddr;

use sightline_sfu::ViewerAccess;

use sightline_protocol::wire::{ErrorCode, WireError};

/// The access a viewer gets, or a refusal for a wrong key.
pub(crate) fn viewer_access(
    configured_key: Option<&str>,
    presented_key: Option<&str>,
    remote: IpAddr,
) -> Result<ViewerAccess, WireError> {
    match (configured_key, presented_key) {
        (Some(key), Some(given)) if same_secret(key, given) => Ok(ViewerAccess::Control),
        (Some(_), Some(_)) => Err(WireError::new(
            ErrorCode::Forbidden,
            "control_key: wrong key; subscribe without a key to watch view-only",
        )),
        (Some(_), None) => Ok(ViewerAccess::ViewOnly),
        (None, _) if remote.to_canonical().is_loopback() => Ok(ViewerAccess::Control),
        (None, _) => Ok(ViewerAccess::ViewOnly),
    }
}

/// Compare without stopping at the first difference, so timing tells nothing about the key.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 2));

    #[test]
    fn the_right_key_gives_control_from_anywhere() {
        for ip in [LOOPBACK, REMOTE] {
            assert_eq!(
                viewer_access(Some("s3cret"), Some("s3cret"), ip),
                Ok(ViewerAccess::Control)
            );
        }
    }

    #[test]
    fn with_a_key_configured_loopback_is_not_enough() {
        assert_eq!(
            viewer_access(Some("s3cret"), None, LOOPBACK),
            Ok(ViewerAccess::ViewOnly)
        );
        assert_eq!(
            viewer_access(Some("s3cret"), None, REMOTE),
            Ok(ViewerAccess::ViewOnly)
        );
    }

    #[test]
    fn a_wrong_key_is_refused() {
        for wrong in ["s3cre", "s3cret!", "", "S3CRET"] {
            let e = viewer_access(Some("s3cret"), Some(wrong), LOOPBACK).unwrap_err();
            assert_eq!(e.code, ErrorCode::Forbidden, "{wrong}");
            assert!(e.message.starts_with("control_key:"), "{}", e.message);
        }
    }

    #[test]
    fn without_a_key_only_loopback_controls() {
        assert_eq!(
            viewer_access(None, None, LOOPBACK),
            Ok(ViewerAccess::Control)
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(viewer_access(None, None, mapped), Ok(ViewerAccess::Control));
        assert_eq!(
            viewer_access(None, None, "::1".parse().unwrap()),
            Ok(ViewerAccess::Control)
        );
        assert_eq!(
            viewer_access(None, None, REMOTE),
            Ok(ViewerAccess::ViewOnly)
        );
        // A key presented to a server without one grants nothing.
        assert_eq!(
            viewer_access(None, Some("x"), REMOTE),
            Ok(ViewerAccess::ViewOnly)
        );
    }
}
