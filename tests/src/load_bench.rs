//! `bench load [VIEWERS...]` and `bench joins`: the SFU under many viewers of one camera-like
//! stream, with the server in a process of its own, pinned (`taskset`) to the last core.
//!
//! The camera is the noisy 720p MJPEG movie through the publisher's real pipeline (JPEG
//! decode, openh264 at 2 Mbit/s, about 240 packets/s), publishing from this process. The
//! viewers are headless str0m viewers that do not decode (SRTP, RTCP, NACK and frame
//! assembly only), all in this process: on the other cores with 4 or more, on all of them
//! with fewer (see `Bench::start`). Each viewer runs a task
//! that times its first frame from the moment it starts connecting, and the longest gap
//! between frames.
//!
//! `load` (default 50, 200 and 500 viewers, a fresh server each) prints server CPU per
//! forwarded packet, viewers per core at that bitrate, resident memory per viewer, time to
//! first frame, server dwell (from `/api/stats`, see `sightline_sfu::dwell`) and the packets
//! the viewers never got. `joins` has 200 viewers join at 50 per second while 100 watch, and
//! prints the watchers' longest gap and the newcomers' time to first frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use sightline_publisher::source::SourceUrl;
use sightline_sfu::histogram::{quantile_us, DWELL_BOUNDS_US};
use sightline_tests::harness::{get_json, publisher_config};
use sightline_tests::noisy_movie::noisy_movie;
use sightline_tests::temp::TempPath;
use sightline_tests::{HeadlessViewer, TestPublisher, ViewerConfig, ViewerEvent, ViewerStats};
use tokio::sync::{oneshot, watch};

use crate::{num_cpus, process_cpu, report, rss_kib, threads_cpu, ServerProcess, FPS, H, W};

/// Viewers join this often (50 per second), in `load` as in `joins`.
pub(crate) const JOIN_EVERY: Duration = Duration::from_millis(20);
/// Longest wait for every viewer's first frame.
pub(crate) const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// The steady-state window the CPU, packet and dwell figures are taken over.
pub(crate) const WINDOW: Duration = Duration::from_secs(20);
const BITRATE: u32 = 2_000_000;

pub async fn run(which: &[String]) -> anyhow::Result<()> {
    let after_load = which.iter().skip_while(|w| *w != "load").skip(1);
    let mut counts: Vec<usize> = after_load.map_while(|w| w.parse().ok()).collect();
    if which.iter().any(|w| w == "load") || which.is_empty() {
        if counts.is_empty() {
            counts = vec![50, 200, 500];
        }
        for n in counts {
            load(n).await?;
        }
    }
    if which.iter().any(|w| w == "joins") || which.is_empty() {
        joins().await?;
    }
    if which.iter().any(|w| w == "spread") || which.is_empty() {
        let after = which.iter().skip_while(|w| *w != "spread").nth(1);
        spread(after.and_then(|w| w.parse().ok()).unwrap_or(200)).await?;
    }
    // Later figures run on every core again.
    pin_this_process(&format!("0-{}", num_cpus() - 1))
}

/// The server on the last core, and this process (publisher and viewers) beside it.
pub(crate) struct Bench {
    pub(crate) server: ServerProcess,
    /// The core the server is pinned to (another server under test goes there too).
    pub(crate) server_cpus: String,
    _publisher: TestPublisher,
    _movie: TempPath,
    /// The server's resident memory with the camera publishing and nobody watching (KiB).
    rss_idle: u64,
}

