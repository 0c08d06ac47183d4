//! The publisher binary's settings: one schema for its flags, their `SIGHTLINE_*` variables
//! and its `--config` file (see the `sightline-config` crate for the layering), turned into a
//! [`PublisherConfig`] per camera.
//!
//! A file may list several cameras as `[[camera]]` tables: one process for every camera of
//! a Raspberry Pi. A table's keys override the file's top level for that camera; the
//! environment and flags override both, for every camera.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sightline_config::{Layers, Table};

use crate::units::parse_bitrate;
use crate::{default_state_dir, NamedSource, PublisherConfig};

/// One camera's settings. Each flag's `SIGHTLINE_*` variable is named in `--help`; a file
/// key is that name without `SIGHTLINE_`, in lower case with `-` for `_`.
///
/// No `Debug`: it holds the token.
#[derive(Clone, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Signaling WebSocket URL of the server: ws://HOST:PORT/ws, or wss://HOST/ws through
    /// TLS (verified against the system's root certificates and --ca-file).
    #[arg(
        long,
        env = "SIGHTLINE_SERVER",
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub server: String,
    /// Token the server asks publishers for, sent as `Authorization: Bearer TOKEN` when
    /// connecting (use wss:// so it is not sent in the clear). Prefer the environment
    /// variable or a config file only its owner can read: command lines are visible to
    /// other users.
    #[arg(
        long,
        env = "SIGHTLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM file of extra certificates to trust for wss:// (a private CA, or the server's
    /// self-signed certificate), on top of the system's root certificates.
    #[arg(long, env = "SIGHTLINE_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Camera id to register (letters, digits, '-', '_', '.').
    #[arg(long, env = "SIGHTLINE_CAMERA_ID", default_value = "test")]
    pub camera_id: String,
    /// Human-readable camera name (defaults to the camera id).
    #[arg(long, env = "SIGHTLINE_NAME")]
    pub name: Option<String>,
    /// Video source:
    ///   test-pattern            built-in moving pattern with a frame-number barcode;
    ///   v4l2:0 | v4l2:NAME      USB/V4L2 camera (by index or name; see --list-cameras);
    ///   esp32-tcp://HOST:PORT   ESP32-CAM serving one JPEG per TCP connection (polled at
    ///                           --poll-fps);
    ///   esp32-push://ADDR:PORT[?allow=CIDR[,CIDR...]][&key=KEY]
    ///                           listen for devices that connect out and push JPEGs; only
    ///                           from the allowed address ranges, and (with key=) only
    ///                           after the line `KEY <KEY>`; with neither, only devices on
    ///                           this machine (loopback);
    ///   http(s)://...           MJPEG stream (multipart/x-mixed-replace) or JPEG snapshot
    ///                           URL (polled at --poll-fps);
    ///   rtsp://[USER:PASS@]HOST[:PORT]/PATH[?transport=udp]
    ///                           H.264 IP camera: passed through untouched when browser-safe
    ///                           (Baseline, Constrained Baseline, Main without B-frames),
    ///                           decoded and re-encoded otherwise; RTP interleaved on the
    ///                           RTSP TCP connection unless ?transport=udp (other query
    ///                           parameters go to the camera; %-encode @ : / in passwords);
    ///   file:PATH               MJPEG file (5-digit length before each frame, or plain
    ///                           concatenated JPEGs), looped at --fps.
    /// With --extra-source, write NAME=SOURCE to give it the name viewers pick it by.
    #[arg(
        long,
        env = "SIGHTLINE_SOURCE",
        default_value = "test-pattern",
        verbatim_doc_comment
    )]
    pub source: String,
    /// Another source a viewer with control may switch to from the page (`select_source`),
    /// as NAME=SOURCE (SOURCE in any --source form; NAME: letters, digits, '-', '_',
    /// spaces). Repeat it for more; in a config file, a list. Without NAME= a source is
    /// named after its kind (test-pattern, camera-0, rtsp, file...). The publisher starts
    /// on --source.
    #[arg(long, env = "SIGHTLINE_EXTRA_SOURCE", value_name = "NAME=SOURCE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_source: Vec<String>,
    /// Poll rate (JPEGs per second, 1 to 120) for esp32-tcp:// and HTTP snapshot sources.
    #[arg(long, env = "SIGHTLINE_POLL_FPS", default_value_t = 10)]
    pub poll_fps: u32,
    /// Seconds (1 to 300) a source may stall mid-read before it is reconnected.
    #[arg(long, env = "SIGHTLINE_SOURCE_TIMEOUT", default_value_t = 5)]
    pub source_timeout: u64,
    /// Frame width in pixels (even).
    #[arg(long, env = "SIGHTLINE_WIDTH", default_value_t = 1280)]
    pub width: u32,
    /// Frame height in pixels (even).
    #[arg(long, env = "SIGHTLINE_HEIGHT", default_value_t = 720)]
    pub height: u32,
    /// Frames per second (1 to 240).
    #[arg(long, env = "SIGHTLINE_FPS", default_value_t = 30)]
    pub fps: u32,
    /// Target video bitrate in bits/s; suffixes k and M accepted (800k, 2M).
    #[arg(long, env = "SIGHTLINE_BITRATE", default_value = "2M", value_parser = parse_bitrate)]
    #[serde(deserialize_with = "bitrate_from_text")]
    pub bitrate: u32,
    /// Seconds between periodic keyframes (a safety net; viewers also request keyframes).
    /// 0 disables periodic keyframes.
    #[arg(long, env = "SIGHTLINE_KEYFRAME_INTERVAL", default_value_t = 10)]
    pub keyframe_interval: u64,
    /// Folder where camera settings and presets persist across restarts (one JSON file per
    /// camera id). Default: $XDG_STATE_HOME/sightline, else ~/.local/state/sightline.
    #[arg(long, env = "SIGHTLINE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep settings in memory only (nothing read or written on disk).
    #[arg(long, env = "SIGHTLINE_NO_STATE", conflicts_with = "state_dir")]
    pub no_state: bool,
    /// Stay connected but idle (no capture, no encoding, no media) until the server reports
    /// a viewer; stop again --idle-stop seconds after the last viewer left.
    #[arg(long, env = "SIGHTLINE_ON_DEMAND")]
    pub on_demand: bool,
    /// With --on-demand: seconds (up to 86400) to keep streaming after the last viewer left.
    #[arg(
        long,
        env = "SIGHTLINE_IDLE_STOP",
        default_value_t = 10,
        value_name = "SECS"
    )]
    pub idle_stop: u64,
    /// Send media only through the TURN servers the server hands out (`sightline
    /// --turn-url`): for networks that allow nothing else, or to check TURN works.
    #[arg(long, env = "SIGHTLINE_RELAY_ONLY")]
    pub relay_only: bool,
    /// How many viewers may watch straight from this publisher (P2P: the page's
    /// `?mode=p2p`) at once. Each is one more copy of the stream on this network's uplink;
    /// viewers beyond it, and any whose direct connection fails, watch through the server.
    /// 0 turns direct viewing off.
    #[arg(long, env = "SIGHTLINE_P2P_MAX", default_value_t = crate::config::DEFAULT_P2P_MAX, value_name = "N")]
    pub p2p_max: u32,
    /// Several cameras, from a config file only: `[[camera]]` tables, each with its own
    /// `camera-id` and whatever else differs from the top level.
    #[arg(skip)]
    #[serde(rename = "camera", default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<Table>,
}

