//! What a publisher is told to do: [`PublisherConfig`] (the binary fills it from the command
//! line, the demo server and the tests directly), its defaults, and the check that refuses a
//! configuration before anything connects.
//!
//! Separate from the crate root so every module that needs the configuration can import it
//! without importing from [`crate::run`], the loop that drives them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{h264, source};

/// Everything a publisher needs to run. The binary fills it from the command line; the demo
/// server and the tests fill it directly.
///
/// Its `Debug` never shows the token.
#[derive(Clone)]
pub struct PublisherConfig {
    /// Signaling WebSocket URL, e.g. `ws://127.0.0.1:8080/ws` or `wss://host/ws`.
    pub server: String,
    /// Sent as `Authorization: Bearer TOKEN` on the WebSocket upgrade (`--token`). A secret:
    /// never logged, and `Debug` prints `***`.
    pub token: Option<String>,
    /// A PEM file of extra trusted CA (or self-signed) certificates for `wss://`, on top of
    /// the system's roots (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    pub camera_id: String,
    pub name: String,
    /// Where frames come from (`--source`).
    pub source: source::SourceUrl,
    /// Every source a control-role viewer may switch among (`select_source`), by name, the
    /// one the publisher starts on first; empty: only `source`, no switching. Set it with
    /// [`Self::with_sources`], which sets `source` too.
    pub sources: Vec<NamedSource>,
    /// Poll rate for sources that give one JPEG per request (ESP32 TCP, HTTP snapshots).
    pub poll_fps: u32,
    /// A source read that waits longer than this is a stall: the source reconnects.
    pub source_timeout: Duration,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate: u32,
    /// Periodic IDR interval: a safety net only; viewers get keyframes on request.
    pub keyframe_interval: Duration,
    /// Where camera settings and presets persist (`<dir>/<camera id>.json`); `None`: they
    /// last as long as the process. The binary defaults to [`default_state_dir`].
    pub state_dir: Option<PathBuf>,
    /// Capture and encode only while the server reports viewers.
    pub on_demand: bool,
    /// On demand: how long after the last viewer left to stop.
    pub idle_stop: Duration,
    /// Send media only through the TURN servers the server names (a network that allows
    /// nothing else, or a check that TURN works).
    pub relay_only: bool,
    /// How many viewers may watch straight from this publisher (P2P) at once; 0: none.
    /// Each one is a copy of the stream on the camera's uplink.
    pub p2p_max: u32,
}

/// Direct viewers by default: a home uplink carries two more copies of a 2 Mbit/s stream.
pub const DEFAULT_P2P_MAX: u32 = 2;

impl PublisherConfig {
    /// Defaults for a camera id: 1280×720 at 30 fps, 2 Mbit/s, IDR every 10 s.
    pub fn new(server: impl Into<String>, camera_id: impl Into<String>) -> Self {
        let camera_id = camera_id.into();
        PublisherConfig {
            server: server.into(),
            token: None,
            ca_file: None,
            name: camera_id.clone(),
            camera_id,
            source: source::SourceUrl::TestPattern,
            sources: Vec::new(),
            poll_fps: 10,
            source_timeout: Duration::from_secs(5),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            keyframe_interval: Duration::from_secs(10),
            state_dir: None,
            on_demand: false,
            idle_stop: Duration::from_secs(10),
            relay_only: false,
            p2p_max: DEFAULT_P2P_MAX,
        }
    }

    /// Start on the first of `sources`, and let viewers switch among them all.
    pub fn with_sources(mut self, sources: Vec<NamedSource>) -> Self {
        if let Some(first) = sources.first() {
            self.source = first.url.clone();
        }
        self.sources = sources;
        self
    }

    /// The names viewers switch among (empty with one source).
    pub fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name.clone()).collect()
    }

    /// What the source is opened with.
    pub fn source_spec(&self) -> source::SourceSpec {
        source::SourceSpec {
            url: self.source.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            poll_fps: self.poll_fps,
            read_timeout: self.source_timeout,
            camera_id: self.camera_id.clone(),
            controls: Default::default(),
        }
    }
}