impl Bench {
    /// The server on the last core, with the media on one thread.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_on(Some(1)).await
    }

    /// The server with `media_threads` (`--media-threads`; none: its default), on the last
    /// core with one media thread, on every core with more.
    async fn start_on(media_threads: Option<usize>) -> anyhow::Result<Self> {
        let cpus = num_cpus();
        let server_cpus = match media_threads {
            Some(1) => format!("{}", cpus - 1),
            _ => format!("0-{}", cpus - 1),
        };
        // With 4 cores or more the bench keeps off the server's; with fewer it could not
        // keep up with itself on the rest, so it shares them all.
        let own_cpus = if cpus >= 4 {
            format!("0-{}", cpus - 2)
        } else {
            format!("0-{}", cpus - 1)
        };
        pin_this_process(&own_cpus)?;
        let server = ServerProcess::start_pinned(&server_cpus, media_threads)?;
        server.wait_up().await?;
        let movie = TempPath::file("bench-load.mjpeg", &noisy_movie(W, H, 30))?;
        let mut cfg = publisher_config(&server.ws_url(), "bench");
        cfg.source = SourceUrl::File {
            path: movie.path().to_owned(),
        };
        (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (W, H, FPS, BITRATE);
        let publisher = TestPublisher::start(cfg);
        server.wait_camera_online(Duration::from_secs(15)).await?;
        println!(
            "load: server pinned to CPU {server_cpus}, publisher and viewers to CPU {own_cpus}; \
             camera: noisy 720p30 MJPEG → H.264 at {} kbit/s",
            BITRATE / 1000
        );
        // The publisher's first seconds (encoder ramp-up), then the server's idle footprint.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_idle = rss_kib(server.pid())?;
        Ok(Bench {
            server,
            server_cpus,
            _publisher: publisher,
            _movie: movie,
            rss_idle,
        })
    }

    /// `/api/stats`, the server's CPU time, this process's CPU time, and when.
    async fn snapshot(&self) -> anyhow::Result<(Value, Duration, Duration, Instant)> {
        Ok((
            get_json(format!("{}/api/stats", self.server.http_url())).await?,
            process_cpu(self.server.pid())?,
            process_cpu(std::process::id())?,
            Instant::now(),
        ))
    }

    /// `n` viewers joining one every [`JOIN_EVERY`], each timing itself from its start.
    async fn join(&self, n: usize, window: &watch::Receiver<Option<Instant>>) -> Vec<LoadViewer> {
        let mut joined = Vec::with_capacity(n);
        let mut tick = tokio::time::interval(JOIN_EVERY);
        for _ in 0..n {
            tick.tick().await;
            joined.push(LoadViewer::start(self.server.ws_url(), window.clone()));
        }
        joined
    }
}

/// A viewer running in a task of its own until told to stop.
pub(crate) struct LoadViewer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Record>,
    /// Set once its first frame is in.
    first_frame: Arc<std::sync::OnceLock<Duration>>,
}

/// What one viewer saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// From starting to connect to its first frame.
    pub(crate) first_frame: Option<Duration>,
    /// Longest time between two frames, both inside the window (see [`LoadViewer::start`]).
    pub(crate) longest_gap: Duration,
    pub(crate) stats: ViewerStats,
    pub(crate) error: Option<String>,
}

/// Set once a viewer's first frame is in: how long after it started.
pub(crate) type FirstFrame = Arc<std::sync::OnceLock<Duration>>;

impl LoadViewer {
    /// A viewer whose task is `watch(stopped, first_frame)`: it watches until `stopped`
    /// fires, sets `first_frame`, and returns what it saw.
    pub(crate) fn spawn<F, Fut>(watch: F) -> Self
    where
        F: FnOnce(oneshot::Receiver<()>, FirstFrame) -> Fut,
        Fut: std::future::Future<Output = Record> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let first_frame = FirstFrame::default();
        let task = tokio::spawn(watch(stopped, first_frame.clone()));
        LoadViewer {
            stop,
            task,
            first_frame,
        }
    }

    /// A Sightline viewer. Gaps count only between frames that both arrived after the
    /// instant `window` holds (none: no gap is measured yet).
    fn start(ws: String, window: watch::Receiver<Option<Instant>>) -> Self {
        Self::spawn(move |mut stopped, first| async move {
            let started = Instant::now();
            let mut config = ViewerConfig::new(ws, "bench");
            config.decode = false;
            config.event_capacity = 64;
            config.signaling_timeout = Duration::from_secs(20);
            let mut record = Record::default();
            let viewer = match HeadlessViewer::connect(config).await {
                Ok(v) => v,
                Err(e) => {
                    record.error = Some(format!("{e:#}"));
                    return record;
                }
            };
            let mut events = viewer.events();
            let mut last: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    event = events.recv() => match event {
                        Ok(ViewerEvent::Frame(_)) => {
                            let now = Instant::now();
                            let _ = first.set(now - started);
                            let from = *window.borrow();
                            if let (Some(prev), Some(from)) = (last, from) {
                                if prev >= from {
                                    record.longest_gap = record.longest_gap.max(now - prev);
                                }
                            }
                            last = Some(now);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            record.first_frame = first.get().copied();
            record.stats = viewer.stats();
            viewer.close().await;
            record
        })
    }

    fn has_frame(&self) -> bool {
        self.first_frame.get().is_some()
    }

    async fn finish(self) -> Record {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|e| Record {
            error: Some(format!("viewer task: {e}")),
            ..Record::default()
        })
    }
}