fn bitrate_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    sightline_config::text_or_number(d, parse_bitrate)
}

/// What identifies one camera: with `[[camera]]` tables, the environment and flags may not
/// set these for all of them.
const PER_CAMERA: [&str; 4] = ["camera-id", "name", "source", "extra-source"];

/// The settings of every camera this process publishes: the one the layers describe, or one
/// per `[[camera]]` table of the file.
pub fn cameras(layers: &Layers) -> anyhow::Result<Vec<Settings>> {
    let top: Settings = layers.resolve(&[])?;
    if top.cameras.is_empty() {
        return Ok(vec![top]);
    }
    let file = layers.file().map(|p| p.display().to_string());
    let file = file.as_deref().unwrap_or("the config file");
    if let Some(key) = PER_CAMERA.iter().find(|k| layers.from_flag_or_env(k)) {
        bail!(
            "--{key} (or SIGHTLINE_{}) names one camera, but {file} lists {} cameras: set \
             `{key}` in each [[camera]] table instead",
            key.to_uppercase().replace('-', "_"),
            top.cameras.len()
        );
    }
    let mut ids = HashSet::new();
    let mut cameras = Vec::with_capacity(top.cameras.len());
    for (n, table) in top.cameras.iter().enumerate() {
        let which = format!("{file}: [[camera]] number {}", n + 1);
        if !table.contains_key("camera-id") {
            bail!("{which} has no camera-id");
        }
        if table.contains_key("camera") {
            bail!("{which} lists cameras of its own; [[camera]] tables do not nest");
        }
        let mut camera: Settings = layers.resolve(&[table]).context(which.clone())?;
        camera.cameras.clear();
        if !ids.insert(camera.camera_id.clone()) {
            bail!("{which}: camera-id `{}` is used twice", camera.camera_id);
        }
        cameras.push(camera);
    }
    Ok(cameras)
}

