//! Sightline publisher: captures frames, encodes H.264 with openh264 and publishes them over
//! WebRTC (the `webrtc` crate) to a Sightline server. It only ever connects out and
//! reconnects by itself.
//!
//! Data path: [`source`] (paced raw I420 frames) → [`pipeline`] (a dedicated encode thread)
//! → [`encoder`] (openh264, Constrained Baseline 42e01f) → [`session`] (WebSocket signaling
//! plus the [`peer`] connection; decisions in [`session_state`]) → the SFU. [`run`] loops
//! over sessions with [`backoff`]. PLI/FIR come back through [`keyframe_feedback`].

pub mod backoff;
pub mod barcode;
pub mod encoder;
pub mod frame;
pub mod keyframe_feedback;
pub mod nal;
pub mod peer;
pub mod pipeline;
pub mod session;
pub mod session_state;
pub mod source;
pub mod units;

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
        }
    }
}

/// Run the publisher until the task is dropped or aborted: connect, publish, and on any loss
/// reconnect with capped, jittered backoff. Returns only on a configuration error.
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
    sightline_signaling::wire::validate_camera_id(&config.camera_id)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // Configuration errors surface now, not as an endless reconnect loop.
    let first = source::open(&spec)?;
    encoder::Encoder::new(pipeline::encoder_settings(
        first.as_ref(),
        config.bitrate,
        config.keyframe_interval,
    ))?;
    let mut source = Some(first);
    let mut backoff = backoff::Backoff::default();
    loop {
        let src = match source.take() {
            Some(s) => s,
            None => match source::open(&spec) {
                Ok(s) => s,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!("reopening source `{}`: {e:#}; retry in {delay:?}", spec.url);
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        tracing::info!(server = %config.server, camera = %config.camera_id, "connecting");
        let outcome = session::run(&config, src).await;
        source = outcome.source;
        if outcome.connected {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(
            camera = %config.camera_id,
            reason = %outcome.reason,
            "session ended; reconnecting in {delay:?}"
        );
        tokio::time::sleep(delay).await;
    }
}
