//! Sightline publisher: captures frames, encodes H.264 with openh264 and publishes them over
//! WebRTC (the `webrtc` crate) to a Sightline server. It only ever connects out and
//! reconnects by itself.
//!
//! Data path: [`source`] (raw I420 frames or H.264 for passthrough, on its own thread under
//! [`source::supervisor`], which reopens it and reports its state; started and stopped by
//! [`pipeline::capture`]) → [`pipeline`] (a dedicated encode thread applying the viewers'
//! settings live) → [`h264::encoder`] (openh264, Constrained Baseline 42e01f) → [`session`]
//! (WebSocket signaling plus the [`session::peer`] connection; decisions in
//! [`session::signaling`]) → the SFU. [`run`] loops over sessions with [`backoff`]. PLI/FIR
//! come back through [`session::keyframe_feedback`].
//!
//! Control: viewers' commands arrive on the `control` data channel
//! ([`session::control_channel`]), go to the [`station`] in one hand-off and are decided by
//! [`control`]; the station (settings, capture, [`control::on_demand`] timer) outlives
//! sessions, so settings persist (`--state-dir`) and an on-demand publisher (`--on-demand`)
//! captures only while the server reports viewers.
//!
//! ```text
//! src/
//!   lib.rs         modules, re-exports, run (the reconnect loop)
//!   main.rs        the sightline-publisher binary (command line → PublisherConfig)
//!   config.rs      PublisherConfig, its defaults, the configuration check
//!   station.rs     what outlives sessions: settings, capture, demand; carries out commands
//!   backoff.rs     capped, jittered retry delays (sessions, sources)
//!   barcode.rs     the frame-number / capture-time stamp burnt into test frames
//!   units.rs       bitrate parsing (800k, 2M)
//!   source/        where frames come from: test pattern, V4L2, ESP32, HTTP, RTSP, file;
//!                  supervisor (reopen, health), queue, URLs
//!   image/         I420Frame; JPEG and YUYV → I420; scaling; image adjustments
//!   mjpeg/         MJPEG framing: multipart streams, length-prefixed files, JPEG splitting
//!   h264/          encoder (openh264), NAL units, RBSP bit reading, SPS profile check
//!   control/       camera control: settings state, commands, presets, store, capabilities,
//!                  the pipeline snapshot, frame transform, on_demand (when to capture)
//!   pipeline/      the encode thread (FrameEncoder, live FramePipeline), capture on/off
//!   session/       one signaling session: websocket, signaling (state machine), peer,
//!                  control_channel, keyframe_feedback, media, follow, commands, resources
//! ```
//!
//! Arrows point down: `run` drives [`session`], which drives the [`station`], which drives
//! [`control`], [`pipeline`] and [`source`]; none imports from a module that drives it.

pub mod backoff;
pub mod barcode;
pub mod config;
pub mod control;
pub mod h264;
pub mod image;
pub mod mjpeg;
pub mod pipeline;
pub mod session;
pub mod settings;
pub mod source;
pub mod station;
pub mod units;
#[cfg(sightline_vp8)]
pub mod vp8;

pub use config::{default_state_dir, NamedSource, PublisherConfig};

/// Run the publisher until the task is dropped or aborted: supervise the source (reopening
/// it with backoff whenever it fails, reporting its state), connect, publish, and on any
/// session loss reconnect with capped, jittered backoff. The source and the sessions fail
/// and recover independently. An on-demand publisher stays connected but idle until the
/// server reports a viewer. Returns `Ok` when the server removed the camera from its
/// registry (`DELETE /api/cameras/{id}`), and an error only for a configuration error.
pub async fn run(config: PublisherConfig) -> anyhow::Result<()> {
    config::check(&config)?;
    // Once per run: loading the system's roots reads a folder of certificates.
    let tls = session::tls_client_config(config.ca_file.as_deref())?;
    // Over loopback (a server on this machine, the demo's camera) nobody can listen in.
    let loopback = url::Url::parse(&config.server)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|host| match host {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        });
    if config.token.is_some() && config.server.starts_with("ws://") && !loopback {
        tracing::warn!("the token goes unencrypted over ws://: use a wss:// server URL");
    }
    // The source's threads stop when this is dropped, i.e. when this task ends or is aborted.
    let mut station = station::Station::new(&config, config.source_spec());
    station.start_up();
    let mut backoff = backoff::Backoff::reconnect();
    loop {
        tracing::info!(server = %config.server, camera = %config.camera_id, "connecting");
        let outcome = session::run(&config, &tls, &mut station).await;
        station.signaling_lost();
        if outcome.removed {
            tracing::warn!(
                camera = %config.camera_id,
                "{}; stopping (not reconnecting)",
                outcome.reason
            );
            return Ok(());
        }
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
            let _ = station.tick();
        }
        tokio::time::sleep_until(reconnect_at).await;
    }
}
