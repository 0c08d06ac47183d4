//! The ICE servers each client is told to use: STUN URLs as given, and TURN URLs with
//! credentials minted per session in the TURN REST scheme that coturn's `use-auth-secret`
//! checks: username `EXPIRY:SUBJECT` (Unix seconds), password
//! `base64(HMAC-SHA1(secret, username))`. The TURN server needs no user database and a
//! leaked credential dies on its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sightline_protocol::wire::IceServer;

/// Default lifetime of TURN credentials.
pub const DEFAULT_TURN_TTL: Duration = Duration::from_secs(3600);

/// What the server hands out. Empty by default: the SFU's own address is enough on open
/// networks.
#[derive(Clone, Default)]
pub struct IceConfig {
    /// `stun:host:port` URLs, handed out as they are.
    pub stun_urls: Vec<String>,
    /// `turn:` / `turns:` URLs; they need [`Self::turn_secret`].
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub turn_secret: Option<Vec<u8>>,
    pub turn_ttl: Duration,
}

impl std::fmt::Debug for IceConfig {
    // Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_ttl", &self.turn_ttl)
            .finish()
    }
}

impl IceConfig {
    /// Check the URLs' schemes and that TURN has a secret; the error says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        for url in &self.stun_urls {
            if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
                return Err(format!(
                    "--stun-url {url:?} must start with stun: or stuns:"
                ));
            }
        }
        for url in &self.turn_urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) {
                return Err(format!(
                    "--turn-url {url:?} must start with turn: or turns:"
                ));
            }
        }
        if !self.turn_urls.is_empty() && self.turn_secret.is_none() {
            return Err("--turn-url needs --turn-secret-file (coturn's static-auth-secret)".into());
        }
        if self.turn_ttl < Duration::from_secs(60) {
            return Err("--turn-ttl must be at least 1m".into());
        }
        Ok(())
    }

    /// Whether TURN credentials are minted, so sessions must get fresh ones in time.
    pub fn expires(&self) -> bool {
        !self.turn_urls.is_empty() && self.turn_secret.is_some()
    }

    /// When a session should get fresh credentials: halfway through their life, so a
    /// connection set up just before then still has half the TTL left.
    pub fn refresh_every(&self) -> Duration {
        self.turn_ttl / 2
    }

    /// The servers for a session of `subject` (a token's subject, or the session id) at
    /// `now`.
    pub fn servers_for(&self, subject: &str, now: SystemTime) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun_urls.is_empty() {
            out.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.turn_ttl;
            // coturn reads the part before the first ':' as the expiry; the rest is free.
            let subject: String = subject.chars().filter(|c| *c != ':').collect();
            let username = format!("{}:{subject}", expiry.as_secs());
            out.push(IceServer {
                urls: self.turn_urls.clone(),
                credential: Some(turn_password(secret, &username)),
                username: Some(username),
            });
        }
        out
    }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn turn_password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IceConfig {
        IceConfig {
            stun_urls: vec!["stun:turn.example:3478".into()],
            turn_urls: vec![
                "turn:turn.example:3478?transport=udp".into(),
                "turns:turn.example:5349?transport=tcp".into(),
            ],
            turn_secret: Some(b"north-wind-secret".to_vec()),
            turn_ttl: DEFAULT_TURN_TTL,
        }
    }

    #[test]
    fn password_is_the_rfc_2104_hmac_sha1_in_base64() {
        // RFC 2202 test case 2: key "Jefe", "what do ya want for nothing?".
        assert_eq!(
            turn_password(b"Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD
                .encode(hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"))
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn turn_credentials_expire_after_the_ttl_and_name_the_subject() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = config().servers_for("porch:cam", now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:turn.example:3478"]);
        assert_eq!(servers[0].username, None);
        let turn = &servers[1];
        assert_eq!(turn.urls.len(), 2);
        let user = turn.username.as_deref().unwrap();
        assert_eq!(user, "1700003600:porchcam", "no ':' inside the subject");
        assert_eq!(
            turn.credential.as_deref(),
            Some(turn_password(b"north-wind-secret", user).as_str())
        );
    }

    #[test]
    fn nothing_configured_gives_nothing() {
        let c = IceConfig {
            turn_ttl: DEFAULT_TURN_TTL,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        assert!(c.servers_for("x", SystemTime::now()).is_empty());
        assert!(!c.expires());
    }

    #[test]
    fn bad_configurations_are_explained() {
        let mut c = config();
        c.turn_secret = None;
        assert!(c.validate().unwrap_err().contains("--turn-secret-file"));
        let mut c = config();
        c.turn_urls.push("http://x".into());
        assert!(c.validate().unwrap_err().contains("turn: or turns:"));
        let mut c = config();
        c.stun_urls = vec!["turn:x".into()];
        assert!(c.validate().unwrap_err().contains("stun:"));
        let mut c = config();
        c.turn_ttl = Duration::from_secs(5);
        assert!(c.validate().is_err());
        assert!(!format!("{:?}", config()).contains("north-wind"));
    }
}