/// Every field, the token as `***`: configurations get logged and printed in test failures.
impl fmt::Debug for PublisherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so a new field cannot be forgotten here (nor leak by default).
        let PublisherConfig {
            server,
            token,
            ca_file,
            camera_id,
            name,
            source,
            sources,
            poll_fps,
            source_timeout,
            width,
            height,
            fps,
            bitrate,
            keyframe_interval,
            state_dir,
            on_demand,
            idle_stop,
            relay_only,
            p2p_max,
        } = self;
        f.debug_struct("PublisherConfig")
            .field("server", server)
            .field("token", &token.as_ref().map(|_| "***"))
            .field("ca_file", ca_file)
            .field("camera_id", camera_id)
            .field("name", name)
            .field("source", source)
            .field("sources", sources)
            .field("poll_fps", poll_fps)
            .field("source_timeout", source_timeout)
            .field("width", width)
            .field("height", height)
            .field("fps", fps)
            .field("bitrate", bitrate)
            .field("keyframe_interval", keyframe_interval)
            .field("state_dir", state_dir)
            .field("on_demand", on_demand)
            .field("idle_stop", idle_stop)
            .field("relay_only", relay_only)
            .field("p2p_max", p2p_max)
            .finish()
    }
}

/// A source with the name viewers pick it by (`select_source`): `NAME=URL` on the command
/// line, or a bare URL named after its kind (`test-pattern`, `camera-0`, `rtsp`, `file`...).
#[derive(Clone, PartialEq, Eq)]
pub struct NamedSource {
    pub name: String,
    pub url: source::SourceUrl,
}

/// Passwords in the URL never reach logs.
impl fmt::Debug for NamedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.url)
    }
}

impl NamedSource {
    /// `NAME=URL` or `URL` (a name follows the preset names' rules: letters, digits, `-`,
    /// `_`, inner spaces; so no URL is taken for a name).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((name, url)) = text.split_once('=') {
            if sightline_protocol::control::validate_preset_name(name).is_ok() {
                return Ok(NamedSource {
                    name: name.to_owned(),
                    url: url.parse()?,
                });
            }
        }
        let url: source::SourceUrl = text.parse()?;
        let name = match &url {
            source::SourceUrl::TestPattern => "test-pattern".to_owned(),
            source::SourceUrl::V4l2(source::V4l2Device::Index(i)) => format!("camera-{i}"),
            source::SourceUrl::V4l2(source::V4l2Device::Name(_)) => "camera".to_owned(),
            source::SourceUrl::Esp32Tcp { .. } | source::SourceUrl::Esp32Push { .. } => {
                "esp32".to_owned()
            }
            source::SourceUrl::Http { .. } => "http".to_owned(),
            source::SourceUrl::Rtsp { .. } => "rtsp".to_owned(),
            source::SourceUrl::File { .. } => "file".to_owned(),
        };
        Ok(NamedSource { name, url })
    }
}

/// `$XDG_STATE_HOME/sightline`, else `~/.local/state/sightline` (on Windows
/// `%LOCALAPPDATA%\sightline`); `None` without a home.
pub fn default_state_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").and_then(absolute) {
        return Some(dir.join("sightline"));
    }
    if cfg!(windows) {
        if let Some(dir) = std::env::var_os("LOCALAPPDATA").and_then(absolute) {
            return Some(dir.join("sightline"));
        }
    }
    std::env::var_os("HOME")
        .and_then(absolute)
        .map(|home| home.join(".local/state/sightline"))
}