/// `--print-config`: the settings in force as TOML, the token and source passwords shown as
/// `***`. One camera prints flat; several print as `[[camera]]` tables.
pub fn print(cameras: &[Settings]) -> anyhow::Result<String> {
    let redacted: Vec<Settings> = cameras.iter().map(Settings::redacted).collect();
    match redacted.as_slice() {
        [one] => sightline_config::to_toml(one),
        several => {
            #[derive(Serialize)]
            struct Cameras<'a> {
                camera: &'a [Settings],
            }
            sightline_config::to_toml(&Cameras { camera: several })
        }
    }
}

impl Settings {
    fn redacted(&self) -> Settings {
        let mut shown = self.clone();
        shown.token = shown.token.map(|_| "***".into());
        shown.source = crate::source::url::redact(&shown.source);
        for s in &mut shown.extra_source {
            *s = crate::source::url::redact(s);
        }
        shown
    }

    /// The publisher configuration these settings describe (checked by [`crate::run`]).
    pub fn into_config(self) -> anyhow::Result<PublisherConfig> {
        let mut config = PublisherConfig::new(self.server, self.camera_id);
        // An empty SIGHTLINE_TOKEN means no token.
        config.token = self.token.filter(|t| !t.is_empty());
        config.ca_file = self.ca_file;
        if let Some(name) = self.name {
            config.name = name;
        }
        let first = NamedSource::parse(&self.source).map_err(anyhow::Error::msg)?;
        config.source = first.url.clone();
        if !self.extra_source.is_empty() {
            let mut sources = vec![first];
            for text in &self.extra_source {
                sources.push(NamedSource::parse(text).map_err(anyhow::Error::msg)?);
            }
            config = config.with_sources(sources);
        }
        config.poll_fps = self.poll_fps;
        config.source_timeout = Duration::from_secs(self.source_timeout);
        config.width = self.width;
        config.height = self.height;
        config.fps = self.fps;
        config.bitrate = self.bitrate;
        config.keyframe_interval = Duration::from_secs(self.keyframe_interval);
        if self.no_state && self.state_dir.is_some() {
            bail!("no-state and state-dir exclude each other: pick one");
        }
        config.state_dir = match self.no_state {
            true => None,
            false => self.state_dir.or_else(default_state_dir),
        };
        if config.state_dir.is_none() && !self.no_state {
            tracing::warn!("no state folder (set --state-dir or HOME): settings will not persist");
        }
        config.on_demand = self.on_demand;
        config.idle_stop = Duration::from_secs(self.idle_stop);
        config.relay_only = self.relay_only;
        config.p2p_max = self.p2p_max;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Args {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    }

    /// The cameras a file (written for the call) and flags describe.
    fn resolve(file: &str, flags: &[&str]) -> anyhow::Result<Vec<Settings>> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "sightline-publisher-settings-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&path, file)?;
        let path_flag = path.to_str().unwrap();
        let argv = ["publisher", "--config", path_flag].into_iter();
        let parsed =
            Layers::parse_from::<Args>(argv.chain(flags.iter().copied()), |a| a.config.clone());
        let cameras = parsed.and_then(|(_, layers)| cameras(&layers));
        std::fs::remove_file(&path)?;
        cameras
    }

    const TWO_CAMERAS: &str = r#"
        server = "wss://cams.example.org/ws"
        bitrate = "1M"
        fps = 15

        [[camera]]
        camera-id = "porch"
        source = "rtsp://admin:secret@10.0.0.9/stream"

        [[camera]]
        camera-id = "garage"
        name = "Garage door"
        fps = 10
    "#;

