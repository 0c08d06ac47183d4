//! `bench`: the figures in BENCHMARKS.md, measured on the real pieces.
//!
//!   cargo run --release -p sightline-tests --bin bench            # every figure
//!   cargo run --release -p sightline-tests --bin bench -- latency # one figure
//!
//! Figures: `latency` (glass-to-glass, capture → decoded in a headless viewer, 720p30),
//! `join` (subscribe → first decoded frame over 20 joins), `encode` (publisher encode time and
//! CPU per 720p frame), `mjpeg` (JPEG decoder comparison and MJPEG → H.264 cost, see
//! `mjpeg_bench.rs`), `rtsp` (RTSP passthrough latency and CPU per frame, see
//! `rtsp_bench.rs`), `image` (software scaling and image controls per frame, see
//! `image_bench.rs`), `simd` (those image steps against maintained SIMD crates, see
//! `simd_bench.rs`), `slate` (the slate's bit rate while a source is lost, see
//! `slate_bench.rs`), `motion` (the motion detector's CPU per 720p frame, see
//! `motion_bench.rs`), `sfu` (SFU CPU time per forwarded packet, 1 publisher → 50 viewers,
//! server in its own process), `control` (settings command → first frame at the new setting,
//! idle on-demand publisher CPU, see `control_bench.rs`), `restart` (server killed and started
//! again: time until viewers see video, see `restart_bench.rs`), `auth` (token check per connect,
//! TLS handshakes per second, glass-to-glass and first frame over ws:// and wss:// with
//! tokens, see `auth_bench.rs`), `mse` (glass-to-glass and first frame through the MSE door,
//! server CPU per MSE viewer against a WebRTC viewer, see `mse_bench.rs`), `paths` (first frame
//! and glass-to-glass on UDP, ICE-TCP, TURN over UDP and over TCP,
//! Chromium behind real NATs, see `paths_bench.rs`), `impaired` (freezes with 5 % loss, 100 ms
//! RTT and reordering on both legs, see `impair.rs`), `load [VIEWERS...]` and `joins` (many
//! viewers of a 2 Mbit/s camera, server pinned to a core: CPU per packet, memory per viewer,
//! first frames, dwell, joins under watch; see `load_bench.rs`), `browser-latency` (Chromium's
//! glass-to-glass from the page's barcode reading, see `browser_latency_bench.rs`), `whip`
//! (WHIP ingest → WHEP playback: glass-to-glass and first frame, see `wish_bench.rs`;
//! `load` also prices a `/metrics` scrape), and, only
//! when named, `soak [MINUTES]`
//! (server memory over a long run with viewers joining and leaving, see `soak_bench.rs`) and
//! `janus [VIEWERS]` (the load figures for Sightline and for Debian's Janus fed the same
//! stream, with the ratios; see `janus_bench.rs`).
//! Run it inside a private network
//! namespace or on a quiet machine: every peer talks over loopback.

