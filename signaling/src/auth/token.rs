//! Signed tokens: HS256 JWTs that say what their holder may do with which cameras.
//!
//! A token carries a role (`view`, `control` = view plus camera control, `publish`), a camera
//! scope (one id, a list, or `*`), an expiry and an optional subject name for the logs. Only
//! HS256 is accepted: a token whose header names any other algorithm, `none` included, is
//! refused before its signature is looked at, so no algorithm confusion can let one in.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watch cameras and read their state.
    View,
    /// Watch and control cameras (settings, presets, start/stop).
    Control,
    /// Register cameras and send their video.
    Publish,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Control => "control",
            Role::Publish => "publish",
        }
    }

    /// Whether a token of this role covers `needed` (`control` includes `view`).
    pub fn covers(self, needed: Role) -> bool {
        self == needed || (self == Role::Control && needed == Role::View)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "view" => Ok(Role::View),
            "control" => Ok(Role::Control),
            "publish" => Ok(Role::Publish),
            other => Err(format!(
                "unknown role `{other}`: expected view, control or publish"
            )),
        }
    }
}

/// Which cameras a token covers: `"*"`, `"cam-1"` or `["cam-1","cam-2"]` in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(Vec<String>),
}

impl Scope {
    /// From command-line values: `*` alone, or camera ids.
    pub fn from_ids(ids: &[String]) -> Result<Scope, String> {
        if ids.is_empty() {
            return Err("name at least one camera id, or `*` for every camera".into());
        }
        if ids.iter().any(|id| id == "*") {
            return if ids.len() == 1 {
                Ok(Scope::All)
            } else {
                Err("`*` already covers every camera; give it alone".into())
            };
        }
        for id in ids {
            sightline_protocol::wire::validate_camera_id(id).map_err(|e| e.message)?;
        }
        Ok(Scope::Only(ids.to_vec()))
    }

    pub fn contains(&self, camera_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(ids) => ids.iter().any(|id| id == camera_id),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_str("*"),
            Scope::Only(ids) if ids.len() == 1 => s.serialize_str(&ids[0]),
            Scope::Only(ids) => ids.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(d)? {
            OneOrMany::One(id) if id == "*" => Ok(Scope::All),
            OneOrMany::One(id) => Ok(Scope::Only(vec![id])),
            OneOrMany::Many(ids) => Ok(Scope::Only(ids)),
        }
    }
}

/// The token's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    /// The cameras it covers.
    pub cameras: Scope,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Who holds it, for the logs (and for a publisher taking its own camera over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl Claims {
    /// Whether it has expired at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        unix_seconds(now) >= self.exp
    }
}

/// Why a token was refused. The message never repeats the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token refused: `alg: none` (unsigned) tokens are never accepted")]
    Unsigned,
    #[error("token refused: algorithm {0} is not accepted; tokens are signed with HS256")]
    WrongAlgorithm(String),
    #[error("token refused: wrong signature (not signed with this server's secret)")]
    WrongSignature,
    #[error("token expired")]
    Expired,
}

/// The server's secret: signs and checks tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Shorter secrets are refused: an HS256 key should have at least 128 bits of entropy.
pub const MIN_SECRET_BYTES: usize = 16;

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the auth secret is {} bytes; use at least {MIN_SECRET_BYTES} random bytes \
                 (e.g. `head -c 32 /dev/urandom | base64 > secret`)",
                secret.len()
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let bad_key = |e: jsonwebtoken::errors::Error| format!("unusable auth secret: {e}");
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret).map_err(bad_key)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad_key)?,
            validation,
        })
    }

    /// Read the secret from a file (surrounding whitespace ignored).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("reading the auth secret file {}: {e}", path.display()))?;
        let secret = bytes.trim_ascii();
        Self::new(secret).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Sign a token.
    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with a byte secret cannot fail")
    }

    /// Sign a token of `role` for `cameras`, valid for `ttl` from now.
    pub fn issue_for(
        &self,
        role: Role,
        cameras: Scope,
        ttl: Duration,
        sub: Option<String>,
    ) -> String {
        self.issue(&Claims {
            role,
            cameras,
            exp: unix_seconds(SystemTime::now()) + ttl.as_secs().max(1),
            sub,
        })
    }

    /// Check a token's algorithm, signature and expiry, and return what it says.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        check_algorithm(token)?;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::InvalidSignature => TokenError::WrongSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm("(mismatch)".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    TokenError::Malformed(format!("it has no `{c}` claim"))
                }
                ErrorKind::Json(e) => TokenError::Malformed(format!("bad claims: {e}")),
                _ => TokenError::Malformed(e.to_string()),
            }),
        }
    }
}

