//! A real RTSP camera for tests and benchmarks: GStreamer's rtsp-server
//! (`tests/scripts/rtsp-server.py`, run with the system Python, which has GStreamer's
//! bindings) serving x264 H.264, or JPEG over RTP, of pictures that carry the publisher's
//! frame barcode.
//!
//! [`RtspServer::start`] returns once the server listens; [`RtspServer::restart`] brings it
//! back on the same port (a camera rebooting), possibly with other settings (the password
//! fixed, the path added). The process dies with the handle.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Debian's python3 (with python3-gi); a virtualenv's python would not see GStreamer.
const PYTHON: &str = "/usr/bin/python3";
/// GStreamer takes a moment to load its plugins.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What the server serves.
#[derive(Debug, Clone)]
pub struct RtspServerConfig {
    /// Mount points, e.g. `/cam`. Anything else is 404.
    pub paths: Vec<String>,
    /// `h264` (x264) or `jpeg` (JPEG over RTP, RFC 2435).
    pub codec: String,
    /// `constrained-baseline`, `baseline`, `main` or `high` (H.264 only).
    pub profile: String,
    /// B-frames between references (0: none; needs `main` or `high`).
    pub bframes: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Frames between IDRs.
    pub gop: u32,
    pub kbps: u32,
    /// Camera tag burned into the barcode (see `barcode::tag_for`).
    pub tag: u16,
    /// Background colour, video-range Y, U, V.
    pub yuv: (u8, u8, u8),
    /// Random picture content below the barcode, so frames are camera-sized (x264 spends its
    /// whole bitrate) rather than a still picture's few hundred bytes.
    pub busy: bool,
    /// Basic authentication: requests without these get 401.
    pub credentials: Option<(String, String)>,
    /// Stop the pictures after this many frames while the RTSP session stays up and RTCP
    /// goes on, every ~0.5 s (an encoder that hangs while the camera still answers).
    pub stall_after: Option<u32>,
    /// 0: any free port.
    pub port: u16,
}

impl Default for RtspServerConfig {
    fn default() -> Self {
        RtspServerConfig {
            paths: vec!["/cam".into()],
            codec: "h264".into(),
            profile: "constrained-baseline".into(),
            bframes: 0,
            width: 320,
            height: 240,
            fps: 30,
            gop: 30,
            kbps: 800,
            tag: 0,
            yuv: (81, 90, 240), // red
            busy: false,
            credentials: None,
            stall_after: None,
            port: 0,
        }
    }
}

impl RtspServerConfig {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--port".into(),
            self.port.to_string(),
            "--codec".into(),
            self.codec.clone(),
            "--profile".into(),
            self.profile.clone(),
            "--bframes".into(),
            self.bframes.to_string(),
            "--width".into(),
            self.width.to_string(),
            "--height".into(),
            self.height.to_string(),
            "--fps".into(),
            self.fps.to_string(),
            "--gop".into(),
            self.gop.to_string(),
            "--kbps".into(),
            self.kbps.to_string(),
            "--tag".into(),
            self.tag.to_string(),
            "--yuv".into(),
            format!("{},{},{}", self.yuv.0, self.yuv.1, self.yuv.2),
        ];
        for p in &self.paths {
            a.extend(["--path".into(), p.clone()]);
        }
        if self.busy {
            a.push("--busy".into());
        }
        if let Some(n) = self.stall_after {
            a.extend(["--stall-after".into(), n.to_string()]);
        }
        if let Some((user, password)) = &self.credentials {
            a.extend(["--user".into(), user.clone()]);
            a.extend(["--password".into(), password.clone()]);
        }
        a
    }
}

/// A running GStreamer RTSP server.
pub struct RtspServer {
    child: Option<Child>,
    config: RtspServerConfig,
    port: u16,
    /// RTSP connections accepted, over restarts.
    clients: Arc<AtomicUsize>,
}

impl RtspServer {
    pub async fn start(config: RtspServerConfig) -> anyhow::Result<Self> {
        let clients = Arc::new(AtomicUsize::new(0));
        let (child, port) = spawn(&config, &clients).await?;
        Ok(RtspServer {
            child: Some(child),
            config,
            port,
            clients,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn config(&self) -> &RtspServerConfig {
        &self.config
    }

    /// `rtsp://127.0.0.1:PORT/PATH` (`path` with or without its leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!(
            "rtsp://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// The URL with credentials in it.
    pub fn url_with_credentials(&self, user: &str, password: &str, path: &str) -> String {
        format!(
            "rtsp://{user}:{password}@127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// RTSP connections the server accepted so far (each reconnect attempt is one).
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Kill the server: connections drop at once, as when a camera loses power.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stop (if running) and start again on the same port with `config` (its port is
    /// ignored). Binding is retried while the old socket goes away.
    pub async fn restart(&mut self, mut config: RtspServerConfig) -> anyhow::Result<()> {
        self.stop().await;
        config.port = self.port;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(&config, &self.clients).await {
                Ok((child, _)) => {
                    self.child = Some(child);
                    self.config = config;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!("RTSP server restart: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.context("restarting the RTSP server on its port")),
            }
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-server.py")
}

/// Start the script and wait for its `LISTENING PORT` line; then count `CLIENT` lines.
async fn spawn(
    config: &RtspServerConfig,
    clients: &Arc<AtomicUsize>,
) -> anyhow::Result<(Child, u16)> {
    let mut child = Command::new(PYTHON)
        .arg(script())
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {PYTHON} {}", script().display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(port) = line.strip_prefix("LISTENING ") {
                return Ok(port.trim().parse::<u16>()?);
            }
        }
        bail!("the RTSP server exited before listening (see its stderr)")
    })
    .await
    .context("the RTSP server did not start listening in time")??;
    let clients = Arc::clone(clients);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "CLIENT" {
                clients.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok((child, port))
}