#[path = "../auth_bench.rs"]
mod auth_bench;
#[path = "../browser_latency_bench.rs"]
mod browser_latency_bench;
#[path = "../control_bench.rs"]
mod control_bench;
#[path = "../image_bench.rs"]
mod image_bench;
#[path = "../janus_bench.rs"]
mod janus_bench;
#[path = "../load_bench.rs"]
mod load_bench;
#[path = "../mjpeg_bench.rs"]
mod mjpeg_bench;
#[path = "../motion_bench.rs"]
mod motion_bench;
#[path = "../mse_bench.rs"]
mod mse_bench;
#[path = "../paths_bench.rs"]
mod paths_bench;
#[path = "../restart_bench.rs"]
mod restart_bench;
#[path = "../rtsp_bench.rs"]
mod rtsp_bench;
#[path = "../simd_bench.rs"]
mod simd_bench;
#[path = "../slate_bench.rs"]
mod slate_bench;
#[path = "../soak_bench.rs"]
mod soak_bench;
#[path = "../wish_bench.rs"]
mod wish_bench;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use sightline_publisher::barcode;
use sightline_publisher::h264::encoder::{Encoder, EncoderSettings};
use sightline_publisher::source::TestPattern;
use sightline_tests::child::{free_tcp_port, free_udp_port, workspace_binary, ChildGuard};
use sightline_tests::harness::{get_json, publisher_config, wait_until};
use sightline_tests::impair::watch_through_poor_network;
use sightline_tests::{HeadlessViewer, TestPublisher, TestServer, ViewerConfig, ViewerEvent};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if which.iter().any(|w| w == "--help" || w == "-h") {
        println!("usage: bench [latency] [join] [encode] [mjpeg] [image] [simd] [slate] [motion] [rtsp] [control] [sfu] [restart] [auth] [mse] [paths [udp|ice-tcp|turn-udp|turn-tcp|p2p]...] [impaired] [browser-latency] [whip] [load [VIEWERS]...] [joins] [spread [VIEWERS]] [soak [MINUTES]] [janus [VIEWERS]]   (default: all but soak and janus)");
        return Ok(());
    }
    println!("# Sightline benchmarks ({} cores)", num_cpus());
    if wants("encode") {
        encode()?;
    }
    if wants("mjpeg") {
        mjpeg_bench::run()?;
    }
    if wants("slate") {
        slate_bench::run()?;
    }
    if wants("motion") {
        motion_bench::run()?;
    }
    if wants("image") {
        image_bench::run()?;
    }
    if wants("simd") {
        simd_bench::run()?;
    }
    if wants("rtsp") {
        rtsp_bench::run().await?;
    }
    if wants("control") {
        control_bench::run().await?;
    }
    if wants("latency") {
        latency().await?;
    }
    if wants("join") {
        join().await?;
    }
    if wants("sfu") {
        sfu_cpu_per_packet().await?;
    }
    if wants("restart") {
        restart_bench::run().await?;
    }
    if wants("auth") {
        auth_bench::run().await?;
    }
    if wants("mse") {
        mse_bench::run().await?;
    }
    if wants("paths") {
        paths_bench::run(&which).await?;
    }
    if wants("impaired") {
        impaired().await?;
    }
    if wants("browser-latency") {
        browser_latency_bench::run().await?;
    }
    if wants("whip") {
        wish_bench::run().await?;
    }
    if wants("load") || wants("joins") || wants("spread") {
        load_bench::run(&which).await?;
    }
    // Half an hour by default: only when asked for by name.
    if which.iter().any(|w| w == "soak") {
        soak_bench::run(&which).await?;
    }
    // Needs Debian's janus: only when asked for by name.
    if which.iter().any(|w| w == "janus") {
        janus_bench::run(&which).await?;
    }
    Ok(())
}

/// The poor-network run of `tests/impaired_network.rs`, five times for 30 s with different
/// dice, against the target of no freeze over 500 ms.
async fn impaired() -> anyhow::Result<()> {
    const RUNS: u64 = 5;
    if std::env::var_os("SIGHTLINE_NETNS").is_none() {
        println!("(no poor-network figure: the relay needs scripts/netns)");
        return Ok(());
    }
    let mut longest = Vec::new();
    for seed in 1..=RUNS {
        let run = watch_through_poor_network(Duration::from_secs(30), seed).await?;
        println!("  run {seed}: {run}");
        longest.push(run.longest_freeze.as_secs_f64() * 1000.0);
    }
    report(
        "poor network, 5 % loss each way on both legs, 100 ms RTT, 10 % reordered: longest \
         freeze per 30 s run (ms)",
        &mut longest,
        "target: none over 500 ms",
    );
    Ok(())
}

/// Glass-to-glass: the barcode's capture time vs. the moment the viewer decoded the frame.
async fn latency() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    latency_on(&server, &BenchTls::None, "loopback").await?;
    server.shutdown().await;
    Ok(())
}

/// How the bench's publisher and viewer reach a server: plain, or over TLS trusting a CA.
pub enum BenchTls {
    None,
    Trust(sightline_tests::pki::TestPki),
}

