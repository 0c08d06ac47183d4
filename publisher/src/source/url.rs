//! The `--source` option: one URL-like string naming where frames come from. Parsing is plain
//! code so every form (and every malformed one) is tested without opening anything.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::PushAccess;

/// Every source form `--source` accepts, for `--help` and error messages.
pub const SOURCE_FORMS: &[&str] = &[
    "test-pattern",
    "v4l2:INDEX | v4l2:NAME (camera:INDEX | camera:NAME on any system)",
    "esp32-tcp://HOST:PORT",
    "esp32-push://ADDR:PORT[?allow=CIDR[,CIDR...]][&key=KEY]",
    "http://… | https://… (MJPEG stream or JPEG snapshot)",
    "rtsp://[USER:PASS@]HOST[:PORT]/PATH",
    "file:PATH (MJPEG file)",
];

/// Which local camera: by index (`v4l2:0`) or by (part of) its name (`v4l2:HD Webcam`).
/// `camera:` is the same on every system (V4L2 on Linux, Media Foundation on Windows,
/// AVFoundation on macOS), so a Windows user need not write `v4l2:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V4l2Device {
    Index(u32),
    Name(String),
}

/// A parsed `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceUrl {
    /// The built-in synthetic pattern with a frame-number barcode.
    TestPattern,
    /// A USB/V4L2 camera through nokhwa.
    V4l2(V4l2Device),
    /// An ESP32-CAM that serves one JPEG per TCP connection: connect, read until close, repeat.
    Esp32Tcp { host: String, port: u16 },
    /// Listen here; devices connect out and push JPEGs (one or several per connection).
    /// `access` says which devices may (`?allow=`, `?key=`; by default loopback only).
    Esp32Push {
        bind: SocketAddr,
        access: PushAccess,
    },
    /// `multipart/x-mixed-replace` MJPEG stream or a single-JPEG snapshot URL (told apart by
    /// the response's Content-Type). The whole URL, `http://` or `https://`.
    Http { url: String },
    /// H.264 over RTSP. The whole URL, credentials included.
    Rtsp { url: String },
    /// An MJPEG file: 5-digit-length-prefixed frames (the seed's `movie.Mjpeg`) or plain
    /// concatenated JPEGs, looped.
    File { path: PathBuf },
}

impl FromStr for SourceUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |why: &str| format!("bad --source `{}`: {why}", redact(s));
        if s == "test-pattern" {
            return Ok(SourceUrl::TestPattern);
        }
        if let Some(dev) = s
            .strip_prefix("v4l2:")
            .or_else(|| s.strip_prefix("camera:"))
        {
            let dev = dev.trim_start_matches("//");
            if dev.is_empty() {
                return Err(bad("give a device index or name, e.g. v4l2:0"));
            }
            return Ok(SourceUrl::V4l2(match dev.parse::<u32>() {
                Ok(i) => V4l2Device::Index(i),
                Err(_) => V4l2Device::Name(dev.to_owned()),
            }));
        }
        if let Some(rest) = s.strip_prefix("esp32-tcp://") {
            let (host, port) = split_host_port(rest).map_err(|e| bad(&e))?;
            return Ok(SourceUrl::Esp32Tcp { host, port });
        }
        if let Some(rest) = s.strip_prefix("esp32-push://") {
            let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
            let bind = addr
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .map_err(|_| {
                    bad("expected esp32-push://ADDR:PORT, e.g. esp32-push://0.0.0.0:9000")
                })?;
            let access = PushAccess::from_query(query).map_err(|e| bad(&e))?;
            return Ok(SourceUrl::Esp32Push { bind, access });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let rest = s.split_once("://").map(|x| x.1).unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad("the URL has no host"));
            }
            return Ok(SourceUrl::Http { url: s.to_owned() });
        }
        if let Some(rest) = s.strip_prefix("rtsp://") {
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() {
                return Err(bad("the URL has no host"));
            }
            return Ok(SourceUrl::Rtsp { url: s.to_owned() });
        }
        if let Some(path) = s.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("give a path, e.g. file:video/movie.Mjpeg"));
            }
            return Ok(SourceUrl::File { path: path.into() });
        }
        Err(format!(
            "unknown --source `{}`; supported: {}",
            redact(s),
            SOURCE_FORMS.join(", ")
        ))
    }
}

impl SourceUrl {
    /// The scheme-like kind, for logs and state reports (`esp32-tcp`, `rtsp`...).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceUrl::TestPattern => "test-pattern",
            SourceUrl::V4l2(_) => "v4l2",
            SourceUrl::Esp32Tcp { .. } => "esp32-tcp",
            SourceUrl::Esp32Push { .. } => "esp32-push",
            SourceUrl::Http { .. } => "http",
            SourceUrl::Rtsp { .. } => "rtsp",
            SourceUrl::File { .. } => "file",
        }
    }
}

/// Shown in logs and sent to viewers: never includes a password.
impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceUrl::TestPattern => write!(f, "test-pattern"),
            SourceUrl::V4l2(V4l2Device::Index(i)) => write!(f, "v4l2:{i}"),
            SourceUrl::V4l2(V4l2Device::Name(n)) => write!(f, "v4l2:{n}"),
            SourceUrl::Esp32Tcp { host, port } => write!(f, "esp32-tcp://{host}:{port}"),
            SourceUrl::Esp32Push { bind, access } => write!(f, "esp32-push://{bind}{access}"),
            SourceUrl::Http { url } | SourceUrl::Rtsp { url } => write!(f, "{}", redact(url)),
            SourceUrl::File { path } => write!(f, "file:{}", path.display()),
        }
    }
}