/// Configuration errors surface now, not as an endless reconnect loop. A source that cannot
/// be opened yet is not one (a camera may be unplugged, a file not written yet): it is
/// reported as lost and retried. The test pattern can only fail by its settings.
pub fn check(config: &PublisherConfig) -> anyhow::Result<()> {
    sightline_protocol::wire::validate_camera_id(&config.camera_id)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if let Some(token) = &config.token {
        // What a Bearer token may hold (RFC 6750's token68, loosely): no spaces, no controls.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            anyhow::bail!("--token: must be printable ASCII without spaces (and not empty)");
        }
    }
    let seconds = |d: Duration| d.as_secs();
    let p2p_limit = u64::from(sightline_protocol::wire::MAX_P2P_VIEWERS);
    for (setting, value, range) in [
        ("fps", u64::from(config.fps), 1..=240),
        ("poll-fps", u64::from(config.poll_fps), 1..=120),
        ("source-timeout", seconds(config.source_timeout), 1..=300),
        ("idle-stop", seconds(config.idle_stop), 0..=86_400),
        ("p2p-max", u64::from(config.p2p_max), 0..=p2p_limit),
    ] {
        if !range.contains(&value) {
            anyhow::bail!(
                "{setting} {value} is outside {} to {}",
                range.start(),
                range.end()
            );
        }
    }
    // The encoder's limits on the command line's rate and bitrate (sizes come from the frames
    // later). They are the defaults of the control settings; the encode thread starts from
    // those settings, its one source for the bitrate.
    h264::encoder::Encoder::new(h264::encoder::EncoderSettings {
        width: 320,
        height: 240,
        fps: config.fps,
        bitrate: config.bitrate,
        keyframe_interval: config.keyframe_interval,
    })?;
    if config.source == source::SourceUrl::TestPattern {
        source::open(&config.source_spec())?;
    }
    if let Some(first) = config.sources.first() {
        if first.url != config.source {
            anyhow::bail!("the first of the sources must be the one to start on (--source)");
        }
    }
    for (i, s) in config.sources.iter().enumerate() {
        if config.sources[..i].iter().any(|t| t.name == s.name) {
            anyhow::bail!(
                "two sources are named `{}`: name them apart with NAME=URL (--source, \
                 --extra-source)",
                s.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let mut c = PublisherConfig::new("wss://example.org/ws", "porch");
        assert!(format!("{c:?}").contains("token: None"));
        c.token = Some("hunter2-token".into());
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"***\""), "{shown}");
        assert!(shown.contains("wss://example.org/ws"), "{shown}");
    }

    #[test]
    fn named_sources() {
        let s = NamedSource::parse("porch=rtsp://admin:secret@10.0.0.9/stream").unwrap();
        assert_eq!(s.name, "porch");
        assert!(matches!(s.url, source::SourceUrl::Rtsp { .. }));
        assert!(!format!("{s:?}").contains("secret"), "{s:?}");
        for (text, name) in [
            ("test-pattern", "test-pattern"),
            ("v4l2:2", "camera-2"),
            ("file:/tmp/a=b.mjpeg", "file"),
            ("http://cam/video?size=2", "http"),
            ("rtsp://cam/stream", "rtsp"),
            ("Back door=esp32-tcp://10.0.0.5:81", "Back door"),
        ] {
            assert_eq!(NamedSource::parse(text).unwrap().name, name, "{text}");
        }
        for bad in [
            "porch=",
            "porch=ftp://x",
            "",
            "=test-pattern",
            "../x=test-pattern",
        ] {
            assert!(NamedSource::parse(bad).is_err(), "{bad}");
        }
        let two = |a: &str, b: &str| {
            PublisherConfig::new("ws://127.0.0.1:1/ws", "cam").with_sources(vec![
                NamedSource::parse(a).unwrap(),
                NamedSource::parse(b).unwrap(),
            ])
        };
        let ok = two("a=test-pattern", "b=file:/nowhere.mjpeg");
        assert_eq!(ok.source, source::SourceUrl::TestPattern);
        assert_eq!(ok.source_names(), ["a", "b"]);
        check(&ok).unwrap();
        let err = check(&two("file:/a.mjpeg", "file:/b.mjpeg")).unwrap_err();
        assert!(
            err.to_string().contains("two sources are named `file`"),
            "{err}"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let ok = PublisherConfig::new("ws://127.0.0.1:1/ws", "cam");
        check(&ok).unwrap();
        type Spoil = fn(&mut PublisherConfig);
        let cases: [(&str, Spoil); 5] = [
            ("fps 0 is outside 1 to 240", |c| c.fps = 0),
            ("poll-fps 121 is outside 1 to 120", |c| c.poll_fps = 121),
            ("source-timeout 0 is outside 1 to 300", |c| {
                c.source_timeout = Duration::from_millis(500)
            }),
            ("idle-stop 86401 is outside", |c| {
                c.idle_stop = Duration::from_secs(86_401)
            }),
            ("p2p-max 9999 is outside", |c| c.p2p_max = 9999),
        ];
        for (expected, spoil) in cases {
            let mut c = ok.clone();
            spoil(&mut c);
            let err = check(&c).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