impl BenchTls {
    fn publisher(&self, server: &TestServer) -> sightline_publisher::PublisherConfig {
        let mut cfg = server.publisher_config("bench");
        (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (W, H, FPS, 2_000_000);
        if let BenchTls::Trust(pki) = self {
            cfg.ca_file = Some(pki.ca_path());
        }
        cfg
    }

    fn viewer(&self, server: &TestServer) -> ViewerConfig {
        let mut config = ViewerConfig::new(server.ws_url(), "bench");
        config.token = server.token(sightline_signaling::auth::Role::View, "bench");
        if let BenchTls::Trust(pki) = self {
            config.tls = Some(pki.client_config());
        }
        config
    }
}

/// [`latency`] on `server`, reached as `tls` says; `label` names the path in the report.
pub async fn latency_on(server: &TestServer, tls: &BenchTls, label: &str) -> anyhow::Result<()> {
    let _publisher = server.start_publisher(tls.publisher(server)).await?;
    let mut viewer = HeadlessViewer::connect(tls.viewer(server)).await?;
    // Warm up past ICE/DTLS setup and the frames since the last keyframe that the SFU
    // sends a newcomer at once (they are up to a second old: no live latency).
    viewer.next_frame(Duration::from_secs(10)).await?;
    let live = Instant::now() + Duration::from_secs(1);
    while Instant::now() < live {
        viewer.next_frame(Duration::from_secs(5)).await?;
    }
    let end = Instant::now() + Duration::from_secs(10);
    let mut samples = Vec::new();
    while Instant::now() < end {
        let f = viewer.next_frame(Duration::from_secs(5)).await?;
        if let Some(stamp) = f.stamp {
            samples.push((f.received_at_us.saturating_sub(stamp.capture_us)) as f64 / 1000.0);
        }
    }
    report(
        &format!("glass-to-glass latency 720p30, {label} (ms)"),
        &mut samples,
        "target p95 < 80 ms",
    );
    viewer.close().await;
    Ok(())
}

/// Time from subscribing to the first decoded frame, with the periodic IDR 60 s away: the
/// first viewer's comes from a keyframe request, the next ones' mostly from the frames the
/// SFU keeps since the keyframe asked for the viewer before (joins are 400 ms apart).
async fn join() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    join_on(&server, &BenchTls::None, "").await?;
    server.shutdown().await;
    Ok(())
}

/// [`join`] on `server`, reached as `tls` says; `label` names the path in the report.
pub async fn join_on(server: &TestServer, tls: &BenchTls, label: &str) -> anyhow::Result<()> {
    let mut cfg = tls.publisher(server);
    cfg.keyframe_interval = Duration::from_secs(60);
    let _publisher = server.start_publisher(cfg).await?;
    let mut samples = Vec::new();
    for _ in 0..20 {
        let start = barcode::now_us();
        let mut config = tls.viewer(server);
        // The SFU alone must get the first keyframe; the viewer asks for nothing.
        config.keyframe_request_on_error = false;
        let mut viewer = HeadlessViewer::connect(config).await?;
        let f = viewer.next_frame(Duration::from_secs(10)).await?;
        samples.push(f.received_at_us.saturating_sub(start) as f64 / 1000.0);
        viewer.close().await;
        // Joins spaced like real users, and past the SFU's keyframe-request throttle.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    report(
        &format!("subscribe → first decoded frame, 720p30, IDR interval 60 s{label} (ms)"),
        &mut samples,
        "target p95 < 300 ms",
    );
    Ok(())
}

/// The publisher's per-frame work at 720p: draw the test pattern, encode.
fn encode() -> anyhow::Result<()> {
    let settings = EncoderSettings {
        width: W,
        height: H,
        fps: FPS,
        bitrate: 2_000_000,
        keyframe_interval: Duration::from_secs(10),
    };
    let mut encoder = Encoder::new(settings)?;
    let pattern = TestPattern::new(W, H, FPS, barcode::tag_for("bench"))?;
    let busy = time_frames("publisher test pattern + encode per 720p frame (ms)", |i| {
        encoder.encode(&pattern.render(i, barcode::now_us()))?;
        Ok(())
    })?;
    println!(
        "publisher CPU at 720p30: {:.1} % of one core ({:.2} ms CPU per frame × {FPS} fps; target < 25 %)",
        busy * FPS as f64 * 100.0,
        busy * 1000.0
    );

    // The same frames in VP8 as well, as while a viewer without H.264 watches.
    let mut vp8 =
        sightline_publisher::vp8::Vp8Encoder::new(sightline_publisher::vp8::Vp8Settings {
            width: W,
            height: H,
            fps: FPS,
            bitrate: 2_000_000,
        })?;
    let with_vp8 = time_frames(
        "publisher test pattern + H.264 + VP8 encode per 720p frame (ms)",
        |i| {
            let frame = pattern.render(i, barcode::now_us());
            encoder.encode(&frame)?;
            vp8.encode(&frame)?;
            Ok(())
        },
    )?;
    println!(
        "publisher CPU at 720p30 with the VP8 encoder too: {:.1} % of one core ({:.2} ms CPU per frame; VP8 adds {:.1} %)",
        with_vp8 * FPS as f64 * 100.0,
        with_vp8 * 1000.0,
        (with_vp8 - busy) * FPS as f64 * 100.0
    );
    Ok(())
}