/// `scheme://user:secret@host/...` → `scheme://user:***@host/...`, and `key=secret` in the
/// query → `key=***`.
pub fn redact(url: &str) -> String {
    let url = &redact_key(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// `...?a=1&key=secret&b=2` → `...?a=1&key=***&b=2`.
fn redact_key(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<&str> = query
        .split('&')
        .map(|pair| {
            if pair == "key" || pair.starts_with("key=") {
                "key=***"
            } else {
                pair
            }
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.trim_end_matches('/');
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT".to_owned())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("expected HOST:PORT (no host)".into());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{port}` is not a port number"))?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SourceUrl, String> {
        s.parse()
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(parse("test-pattern").unwrap(), SourceUrl::TestPattern);
        assert_eq!(
            parse("v4l2:0").unwrap(),
            SourceUrl::V4l2(V4l2Device::Index(0))
        );
        assert_eq!(
            parse("v4l2:HD Webcam").unwrap(),
            SourceUrl::V4l2(V4l2Device::Name("HD Webcam".into()))
        );
        // `camera:` is the same thing, spelled for any system.
        assert_eq!(parse("camera:1").unwrap(), parse("v4l2:1").unwrap());
        assert!(parse("camera:").is_err());
        assert_eq!(
            parse("esp32-tcp://192.168.1.50:8080").unwrap(),
            SourceUrl::Esp32Tcp {
                host: "192.168.1.50".into(),
                port: 8080
            }
        );
        assert_eq!(
            parse("esp32-push://0.0.0.0:9000").unwrap(),
            SourceUrl::Esp32Push {
                bind: "0.0.0.0:9000".parse().unwrap(),
                access: PushAccess::default(),
            }
        );
        let SourceUrl::Esp32Push { bind, access } =
            parse("esp32-push://[::]:9000/?allow=192.168.1.0/24,10.0.0.7&key=k").unwrap()
        else {
            panic!("not esp32-push");
        };
        assert_eq!(bind, "[::]:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(
            access.allow,
            vec![
                "192.168.1.0/24".parse().unwrap(),
                "10.0.0.7/32".parse().unwrap()
            ]
        );
        assert_eq!(access.key.as_deref(), Some("k"));
        assert!(matches!(
            parse("esp32-push://0.0.0.0:9000?key=k").unwrap(),
            SourceUrl::Esp32Push { access, .. } if access.allow.is_empty()
        ));
        assert!(matches!(
            parse("http://cam.local/stream").unwrap(),
            SourceUrl::Http { .. }
        ));
        assert!(matches!(
            parse("https://cam.local/snapshot.jpg").unwrap(),
            SourceUrl::Http { .. }
        ));
        assert!(matches!(
            parse("rtsp://admin:pw@10.0.0.9:554/stream1").unwrap(),
            SourceUrl::Rtsp { .. }
        ));
        assert_eq!(
            parse("file:video/movie.Mjpeg").unwrap(),
            SourceUrl::File {
                path: "video/movie.Mjpeg".into()
            }
        );
    }

    #[test]
    fn malformed_sources_say_what_is_wrong() {
        for (input, expect) in [
            ("webcam", "supported"),
            ("v4l2:", "index or name"),
            ("esp32-tcp://host", "HOST:PORT"),
            ("esp32-tcp://:80", "no host"),
            ("esp32-tcp://host:99999", "not a port"),
            ("esp32-push://nohost", "ADDR:PORT"),
            ("esp32-push://nohost?key=k", "ADDR:PORT"),
            (
                "esp32-push://0.0.0.0:9000?allow=10.0.0.0/40",
                "not an address range",
            ),
            ("esp32-push://0.0.0.0:9000?allow=", "needs address ranges"),
            ("esp32-push://0.0.0.0:9000?key=", "empty"),
            (
                "esp32-push://0.0.0.0:9000?token=x",
                "unknown parameter `token`",
            ),
            ("esp32-push://0.0.0.0:9000?allow=10.0.0.0/8&key", "empty"),
            ("http://", "no host"),
            ("rtsp:///path", "no host"),
            ("file:", "path"),
        ] {
            let err = parse(input).unwrap_err();
            assert!(err.contains(expect), "{input}: {err}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url = parse("rtsp://admin:hunter2@10.0.0.9/live").unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin:***@10.0.0.9/live"), "{shown}");
        let err = parse("rtsp://u:hunter2@").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(redact("http://cam/x"), "http://cam/x");
        // A push listener's key shows neither in the source's name nor in errors.
        let push = parse("esp32-push://0.0.0.0:9000?allow=10.0.0.0/8&key=hunter2").unwrap();
        assert_eq!(
            push.to_string(),
            "esp32-push://0.0.0.0:9000?allow=10.0.0.0/8&key=***"
        );
        assert!(!format!("{push:?}").contains("hunter2"));
        let err = parse("esp32-push://0.0.0.0:9000?key=hunter2&oops=1").unwrap_err();
        assert!(!err.contains("hunter2") && err.contains("key=***"), "{err}");
    }
}
