//! Who may do what: the server's access policy, as plain code.
//!
//! Three modes, chosen at start:
//! * **tokens** (`--auth-secret-file`): every client presents a signed token ([`token`]) on
//!   the WebSocket upgrade or the HTTP request (`Authorization: Bearer T` or `?token=T`);
//!   it decides the client's role and cameras. Clients on loopback get nothing for free
//!   (behind a reverse proxy on this host every client looks local).
//! * **loopback only** (the default): the server listens on loopback, and every client
//!   holds every role, as on a developer's machine or in the demo. A live camera is never
//!   taken over.
//! * **insecure** (`--insecure`): the same open policy on any address, for a trusted LAN.
//!
//! A connection's [`Grant`] is decided once, when it connects. A token that expires later
//! does not cut what was started with it (a viewer keeps its video), but each new
//! `subscribe` or `register` checks the expiry again.

pub mod failures;
pub mod token;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use sightline_protocol::wire::{ErrorCode, WireError};
use sightline_sfu::ViewerAccess;

use failures::AuthFailures;
pub use token::{parse_ttl, Claims, Role, Scope, TokenError, TokenKeys};

/// How the server decides who may do what.
#[derive(Clone)]
pub enum AuthMode {
    /// Listening on loopback only; every client may do everything.
    LoopbackOnly,
    /// `--insecure`: every client may do everything, from anywhere.
    Insecure,
    /// `--auth-secret-file`: every client needs a token.
    Tokens(Box<TokenKeys>),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMode::LoopbackOnly => "LoopbackOnly",
            AuthMode::Insecure => "Insecure",
            AuthMode::Tokens(_) => "Tokens(***)",
        })
    }
}

/// What one connection may do, decided when it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No tokens on this server: every role, every camera.
    Open,
    /// What its token says.
    Token(Claims),
}

impl Grant {
    /// May this connection act as `needed` on `camera_id` now? `forbidden` for a role or a
    /// camera its token does not cover, `unauthorized` once the token has expired.
    pub fn check(&self, needed: Role, camera_id: &str, now: SystemTime) -> Result<(), WireError> {
        let Grant::Token(claims) = self else {
            return Ok(());
        };
        if claims.expired_at(now) {
            return Err(WireError::new(
                ErrorCode::Unauthorized,
                "token expired: reconnect with a new token",
            ));
        }
        if !claims.role.covers(needed) {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!(
                    "this token's role is `{}`; `{}` on camera `{camera_id}` needs `{}`",
                    claims.role,
                    match needed {
                        Role::View => "watching",
                        Role::Control => "controlling",
                        Role::Publish => "publishing",
                    },
                    needed
                ),
            ));
        }
        if !claims.cameras.contains(camera_id) {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                format!("this token does not cover camera `{camera_id}`"),
            ));
        }
        Ok(())
    }

    /// Whether camera lists and camera events shown to this connection include `camera_id`.
    pub fn sees(&self, camera_id: &str) -> bool {
        match self {
            Grant::Open => true,
            Grant::Token(c) => c.cameras.contains(camera_id),
        }
    }

    /// What a viewer with this grant may do on its control channel.
    pub fn viewer_access(&self) -> ViewerAccess {
        match self {
            Grant::Token(c) if c.role != Role::Control => ViewerAccess::ViewOnly,
            _ => ViewerAccess::Control,
        }
    }

    /// The token's subject, for logs and same-publisher takeover.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Grant::Token(c) => c.sub.as_deref(),
            Grant::Open => None,
        }
    }
}

/// A connection refused before it could do anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub error: WireError,
    /// HTTP status for a plain request: 401 or 429.
    pub status: u16,
}

/// The policy plus its memory of failed attempts.
#[derive(Debug)]
pub struct Auth {
    mode: AuthMode,
    failures: Mutex<AuthFailures>,
}

impl Auth {
    pub fn new(mode: AuthMode) -> Self {
        Auth {
            mode,
            failures: Mutex::default(),
        }
    }

    pub fn mode(&self) -> &AuthMode {
        &self.mode
    }

    /// Decide what a connection from `remote`, presenting `token`, may do.
    pub fn admit(
        &self,
        remote: IpAddr,
        token: Option<&str>,
        now: Instant,
    ) -> Result<Grant, Refused> {
        let AuthMode::Tokens(keys) = &self.mode else {
            return Ok(Grant::Open);
        };
        let why = match token.map(|t| keys.verify(t)) {
            Some(Ok(claims)) => return Ok(Grant::Token(claims)),
            Some(Err(e)) => e.to_string(),
            None => "this server needs a token: send `Authorization: Bearer TOKEN` or add \
                     `?token=TOKEN` to the URL"
                .to_string(),
        };
        let mut failures = self.failures.lock().unwrap();
        if let Some(wait) = failures.blocked(remote, now) {
            return Err(Refused {
                error: WireError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many failed authentications from this address; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                ),
                status: 429,
            });
        }
        if failures.record(remote, now) {
            tracing::warn!(%remote, "too many failed authentications; refusing this address for a while");
        }
        Err(Refused {
            error: WireError::new(ErrorCode::Unauthorized, why),
            status: 401,
        })
    }
}