/// Run `work` for 300 frames on this thread, report each frame's wall time under `label`,
/// and return the thread's CPU seconds per frame (wall time where the OS does not say).
fn time_frames(
    label: &str,
    mut work: impl FnMut(u32) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let frames = 300u32;
    let mut per_frame = Vec::new();
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    for i in 0..frames {
        let t = Instant::now();
        work(i)?;
        per_frame.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = thread_cpu().map(|c| c - cpu0.unwrap_or_default());
    let wall = wall0.elapsed();
    report(label, &mut per_frame, "");
    Ok(cpu.unwrap_or(wall).as_secs_f64() / frames as f64)
}

/// SFU CPU per forwarded packet: the server runs alone in a child process, so its CPU time
/// (from /proc) counts only forwarding; one 720p publisher, 50 viewers in this process.
async fn sfu_cpu_per_packet() -> anyhow::Result<()> {
    const VIEWERS: usize = 50;
    let (server, _publisher) = server_process_with_camera().await?;
    let pid = server.pid();
    let (base, ws) = (server.http_url(), server.ws_url());

    let viewers = receiving_viewers(&ws, VIEWERS).await?;
    let packets = async || -> anyhow::Result<u64> {
        let s = get_json(format!("{base}/api/stats")).await?;
        s["sfu"]["packets_forwarded"]
            .as_u64()
            .context("no packets_forwarded in /api/stats")
    };
    let (p0, c0) = (packets().await?, process_cpu(pid)?);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (p1, c1) = (packets().await?, process_cpu(pid)?);
    let pkts = p1.saturating_sub(p0).max(1);
    let cpu = c1 - c0;
    println!(
        "SFU, 1 publisher 720p30 → {VIEWERS} viewers: {pkts} packets in 10 s ({:.0}/s), \
         server CPU {:.2} s ({:.1} % of a core), {:.2} µs per forwarded packet (target < 5 µs)",
        pkts as f64 / 10.0,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 10.0,
        cpu.as_secs_f64() * 1e6 / pkts as f64
    );
    for v in viewers {
        v.close().await;
    }
    Ok(())
}

/// `n` WebRTC viewers of camera `bench` that do not decode, each already receiving.
async fn receiving_viewers(ws: &str, n: usize) -> anyhow::Result<Vec<HeadlessViewer>> {
    let mut viewers = Vec::new();
    for _ in 0..n {
        let mut config = ViewerConfig::new(ws.to_owned(), "bench");
        config.decode = false;
        viewers.push(HeadlessViewer::connect(config).await?);
    }
    for v in &mut viewers {
        while !matches!(
            v.next_event(Duration::from_secs(15)).await?,
            ViewerEvent::Frame(_)
        ) {}
    }
    Ok(viewers)
}

/// The server in a process of its own, with a 720p30 test-pattern camera `bench` (2 Mbit/s)
/// publishing from this process, once the camera is online.
async fn server_process_with_camera() -> anyhow::Result<(ServerProcess, TestPublisher)> {
    let server = ServerProcess::start(None, false)?;
    server.wait_up().await?;
    let mut cfg = publisher_config(&server.ws_url(), "bench");
    (cfg.width, cfg.height, cfg.fps, cfg.bitrate) = (W, H, FPS, 2_000_000);
    let publisher = TestPublisher::start(cfg);
    server.wait_camera_online(Duration::from_secs(10)).await?;
    Ok((server, publisher))
}

fn report(what: &str, samples: &mut [f64], target: &str) {
    if samples.is_empty() {
        println!("{what}: no samples");
        return;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: n={} p50={:.1} p95={:.1} max={:.1}{}",
        samples.len(),
        pct(0.50),
        pct(0.95),
        samples[samples.len() - 1],
        if target.is_empty() {
            String::new()
        } else {
            format!("  ({target})")
        }
    );
}

/// CPU time of the calling thread (Linux: /proc/thread-self/schedstat, nanoseconds on CPU).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// User + system CPU time of a process, dead threads included (Linux: /proc/PID/stat, in
/// clock ticks of 10 ms; over a 10 s window that is precise enough).
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// User + system CPU time in a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> anyhow::Result<Duration> {
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    const TICKS_PER_SECOND: u64 = 100;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// CPU time of each thread of a process, by thread name (threads of one name summed).
fn threads_cpu(pid: u32) -> anyhow::Result<Vec<(String, Duration)>> {
    let mut threads: Vec<(String, Duration)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid: u32 = task?.file_name().to_string_lossy().parse()?;
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            continue; // the thread ended meanwhile
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("?", |(name, _)| name)
            .to_owned();
        let cpu = stat_cpu(&stat)?;
        match threads.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += cpu,
            None => threads.push((name, cpu)),
        }
    }
    threads.sort();
    Ok(threads)
}