/// Read the header's `alg` ourselves first: the library refuses `none` too, but only as a
/// parse error, and the sender deserves to know why.
fn check_algorithm(token: &str) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts (header.claims.signature)".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    let h: AlgOnly = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("the header is not JSON with an `alg`".into()))?;
    match h.alg.as_str() {
        "HS256" => Ok(()),
        a if a.eq_ignore_ascii_case("none") => Err(TokenError::Unsigned),
        a => Err(TokenError::WrongAlgorithm(a.chars().take(16).collect())),
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `90s`, `15m`, `24h`, `7d` (or plain seconds).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration `{s}`: expected e.g. 90s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("bad duration `{s}`: the unit is one of s, m, h, d")),
    };
    if secs == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_token_round_trips_with_each_scope_form() {
        let k = keys();
        for (scope, json) in [
            (Scope::All, r#""*""#),
            (Scope::Only(vec!["cam".into()]), r#""cam""#),
            (Scope::Only(vec!["a".into(), "b".into()]), r#"["a","b"]"#),
        ] {
            assert_eq!(serde_json::to_string(&scope).unwrap(), json);
            let t = k.issue_for(
                Role::Control,
                scope.clone(),
                Duration::from_secs(60),
                Some("me".into()),
            );
            let c = k.verify(&t).unwrap();
            assert_eq!(
                (c.role, c.cameras, c.sub),
                (Role::Control, scope, Some("me".into()))
            );
        }
    }

    #[test]
    fn each_bad_token_gets_its_own_reason() {
        let k = keys();
        let good = k.issue_for(Role::View, Scope::All, Duration::from_secs(60), None);
        let other = TokenKeys::new(b"another-secret-of-enough-bytes!!").unwrap();
        let forged = other.issue_for(Role::View, Scope::All, Duration::from_secs(60), None);
        assert_eq!(k.verify(&forged), Err(TokenError::WrongSignature));

        let expired = k.issue(&Claims {
            role: Role::View,
            cameras: Scope::All,
            exp: unix_seconds(SystemTime::now()) - 5,
            sub: None,
        });
        assert_eq!(k.verify(&expired), Err(TokenError::Expired));

        let claims = good.split('.').nth(1).unwrap();
        let none = format!("{}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(k.verify(&none), Err(TokenError::Unsigned));
        let none_upper = format!("{}.{claims}.x", b64(r#"{"alg":"NONE"}"#));
        assert_eq!(k.verify(&none_upper), Err(TokenError::Unsigned));
        let rs = format!("{}.{claims}.x", b64(r#"{"alg":"RS256"}"#));
        assert_eq!(
            k.verify(&rs),
            Err(TokenError::WrongAlgorithm("RS256".into()))
        );

        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.e30.x",
            &format!("{}.e30.x", b64("[1]")),
        ] {
            assert!(
                matches!(k.verify(bad), Err(TokenError::Malformed(_))),
                "{bad}: {:?}",
                k.verify(bad)
            );
        }
        // Signed, but the claims are not ours.
        let hs = Header::new(Algorithm::HS256);
        let junk = jsonwebtoken::encode(
            &hs,
            &serde_json::json!({"exp": 9_999_999_999u64, "role": "admin", "cameras": "*"}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(matches!(k.verify(&junk), Err(TokenError::Malformed(_))));
        let no_exp = jsonwebtoken::encode(
            &hs,
            &serde_json::json!({"role": "view", "cameras": "*"}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(matches!(k.verify(&no_exp), Err(TokenError::Malformed(m)) if m.contains("exp")));
        // A signature for other claims does not carry over.
        let mut parts: Vec<&str> = good.split('.').collect();
        let admin = b64(r#"{"role":"control","cameras":"*","exp":9999999999}"#);
        parts[1] = &admin;
        assert_eq!(k.verify(&parts.join(".")), Err(TokenError::WrongSignature));
    }

    #[test]
    fn errors_never_repeat_the_token() {
        let k = keys();
        let other = TokenKeys::new(b"another-secret-of-enough-bytes!!").unwrap();
        let t = other.issue_for(Role::View, Scope::All, Duration::from_secs(60), None);
        let e = k.verify(&t).unwrap_err().to_string();
        for part in t.split('.') {
            assert!(!e.contains(part), "{e}");
        }
    }

    #[test]
    fn roles_scopes_and_durations() {
        assert!(Role::Control.covers(Role::View));
        assert!(!Role::View.covers(Role::Control));
        assert!(!Role::Publish.covers(Role::View));
        assert!(!Role::Control.covers(Role::Publish));
        assert_eq!("publish".parse(), Ok(Role::Publish));
        assert!("admin".parse::<Role>().is_err());
        assert_eq!(Scope::from_ids(&["*".into()]), Ok(Scope::All));
        assert!(Scope::from_ids(&[]).is_err());
        assert!(Scope::from_ids(&["*".into(), "a".into()]).is_err());
        assert!(Scope::from_ids(&["bad id".into()]).is_err());
        let s = Scope::from_ids(&["a".into(), "b".into()]).unwrap();
        assert!(s.contains("b") && !s.contains("c") && Scope::All.contains("c"));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "0s", "h", "5y", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert!(TokenKeys::new(b"short").is_err());
    }
}