/// The token a request presents: `Authorization: Bearer T`, else `?token=T`.
pub fn presented_token<'a>(
    authorization: Option<&'a str>,
    query: Option<&'a str>,
) -> Option<String> {
    if let Some(value) = authorization {
        let mut parts = value.trim().splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next()) {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Some(token.trim().to_string());
            }
        }
    }
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn grant(role: Role, cameras: &[&str]) -> Grant {
        let ids: Vec<String> = cameras.iter().map(|s| s.to_string()).collect();
        Grant::Token(Claims {
            role,
            cameras: Scope::from_ids(&ids).unwrap(),
            exp: u64::MAX / 2,
            sub: Some("alice".into()),
        })
    }

    #[test]
    fn roles_and_scopes_decide() {
        let now = SystemTime::now();
        let view = grant(Role::View, &["a"]);
        assert!(view.check(Role::View, "a", now).is_ok());
        let e = view.check(Role::View, "b", now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(
            e.message.contains("does not cover camera `b`"),
            "{}",
            e.message
        );
        let e = view.check(Role::Publish, "a", now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("role is `view`"), "{}", e.message);
        assert_eq!(view.viewer_access(), ViewerAccess::ViewOnly);

        let control = grant(Role::Control, &["*"]);
        assert!(control.check(Role::View, "anything", now).is_ok());
        assert_eq!(control.viewer_access(), ViewerAccess::Control);
        assert_eq!(
            control.check(Role::Publish, "x", now).unwrap_err().code,
            ErrorCode::Forbidden
        );
        let publish = grant(Role::Publish, &["a", "b"]);
        assert!(publish.check(Role::Publish, "b", now).is_ok());
        assert_eq!(
            publish.check(Role::View, "b", now).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert!(publish.sees("a") && !publish.sees("c"));
        assert!(Grant::Open.check(Role::Publish, "x", now).is_ok());
        assert_eq!(Grant::Open.viewer_access(), ViewerAccess::Control);
    }

    #[test]
    fn an_expired_grant_is_unauthorized_for_new_actions() {
        let Grant::Token(mut c) = grant(Role::View, &["a"]) else {
            unreachable!()
        };
        c.exp = 1000;
        let e = Grant::Token(c)
            .check(Role::View, "a", SystemTime::now())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("expired"));
    }

    #[test]
    fn admission_with_tokens_counts_failures_but_never_blocks_a_valid_token() {
        let k = keys();
        let auth = Auth::new(AuthMode::Tokens(Box::new(k.clone())));
        let now = Instant::now();
        let e = auth.admit(REMOTE, None, now).unwrap_err();
        assert_eq!((e.error.code, e.status), (ErrorCode::Unauthorized, 401));
        assert!(e.error.message.contains("needs a token"));
        for _ in 1..failures::MAX_FAILURES {
            let e = auth.admit(REMOTE, Some("garbage"), now).unwrap_err();
            assert_eq!(e.error.code, ErrorCode::Unauthorized);
        }
        let e = auth.admit(REMOTE, Some("garbage"), now).unwrap_err();
        assert_eq!((e.error.code, e.status), (ErrorCode::RateLimited, 429));
        let good = k.issue_for(Role::View, Scope::All, Duration::from_secs(60), None);
        assert!(matches!(
            auth.admit(REMOTE, Some(&good), now),
            Ok(Grant::Token(_))
        ));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 9, 9));
        assert_eq!(
            auth.admit(other, None, now).unwrap_err().error.code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn open_modes_admit_everyone() {
        for mode in [AuthMode::LoopbackOnly, AuthMode::Insecure] {
            let auth = Auth::new(mode);
            assert_eq!(
                auth.admit(REMOTE, Some("x"), Instant::now()),
                Ok(Grant::Open)
            );
        }
        assert_eq!(
            format!("{:?}", AuthMode::Tokens(Box::new(keys()))),
            "Tokens(***)"
        );
    }

    #[test]
    fn tokens_are_found_in_the_header_or_the_query() {
        assert_eq!(
            presented_token(Some("Bearer abc.d"), None).as_deref(),
            Some("abc.d")
        );
        assert_eq!(
            presented_token(Some("bearer  x "), None).as_deref(),
            Some("x")
        );
        assert_eq!(
            presented_token(Some("Basic zzz"), Some("a=1&token=t%2Eu")).as_deref(),
            Some("t.u")
        );
        assert_eq!(presented_token(None, Some("token=")), None);
        assert_eq!(presented_token(None, Some("tokens=x&y")), None);
        assert_eq!(presented_token(Some("Bearer"), None), None);
        assert_eq!(presented_token(None, None), None);
    }
}
