//! Sightline publisher: captures frames, encodes H.264 with openh264 and publishes them over
//! WebRTC (the `webrtc` crate) to a Sightline server. It only ever connects out and
//! reconnects by itself.
//!
//! Data path: [`source`] (raw I420 frames or H.264 for passthrough, on its own thread under
//! [`source::supervisor`], which reopens it and reports its state; started and stopped by
//! [`capture`]) → [`pipeline`] (a dedicated encode thread applying the viewers' settings
//! live) → [`h264::encoder`] (openh264, Constrained Baseline 42e01f) → [`session`] (WebSocket
//! signaling plus the [`peer`] connection; decisions in [`session_state`]) → the SFU.
//! [`run`] loops over sessions with [`backoff`]. PLI/FIR come back through
//! [`keyframe_feedback`].
//!
//! Control: viewers' commands arrive on the `control` data channel ([`control_channel`]) and
//! are decided by [`control`]; the [`station`] (settings, capture, [`on_demand`] timer)
//! outlives sessions, so settings persist (`--state-dir`) and an on-demand publisher
//! (`--on-demand`) captures only while the server reports viewers.

pub mod backoff;
pub mod barcode;
pub mod capture;
pub mod control;
pub mod control_channel;
pub mod frame;
pub mod h264;
pub mod image;
pub mod keyframe_feedback;
pub mod mjpeg;
pub mod on_demand;
pub mod peer;
pub mod pipeline;
pub mod session;
pub mod session_state;
pub mod source;
pub mod station;
pub mod units;

use std::path::PathBuf;
use std::time::Duration;

/// Everything a publisher needs to run. The binary fills it from the command line; the demo
/// server and the tests fill it directly.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Signaling WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub server: String,
    pub camera_id: String,
    pub name: String,
    /// Where frames come from (`--source`).
    pub source: source::SourceUrl,
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
}

impl PublisherConfig {
    /// Defaults for a camera id: 1280×720 at 30 fps, 2 Mbit/s, IDR every 10 s.
    pub fn new(server: impl Into<String>, camera_id: impl Into<String>) -> Self {
        let camera_id = camera_id.into();
        PublisherConfig {
            server: server.into(),
            name: camera_id.clone(),
            camera_id,
            source: source::SourceUrl::TestPattern,
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
        }
    }
}

/// `$XDG_STATE_HOME/sightline`, else `~/.local/state/sightline`; `None` without a home.
pub fn default_state_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").and_then(absolute) {
        return Some(dir.join("sightline"));
    }
    std::env::var_os("HOME")
        .and_then(absolute)
        .map(|home| home.join(".local/state/sightline"))
}

/// Run the publisher until the task is dropped or aborted: supervise the source (reopening
/// it with backoff whenever it fails, reporting its state), connect, publish, and on any
/// session loss reconnect with capped, jittered backoff. The source and the sessions fail
/// and recover independently. An on-demand publisher stays connected but idle until the
/// server reports a viewer. Returns only on a configuration error.
pub async fn run(config: PublisherConfig) -> anyhow::Result<()> {
    let spec = source::SourceSpec {
        url: config.source.clone(),
        width: config.width,
        height: config.height,
        fps: config.fps,
        poll_fps: config.poll_fps,
        read_timeout: config.source_timeout,
        camera_id: config.camera_id.clone(),
    };
    check_config(&config, &spec)?;
    // The source's threads stop when this is dropped, i.e. when this task ends or is aborted.
    let mut station = station::Station::new(&config, spec);
    station.start_up();
    let mut backoff = backoff::Backoff::reconnect();
    loop {
        tracing::info!(server = %config.server, camera = %config.camera_id, "connecting");
        let outcome = session::run(&config, &mut station).await;
        station.signaling_lost();
        if outcome.connected {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(
            camera = %config.camera_id,
            reason = %outcome.reason,
            "session ended; reconnecting in {delay:?}"
        );
        // Meanwhile an on-demand source stops once the idle time runs out.
        let reconnect_at = tokio::time::Instant::now() + delay;
        while let Some(at) = station
            .demand
            .deadline()
            .filter(|at| tokio::time::Instant::from_std(*at) < reconnect_at)
        {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            station.tick();
        }
        tokio::time::sleep_until(reconnect_at).await;
    }
}

/// Configuration errors surface now, not as an endless reconnect loop. A source that cannot
/// be opened yet is not one (a camera may be unplugged, a file not written yet): it is
/// reported as lost and retried. The test pattern can only fail by its settings.
fn check_config(config: &PublisherConfig, spec: &source::SourceSpec) -> anyhow::Result<()> {
    sightline_protocol::wire::validate_camera_id(&config.camera_id)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // The encoder's limits on rate and bitrate (sizes come from the frames later).
    h264::encoder::Encoder::new(h264::encoder::EncoderSettings {
        width: 320,
        height: 240,
        fps: config.fps,
        bitrate: config.bitrate,
        keyframe_interval: config.keyframe_interval,
    })?;
    if spec.url == source::SourceUrl::TestPattern {
        source::open(spec)?;
    }
    Ok(())
}