/// Resident memory of a process (VmRSS), in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// The machine's CPUs, as this process first saw them (the load figures pin it to fewer,
/// which `available_parallelism` would report afterwards).
fn num_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// The `sightline` server in a child process of its own (media on 127.0.0.1, and on the
/// test namespace's address when given, for Chromium, which skips loopback), so its CPU
/// time counts only its own work and it can be killed (SIGKILL) as a crash would.
struct ServerProcess {
    child: Option<ChildGuard>,
    http_port: u16,
    udp_port: u16,
    extra_media_ip: Option<std::net::IpAddr>,
    /// Run the built-in test-pattern camera `demo` inside the server (`--demo`).
    demo: bool,
    /// Run it on these CPUs only (`taskset -c` syntax).
    cpus: Option<String>,
    /// `--media-threads` (none: the server's default, one per core it may run on).
    media_threads: Option<usize>,
}

impl ServerProcess {
    fn start(extra_media_ip: Option<std::net::IpAddr>, demo: bool) -> anyhow::Result<Self> {
        let mut server = Self::new(extra_media_ip, demo)?;
        server.start_again()?;
        Ok(server)
    }

    /// Started under `taskset -c cpus`, so "a core" in its figures means those CPUs.
    fn start_pinned(cpus: &str, media_threads: Option<usize>) -> anyhow::Result<Self> {
        let mut server = Self::new(None, false)?;
        (server.cpus, server.media_threads) = (Some(cpus.to_owned()), media_threads);
        server.start_again()?;
        Ok(server)
    }

    /// Not started yet, on every CPU, with the server's default media threads.
    fn new(extra_media_ip: Option<std::net::IpAddr>, demo: bool) -> anyhow::Result<Self> {
        Ok(ServerProcess {
            child: None,
            http_port: free_tcp_port()?,
            udp_port: free_udp_port()?,
            extra_media_ip,
            demo,
            cpus: None,
            media_threads: None,
        })
    }

    /// Start the server (again) on the same ports.
    fn start_again(&mut self) -> anyhow::Result<()> {
        let exe = workspace_binary("sightline")?;
        let mut args = vec![
            "--http".to_owned(),
            format!("127.0.0.1:{}", self.http_port),
            "--udp-port".to_owned(),
            self.udp_port.to_string(),
            "--media-ip".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        if let Some(ip) = self.extra_media_ip {
            args.extend(["--media-ip".to_owned(), ip.to_string()]);
        }
        if self.demo {
            args.push("--demo".to_owned());
        }
        if let Some(n) = self.media_threads {
            args.extend(["--media-threads".to_owned(), n.to_string()]);
        }
        // taskset execs the server, so the child's pid is the server's. A profiler named in
        // BENCH_SERVER_WRAPPER (e.g. `perf record -g -o /tmp/perf.data`, `heaptrack`) runs
        // it instead; its figures are then the profiler's too.
        let mut prefix: Vec<String> = std::env::var("BENCH_SERVER_WRAPPER")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if let Some(cpus) = &self.cpus {
            prefix.splice(0..0, ["taskset".to_owned(), "-c".to_owned(), cpus.clone()]);
        }
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let child = command
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        self.child = Some(ChildGuard(child));
        Ok(())
    }

    /// SIGKILL: no goodbye to anyone, as when a host or container dies.
    fn kill(&mut self) {
        self.child = None;
    }

    async fn wait_up(&self) -> anyhow::Result<()> {
        let base = self.http_url();
        wait_until(Duration::from_secs(10), "server up", async || {
            get_json(format!("{base}/api/cameras")).await.ok()
        })
        .await
        .map(drop)
    }

    /// Wait until `/api/cameras` lists a camera online.
    async fn wait_camera_online(&self, timeout: Duration) -> anyhow::Result<()> {
        let base = self.http_url();
        wait_until(timeout, "camera online", async || {
            let cams = get_json(format!("{base}/api/cameras")).await.ok()?;
            (cams.as_array()?.iter().any(|c| c["state"] == "online")).then_some(())
        })
        .await
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.0.id())
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.http_port)
    }
}
