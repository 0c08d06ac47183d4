//! `GET /metrics` (Prometheus, OpenMetrics text), `GET /healthz` and `GET /readyz`.
//!
//! The exposition is `prometheus-client`'s. What the server counts as it happens (sessions
//! opened, authentication refusals) lives in [`Metrics`]; everything else is read at each
//! scrape (the SFU's counters, the registry's cameras, the process's CPU and memory) and
//! encoded by a [`Scrape`] collector, so nothing is counted twice and the media loop keeps
//! no Prometheus state. Every metric is named `sightline_*`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sightline_protocol::wire::{CameraInfo, CameraState};
use sightline_sfu::histogram::Histogram;
use sightline_sfu::{CameraStats, SfuStats};

use super::http_auth::{admit, refusal_response};
use super::AppState;

/// What the server counts as it happens. Cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Signaling sessions (WebSocket connections) opened since start.
    sessions_opened: Counter,
    /// Requests refused by the access policy, by the refusal's code.
    auth_refusals: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Metrics {
    pub(crate) fn session_opened(&self) {
        self.sessions_opened.inc();
    }

    pub(crate) fn auth_refused(&self, code: &'static str) {
        self.auth_refusals.get_or_create(&[("code", code)]).inc();
    }
}

/// `GET /metrics`. With authentication on it needs a token of any role, unless the server
/// runs with `--metrics-open` (a scraper on a private network).
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !state.metrics_open {
        if let Err(refused) = admit(&state, remote.ip(), &headers, &uri) {
            return refusal_response(&refused);
        }
    }
    let scrape = Scrape {
        sfu: state.sfu.stats().await,
        cameras: state.registry.lock().unwrap().list(),
        sessions: state.sessions_open(),
        process: Process::read(),
    };
    // Prometheus asks for OpenMetrics; anything else (curl, older tools) gets the classic
    // text format.
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    match encode(&state.metrics, scrape, openmetrics) {
        Ok((content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /healthz`: the process answers HTTP.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 while the SFU's media sockets are bound and its loop runs, 503 once
/// the server is stopping.
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let stopping = *state.shutdown.borrow();
    if stopping || !state.sfu.is_running() || state.sfu.local_addrs().is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the SFU is not running\n",
        )
            .into_response();
    }
    "ready\n".into_response()
}

/// The exposition and its content type: OpenMetrics text, or Prometheus text 0.0.4.
fn encode(
    live: &Metrics,
    scrape: Scrape,
    openmetrics: bool,
) -> Result<(&'static str, String), std::fmt::Error> {
    let mut registry = Registry::with_prefix("sightline");
    registry.register(
        "signaling_sessions_opened",
        "Signaling sessions (WebSocket connections) opened since start",
        live.sessions_opened.clone(),
    );
    registry.register(
        "auth_refusals",
        "Requests and connections refused by the access policy, by refusal code",
        live.auth_refusals.clone(),
    );
    registry.register_collector(Box::new(scrape));
    let mut body = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, &registry)?;
        Ok((OPENMETRICS, body))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, &registry)?;
        Ok((
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body,
        ))
    }
}

/// One scrape's reading of the state kept elsewhere.
#[derive(Debug)]
struct Scrape {
    sfu: SfuStats,
    cameras: Vec<CameraInfo>,
    sessions: usize,
    process: Option<Process>,
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.sfu;
        gauge(
            &mut e,
            "signaling_sessions",
            "Open signaling sessions",
            self.sessions as f64,
        )?;
        gauge(
            &mut e,
            "sfu_peers",
            "WebRTC peer connections in the SFU",
            s.peers as f64,
        )?;
        gauge(
            &mut e,
            "sfu_publishers",
            "Publishers connected to the SFU",
            s.publishers as f64,
        )?;
        gauge(
            &mut e,
            "sfu_viewers",
            "Viewers in the SFU (WebRTC and MSE)",
            s.viewers as f64,
        )?;
        gauge(
            &mut e,
            "sfu_tcp_connections",
            "Open ICE-TCP connections",
            s.tcp_connections as f64,
        )?;
        for (name, help, value) in [
            (
                "sfu_frames_received",
                "Frames received from publishers",
                s.frames_received,
            ),
            (
                "sfu_frames_forwarded",
                "Frames written to viewers",
                s.frames_forwarded,
            ),
            (
                "sfu_packets_forwarded",
                "RTP packets sent to viewers",
                s.packets_forwarded,
            ),
            (
                "sfu_keyframe_requests_sent",
                "Keyframe requests sent to publishers",
                s.keyframe_requests_sent,
            ),
            (
                "sfu_keyframe_requests_received",
                "Keyframe requests received from viewers",
                s.keyframe_requests_received,
            ),
            (
                "sfu_gop_replays",
                "Viewers started from the frames since the last keyframe, kept at the SFU",
                s.gop_replays,
            ),
            ("sfu_nacks_sent", "NACKs sent to publishers", s.nacks_sent),
            (
                "sfu_frames_after_loss",
                "Frames from publishers after a loss NACK did not repair",
                s.frames_after_loss,
            ),
            (
                "sfu_watcher_frames_dropped",
                "Frames an MSE viewer's full queue could not take",
                s.watcher_frames_dropped,
            ),
            (
                "sfu_tcp_packets_dropped",
                "Packets an ICE-TCP viewer's full send queue could not take",
                s.tcp_packets_dropped,
            ),
        ] {
            counter(&mut e, name, help, value)?;
        }
        histogram(
            &mut e,
            "sfu_forward_dwell_seconds",
            "Each frame's time in the SFU, from its last packet in to its last copy out",
            &s.forward_dwell.0,
        )?;
        histogram(
            &mut e,
            "time_to_first_frame_seconds",
            "Each viewer's time from its offer answered to its first frame sent",
            &s.first_frame.0,
        )?;
        self.encode_cameras(&mut e)?;
        let mut m = e.encode_descriptor(
            "control_commands",
            "Control commands (data channels and the REST door) by type and result",
            None,
            MetricType::Counter,
        )?;
        for c in &s.control_commands {
            let labels = [
                ("command", c.command.as_str()),
                ("result", c.result.as_str()),
            ];
            ConstCounter::new(c.count).encode(m.encode_family(&labels)?)?;
        }
        if let Some(p) = &self.process {
            let cpu = ConstCounter::new(p.cpu_seconds);
            cpu.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "CPU time (user and system) the server process used",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut e,
                "process_resident_memory_bytes",
                "The server process's resident memory",
                p.resident_bytes as f64,
            )?;
        }
        Ok(())
    }
}

impl Scrape {
    /// Per camera, labelled `camera`: the registry's view (publisher up, viewers) for every
    /// camera ever registered, and the SFU's counters for every camera it has carried.
    fn encode_cameras(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up: Vec<_> = self
            .cameras
            .iter()
            .map(|c| (c.id.as_str(), u64::from(c.state == CameraState::Online)))
            .collect();
        per_camera(
            e,
            "camera_publisher_up",
            "1 while the camera's publisher is connected",
            MetricType::Gauge,
            &up,
        )?;
        let source: Vec<_> = self
            .cameras
            .iter()
            .filter_map(|c| Some((c.id.as_str(), c.source_state.as_ref()?.state.as_str())))
            .collect();
        let mut m = e.encode_descriptor(
            "camera_source_state",
            "The camera's source as its publisher reports it: 1 for the current state",
            None,
            MetricType::Gauge,
        )?;
        for (camera, state) in source {
            ConstGauge::new(1i64)
                .encode(m.encode_family(&[("camera", camera), ("state", state)])?)?;
        }
        let cams = &self.sfu.cameras;
        let pick = |f: CameraField| -> Vec<(&str, u64)> {
            cams.iter().map(|(id, c)| (id.as_str(), f(c))).collect()
        };
        per_camera(
            e,
            "camera_viewers",
            "The camera's viewers now",
            MetricType::Gauge,
            &pick(|c| c.viewers as u64),
        )?;
        let counters: [(&str, &str, CameraField); 11] = [
            (
                "camera_ingest_frames",
                "Frames received from the camera's publisher",
                |c| c.frames_received,
            ),
            (
                "camera_ingest_keyframes",
                "Keyframes received from the camera's publisher",
                |c| c.keyframes_received,
            ),
            (
                "camera_ingest_bytes",
                "Frame bytes received from the camera's publisher",
                |c| c.bytes_received,
            ),
            (
                "camera_frames_forwarded",
                "Frames written to the camera's viewers",
                |c| c.frames_forwarded,
            ),
            (
                "camera_keyframes_forwarded",
                "Keyframes written to the camera's viewers",
                |c| c.keyframes_forwarded,
            ),
            (
                "camera_keyframe_requests_received",
                "Keyframe requests from the camera's viewers",
                |c| c.keyframe_requests_received,
            ),
            (
                "camera_keyframe_requests_sent",
                "Keyframe requests sent to the camera's publisher",
                |c| c.keyframe_requests_sent,
            ),
            (
                "camera_nacks_received",
                "NACKs received from the camera's viewers",
                |c| c.nacks_received,
            ),
            (
                "camera_rtx_sent",
                "Retransmissions sent to the camera's viewers",
                |c| c.rtx_sent,
            ),
            (
                "camera_packets_sent",
                "RTP packets sent to the camera's viewers",
                |c| c.packets_sent,
            ),
            (
                "camera_bytes_sent",
                "SRTP bytes sent to the camera's viewers",
                |c| c.bytes_sent,
            ),
        ];
        for (name, help, f) in counters {
            per_camera(e, name, help, MetricType::Counter, &pick(f))?;
        }
        Ok(())
    }
}

/// One counter of a camera's [`CameraStats`].
type CameraField = fn(&CameraStats) -> u64;

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One metric with a value per camera, labelled `camera`.
fn per_camera(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for &(camera, value) in values {
        let labels = [("camera", camera)];
        let labelled = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(labelled)?,
            _ => ConstGauge::new(value as i64).encode(labelled)?,
        }
    }
    Ok(())
}

/// A duration histogram in seconds; its overflow bucket is `+Inf`.
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histogram,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = h
        .bounds_us
        .iter()
        .map(|&b| b as f64 / 1e6)
        .chain([f64::INFINITY])
        .zip(h.counts.iter().copied())
        .collect();
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.samples(), &buckets, None)
}

/// The server process's CPU time and resident memory, from `/proc` (Linux only).
#[derive(Debug)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
}

impl Process {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_proc(&stat, &status)
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Process> {
        None
    }
}

/// `/proc/self/stat` (utime and stime, fields 14 and 15, in clock ticks: 100 a second in
/// Linux's user ABI) and `/proc/self/status` (`VmRSS`, in kB).
#[cfg(any(target_os = "linux", test))]
fn parse_proc(stat: &str, status: &str) -> Option<Process> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds: ticks as f64 / 100.0,
        resident_bytes: rss_kb * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_and_garbage_is_not() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100";
        let status = "Name:\tsightline\nVmRSS:\t   2048 kB\nThreads:\t4\n";
        let p = parse_proc(stat, status).unwrap();
        assert_eq!(p.cpu_seconds, 4.0);
        assert_eq!(p.resident_bytes, 2048 * 1024);
        assert!(parse_proc("garbage", status).is_none());
        assert!(parse_proc(stat, "VmRSS: lots").is_none());
    }
}
