//! An `rtsp://` URL as the source needs it: the address to DESCRIBE (credentials and our own
//! `transport` parameter taken out, any camera-specific query kept), the credentials, the
//! transport, and a name for logs that never shows the password. Plain code, tested without
//! sockets.

use percent_encoding::percent_decode_str;
use url::Url;

/// How RTP travels from the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved on the RTSP TCP connection (the default: passes NAT and firewalls, no
    /// loss).
    Tcp,
    /// Separate UDP ports (`?transport=udp`): lower latency on a clean LAN, no
    /// retransmission.
    Udp,
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What is sent in DESCRIBE: no credentials, no `transport=` parameter.
    pub url: Url,
    pub user: Option<String>,
    pub password: Option<String>,
    pub transport: Transport,
    /// For logs and state reports: the URL with the password replaced by `***`.
    pub shown: String,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let shown = crate::source::url::redact(s);
        let bad = |why: &str| format!("bad RTSP URL `{shown}`: {why}");
        let mut url = Url::parse(s.trim()).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "rtsp" {
            return Err(bad("the scheme must be rtsp://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let decode = |part: &str| -> Result<String, String> {
            percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad("user or password is not UTF-8 after %-decoding"))
        };
        let user = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        if password.is_some() && user.is_none() {
            return Err(bad("a password without a user"));
        }
        let mut transport = Transport::Tcp;
        let mut kept = Vec::new();
        let mut ours = false;
        for (k, v) in url.query_pairs() {
            if k == "transport" {
                ours = true;
                transport = match v.to_ascii_lowercase().as_str() {
                    "tcp" => Transport::Tcp,
                    "udp" => Transport::Udp,
                    other => return Err(bad(&format!("transport `{other}`: use tcp or udp"))),
                };
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
        // Rewrite the query only to take our parameter out: a camera's own query goes as
        // it was written.
        if ours && kept.is_empty() {
            url.set_query(None);
        } else if ours {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        // `Url` keeps the userinfo unless told otherwise; the camera gets it through the
        // authentication exchange, not in the request line.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Target {
            url,
            user,
            password,
            transport,
            shown,
        })
    }

    /// The path asked for, for "no stream at PATH" errors.
    pub fn path(&self) -> &str {
        self.url.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_credentials_transport_and_keeps_the_camera_query() {
        let t = Target::parse("rtsp://admin:p%40ss@10.0.0.9:8554/live/ch1?subtype=0&transport=udp")
            .unwrap();
        assert_eq!(t.url.as_str(), "rtsp://10.0.0.9:8554/live/ch1?subtype=0");
        assert_eq!(t.user.as_deref(), Some("admin"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.transport, Transport::Udp);
        assert_eq!(t.path(), "/live/ch1");
        assert!(
            !t.shown.contains("p%40ss") && !t.shown.contains("p@ss"),
            "{}",
            t.shown
        );
    }

    #[test]
    fn defaults_to_tcp_without_credentials() {
        let t = Target::parse("rtsp://cam.local/stream").unwrap();
        assert_eq!(t.url.as_str(), "rtsp://cam.local/stream");
        assert_eq!(
            (t.user, t.password, t.transport),
            (None, None, Transport::Tcp)
        );
        let t = Target::parse("rtsp://cam.local/s?transport=TCP").unwrap();
        assert_eq!(
            (t.url.as_str(), t.transport),
            ("rtsp://cam.local/s", Transport::Tcp)
        );
        // A user without a password is allowed (some cameras have empty passwords).
        let t = Target::parse("rtsp://viewer@cam.local/s").unwrap();
        assert_eq!((t.user.as_deref(), t.password), (Some("viewer"), None));
    }

    #[test]
    fn malformed_urls_are_clear_errors_without_the_password() {
        for (input, expect) in [
            ("rtsp://cam/s?transport=sctp", "use tcp or udp"),
            ("rtsp://:secret@cam/s", "without a user"),
            ("http://cam/s", "rtsp://"),
            ("rtsp://", "RTSP URL"),
            ("rtsp://u:secret@[::1/s", "RTSP URL"),
            ("rtsp://u:%ff%fe@cam/s", "UTF-8"),
        ] {
            let err = Target::parse(input).unwrap_err();
            assert!(err.contains(expect), "{input}: {err}");
            assert!(
                !err.contains("secret") && !err.contains("%ff"),
                "{input}: {err}"
            );
        }
    }
}