    #[test]
    fn each_camera_table_overrides_the_top_and_flags_override_all() {
        let cams = resolve(TWO_CAMERAS, &[]).unwrap();
        let ids: Vec<&str> = cams.iter().map(|c| c.camera_id.as_str()).collect();
        assert_eq!(ids, ["porch", "garage"]);
        assert!(cams.iter().all(|c| c.server == "wss://cams.example.org/ws"));
        assert!(cams
            .iter()
            .all(|c| c.bitrate == 1_000_000 && c.cameras.is_empty()));
        assert_eq!((cams[0].fps, cams[1].fps), (15, 10));
        assert_eq!(cams[0].source, "rtsp://admin:secret@10.0.0.9/stream");
        assert_eq!(cams[1].source, "test-pattern");
        assert_eq!(cams[1].name.as_deref(), Some("Garage door"));
        let cams = resolve(TWO_CAMERAS, &["--fps", "5"]).unwrap();
        assert_eq!((cams[0].fps, cams[1].fps), (5, 5));
        let printed = print(&cams).unwrap();
        assert_eq!(printed.matches("[[camera]]").count(), 2, "{printed}");
        assert!(printed.contains("admin:***@"), "{printed}");
    }

    #[test]
    fn camera_lists_that_cannot_work_are_refused() {
        let err = |file: &str, flags: &[&str]| match resolve(file, flags) {
            Ok(_) => panic!("{file:?} {flags:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        let e = err(TWO_CAMERAS, &["--camera-id", "x"]);
        assert!(
            e.contains("--camera-id (or SIGHTLINE_CAMERA_ID) names one camera"),
            "{e}"
        );
        assert!(e.contains("lists 2 cameras"), "{e}");
        let e = err("[[camera]]\nfps = 3\n", &[]);
        assert!(e.contains("[[camera]] number 1 has no camera-id"), "{e}");
        let twice = "[[camera]]\ncamera-id = \"a\"\n[[camera]]\ncamera-id = \"a\"\n";
        let e = err(twice, &[]);
        assert!(e.contains("camera-id `a` is used twice"), "{e}");
        let e = err("[[camera]]\ncamera-id = \"a\"\nfsp = 3\n", &[]);
        assert!(e.contains("[[camera]] number 1"), "{e}");
        assert!(e.contains("unknown field `fsp`"), "{e}");
        let e = err("camera = 3\n", &[]);
        assert!(e.contains("`camera = 3`"), "{e}");
    }

    #[test]
    fn every_setting_reads_its_variable_and_file_key() {
        assert!(
            sightline_config::misnamed_settings::<Settings>().is_empty(),
            "{:?}",
            sightline_config::misnamed_settings::<Settings>()
        );
    }

    #[test]
    fn extra_sources_from_flags_and_files() {
        let names = |s: Settings| s.into_config().unwrap().source_names();
        let flags = [
            "--source",
            "porch=test-pattern",
            "--extra-source",
            "garden=rtsp://u:pw@cam/s",
            "--extra-source",
            "file:/tmp/x.mjpeg",
        ];
        let s = resolve("", &flags).unwrap().remove(0);
        assert!(print(std::slice::from_ref(&s))
            .unwrap()
            .contains("garden=rtsp://u:***@cam/s"));
        assert_eq!(names(s), ["porch", "garden", "file"]);
        let file = "source = \"test-pattern\"\nextra-source = [\"night=file:/n.mjpeg\"]\n";
        let s = resolve(file, &[]).unwrap().remove(0);
        assert_eq!(names(s), ["test-pattern", "night"]);
        // One source: nothing to switch among.
        let s = resolve("", &["--source", "porch=test-pattern"])
            .unwrap()
            .remove(0);
        let config = s.into_config().unwrap();
        assert!(config.sources.is_empty() && config.source_names().is_empty());
        let s = resolve("", &["--extra-source", "x=ftp://nope"])
            .unwrap()
            .remove(0);
        assert!(s.into_config().is_err());
    }

    #[test]
    fn printing_hides_the_token_and_passwords() {
        let mut s = resolve("", &[]).unwrap().remove(0);
        s.token = Some("hunter2".into());
        s.source = "rtsp://admin:hunter2@cam/stream".into();
        let printed = print(&[s]).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("token = \"***\""), "{printed}");
        assert!(printed.contains("rtsp://admin:***@cam/stream"), "{printed}");
    }
}