pub(crate) async fn finish_all(viewers: Vec<LoadViewer>) -> Vec<Record> {
    let mut records = Vec::with_capacity(viewers.len());
    for v in viewers {
        records.push(v.finish().await);
    }
    records
}

pub(crate) async fn all_have_frames(viewers: &[LoadViewer], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !viewers.iter().all(LoadViewer::has_frame) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    viewers.iter().filter(|v| v.has_frame()).count()
}

/// One server's load figures over [`WINDOW`].
pub(crate) struct Figures {
    pub(crate) per_packet_us: f64,
    pub(crate) rss_per_viewer_kib: f64,
    /// The server's share of a core.
    pub(crate) core_share: f64,
    /// Each server thread's share of a core (threads of one name together), busiest first.
    pub(crate) threads: Vec<(String, f64)>,
}

/// One fresh server, `n` viewers: the steady-state figures.
async fn load(n: usize) -> anyhow::Result<()> {
    load_on(&Bench::start().await?, n).await.map(drop)
}

/// `n` viewers of `bench`'s server: the steady-state figures, printed and returned.
pub(crate) async fn load_on(bench: &Bench, n: usize) -> anyhow::Result<Figures> {
    let (pid, rss_idle) = (bench.server.pid(), bench.rss_idle);
    let (_, no_window) = watch::channel(None);
    let viewers = bench.join(n, &no_window).await;
    let with_frames = all_have_frames(&viewers, FIRST_FRAME_TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let threads0 = threads_cpu(pid)?;
    let (s0, c0, o0, t0) = bench.snapshot().await?;
    tokio::time::sleep(WINDOW).await;
    let (s1, c1, o1, t1) = bench.snapshot().await?;
    let threads1 = threads_cpu(pid)?;
    let rss_loaded = rss_kib(pid)?;
    // The media's own share of the core, to take out of the scrapes' CPU.
    let media_share = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64();
    let scrapes = scrape_cost(&bench.server, media_share).await?;
    let records = finish_all(viewers).await;

    let secs = (t1 - t0).as_secs_f64();
    let packets = counter(&s1, "packets_forwarded")? - counter(&s0, "packets_forwarded")?;
    let cpu = (c1 - c0).as_secs_f64();
    let core_share = cpu / secs;
    let per_packet_us = cpu * 1e6 / packets.max(1) as f64;
    println!(
        "load, {n} viewers: {packets} packets forwarded in {secs:.0} s ({:.0}/s, {:.0}/s per \
         viewer); server CPU {:.1} % of a core: {per_packet_us:.2} µs per forwarded packet \
         (target ≤ 2.5 µs at 200 viewers); {:.0} viewers per core at this bitrate",
        packets as f64 / secs,
        packets as f64 / secs / n as f64,
        core_share * 100.0,
        n as f64 / core_share.max(1e-9),
    );
    let mut threads: Vec<(String, f64)> = threads1
        .iter()
        .map(|(name, after)| {
            let before = threads0.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
            let used = after.saturating_sub(before.unwrap_or_default());
            (name.clone(), used.as_secs_f64() / secs)
        })
        .filter(|(_, share)| *share >= 0.005)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed: Vec<String> = threads
        .iter()
        .map(|(name, share)| format!("{name} {:.1} %", share * 100.0))
        .collect();
    println!("  server threads (% of a core): {}", listed.join(", "));
    let rss_per_viewer_kib = rss_loaded.saturating_sub(rss_idle) as f64 / n as f64;
    println!(
        "  memory: server RSS {:.1} MiB idle, {:.1} MiB with {n} viewers: \
         {rss_per_viewer_kib:.0} KiB per viewer (target ≤ 200 KiB)",
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
    );
    report_first_frames(&format!("  {n} viewers joining at 50/s"), &records);
    let dwell = dwell_between(&s0, &s1)?;
    let dwell_q = |q| bound(quantile_us(&DWELL_BOUNDS_US, &dwell, q));
    println!(
        "  server dwell, frame's last packet in → last copy out: p50 {} µs, p99 {} µs over {} \
         frames",
        dwell_q(0.5),
        dwell_q(0.99),
        dwell.iter().sum::<u64>()
    );
    println!("  {scrapes}");
    report_viewer_losses(&records, with_frames, n);
    println!(
        "  this process (publisher and viewers): {:.0} % of a core",
        (o1 - o0).as_secs_f64() * 100.0 / secs
    );
    Ok(Figures {
        per_packet_us,
        rss_per_viewer_kib,
        core_share,
        threads,
    })
}

/// `n` viewers with the media on one thread, then shared out to a worker per core, the
/// server on every core both times: CPU per packet each way, how evenly the workers share,
/// and what that makes of a bigger host.
async fn spread(n: usize) -> anyhow::Result<()> {
    let cpus = num_cpus();
    let one = load_on(&Bench::start_on(Some(1)).await?, n).await?;
    let all = load_on(&Bench::start_on(Some(cpus)).await?, n).await?;
    let workers: Vec<f64> = all
        .threads
        .iter()
        .filter(|(name, _)| name.starts_with("sfu-fan-out"))
        .map(|(_, share)| *share)
        .collect();
    let (busiest, idlest) = workers
        .iter()
        .fold((0f64, f64::MAX), |(hi, lo), &w| (hi.max(w), lo.min(w)));
    println!(
        "spread, {n} viewers: {:.2} µs per forwarded packet with 1 media thread, {:.2} µs with \
         {cpus} fan-out workers ({:+.0} %)",
        one.per_packet_us,
        all.per_packet_us,
        (all.per_packet_us / one.per_packet_us - 1.0) * 100.0
    );
    if workers.len() == cpus {
        println!(
            "  fan-out workers: {} % of a core each; the idlest {:.0} % below the busiest \
             (target: within 20 %)",
            workers
                .iter()
                .map(|w| format!("{:.1}", w * 100.0))
                .collect::<Vec<_>>()
                .join(" / "),
            (1.0 - idlest / busiest.max(1e-9)) * 100.0
        );
    } else {
        println!("  fan-out workers seen: {} of {cpus}", workers.len());
    }
    // What stays on one thread (datagrams in, timers, merging the workers' events) caps a
    // bigger host.
    let fan_out: f64 = workers.iter().sum();
    let serial = (all.core_share - fan_out).max(1e-9);
    let per_core = n as f64 / all.core_share.max(1e-9);
    println!(
        "  {per_core:.0} viewers per core at this bitrate; on 16 cores that is {:.0}, but the \
         thread that stays single ({:.1} % of a core here) saturates at about {:.0} viewers",
        per_core * 16.0,
        serial * 100.0,
        n as f64 / serial
    );
    Ok(())
}

/// `GET /metrics` [`SCRAPES`] times in a row while the viewers watch: wall time per scrape,
/// and the server CPU each costs beyond the media's own `media_share` of its core.
async fn scrape_cost(server: &ServerProcess, media_share: f64) -> anyhow::Result<String> {
    const SCRAPES: u32 = 50;
    let url = format!("{}/metrics", server.http_url());
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .context("a host:port")?
        .to_owned();
    let (cpu0, t0) = (process_cpu(server.pid())?, Instant::now());
    let mut bytes = 0;
    let mut walls = Vec::new();
    for _ in 0..SCRAPES {
        let start = Instant::now();
        let stream = tokio::net::TcpStream::connect(&addr).await?;
        let resp = sightline_tests::raw_http::request(stream, "GET", "/metrics", &[], "").await?;
        anyhow::ensure!(resp.status == 200, "GET {url}: {}", resp.status);
        bytes = resp.body.len();
        walls.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let (cpu1, t1) = (process_cpu(server.pid())?, Instant::now());
    let extra = (cpu1 - cpu0).as_secs_f64() - media_share * (t1 - t0).as_secs_f64();
    walls.sort_by(f64::total_cmp);
    Ok(format!(
        "/metrics scrape ({bytes} bytes): {:.1} ms wall p50, {:.1} ms max; server CPU beyond the \
         media ≈ {:.2} ms per scrape (over {SCRAPES}; the process CPU clock ticks at 10 ms)",
        walls[walls.len() / 2],
        walls[walls.len() - 1],
        extra.max(0.0) * 1e3 / f64::from(SCRAPES)
    ))
}

/// 100 viewers watch; 200 more join at 50 per second.
async fn joins() -> anyhow::Result<()> {
    const WATCHING: usize = 100;
    const JOINING: usize = 200;
    let bench = Bench::start().await?;
    let (pid, rss_idle) = (bench.server.pid(), bench.rss_idle);
    let (window, window_rx) = watch::channel(None);
    let watching = bench.join(WATCHING, &window_rx).await;
    let ready = all_have_frames(&watching, FIRST_FRAME_TIMEOUT).await;
    anyhow::ensure!(
        ready == WATCHING,
        "only {ready} of {WATCHING} watchers got a frame"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    window.send_replace(Some(Instant::now()));
    let joining = bench.join(JOINING, &window_rx).await;
    all_have_frames(&joining, FIRST_FRAME_TIMEOUT).await;
    // Watchers keep watching a little after the last join.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_loaded = rss_kib(pid)?;
    let watched = finish_all(watching).await;
    let joined = finish_all(joining).await;

    let mut gaps: Vec<f64> = watched
        .iter()
        .map(|r| r.longest_gap.as_secs_f64() * 1e3)
        .collect();
    report(
        &format!("joins: longest gap per watching viewer while {JOINING} joined at 50/s (ms)"),
        &mut gaps,
        "target: none over 200 ms",
    );
    report_first_frames(
        &format!("joins: {JOINING} newcomers, with {WATCHING} watching"),
        &joined,
    );
    println!(
        "  memory: server RSS {:.1} MiB idle, {:.1} MiB with {} viewers: {:.0} KiB per viewer",
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        WATCHING + JOINING,
        rss_loaded.saturating_sub(rss_idle) as f64 / (WATCHING + JOINING) as f64
    );
    Ok(())
}

pub(crate) fn report_first_frames(what: &str, records: &[Record]) {
    let mut ttff: Vec<f64> = records
        .iter()
        .filter_map(|r| r.first_frame)
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    let missing = records.len() - ttff.len();
    report(
        &format!("{what}: start → first frame (ms)"),
        &mut ttff,
        "target p95 < 300 ms",
    );
    if missing > 0 {
        let why: Vec<&str> = records.iter().filter_map(|r| r.error.as_deref()).collect();
        println!(
            "  {missing} viewers got no frame within {FIRST_FRAME_TIMEOUT:?}; errors: {:?}",
            &why[..why.len().min(3)]
        );
    }
}

fn report_viewer_losses(records: &[Record], with_frames: usize, n: usize) {
    let sum = |f: fn(&ViewerStats) -> u64| records.iter().map(|r| f(&r.stats)).sum::<u64>();
    let received = sum(|s| s.media_packets_received);
    let skipped = sum(|s| s.media_packets_skipped);
    println!(
        "  viewers: {with_frames} of {n} got frames; {received} media packets received, {skipped} \
         sequence numbers skipped ({:.3} %), {} NACKs, {} RTX received, {} frames after a gap, \
         {} reconnects",
        skipped as f64 * 100.0 / (received + skipped).max(1) as f64,
        sum(|s| s.nacks_sent),
        sum(|s| s.rtx_packets_received),
        sum(|s| s.frames_not_contiguous),
        sum(|s| s.sessions.saturating_sub(1)),
    );
}

fn counter(stats: &Value, name: &str) -> anyhow::Result<u64> {
    stats["sfu"][name]
        .as_u64()
        .with_context(|| format!("no sfu.{name} in /api/stats"))
}

/// Dwell histogram counts added between two `/api/stats` snapshots.
fn dwell_between(before: &Value, after: &Value) -> anyhow::Result<Vec<u64>> {
    let counts = |s: &Value| -> anyhow::Result<Vec<u64>> {
        s["sfu"]["forward_dwell"]["counts"]
            .as_array()
            .context("no sfu.forward_dwell in /api/stats")?
            .iter()
            .map(|c| c.as_u64().context("odd dwell count"))
            .collect()
    };
    let (a, b) = (counts(before)?, counts(after)?);
    Ok(b.iter()
        .zip(&a)
        .map(|(b, a)| b.saturating_sub(*a))
        .collect())
}

fn bound(us: Option<u64>) -> String {
    us.map_or("> 100 000".to_owned(), |b| format!("≤ {b}"))
}

/// Every thread of this process (tokio's workers already run) onto `cpus`.
fn pin_this_process(cpus: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    anyhow::ensure!(status.success(), "taskset -a -p -c {cpus} failed");
    Ok(())
}
