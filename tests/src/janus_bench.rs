//! `bench janus [VIEWERS]`: Sightline and Janus side by side, one camera, the same viewers.
//!
//! Debian's Janus (1.1.x, `apt-get install janus`) runs its streaming plugin with one RTP
//! mountpoint. Both servers get the same stream: the load bench's camera (the noisy 720p
//! movie through the publisher's real pipeline, 2 Mbit/s) publishes to Sightline, and one
//! extra Sightline viewer relays every access unit it receives, repacketised as plain RTP,
//! to Janus's mountpoint. The viewers are the same str0m peers (SRTP, RTCP, NACK, frame
//! assembly, no decode): for Sightline the load bench's, for Janus the same peer answering
//! Janus's offer over its HTTP API. Each server runs alone on the last core in its turn
//! (Sightline first, then Janus), and the figures are the load bench's: server CPU per
//! forwarded packet and resident memory per viewer, with the ratios.
//!
//! Janus offers no ICE candidate on a loopback interface, so this runs inside
//! `scripts/netns`, where it offers the namespace's own address.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use sightline_tests::browser::netns_ip;
use sightline_tests::child::{free_tcp_port, free_udp_port, ChildGuard};
use sightline_tests::peer::{Datagram, PeerEvent, ViewerPeer};
use sightline_tests::temp::TempPath;
use sightline_tests::{HeadlessViewer, ViewerConfig};
use str0m::unversioned::{H264Packetizer, Packetizer};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::load_bench::{
    all_have_frames, finish_all, load_on, report_first_frames, Bench, Figures, FirstFrame,
    LoadViewer, Record, FIRST_FRAME_TIMEOUT, JOIN_EVERY, WINDOW,
};
use crate::{process_cpu, rss_kib};

/// Janus's mountpoint id, and the RTP payload type it expects.
const MOUNTPOINT: u64 = 1;
const PT: u8 = 96;
/// RTP payload budget for the relay: Janus adds header extensions and SRTP's tag.
const RTP_PAYLOAD: usize = 1100;

pub async fn run(which: &[String]) -> anyhow::Result<()> {
    let after = which.iter().skip_while(|w| *w != "janus").skip(1);
    let n = after.map_while(|w| w.parse().ok()).next().unwrap_or(200);
    let ip = netns_ip()?.context(
        "bench janus runs inside scripts/netns: Janus offers no ICE candidate on loopback",
    )?;
    if !Path::new(JANUS).is_file() {
        bail!("{JANUS} is missing: apt-get install janus");
    }
    let bench = Bench::start().await?;
    println!(
        "janus: Sightline first, then Janus, each alone on CPU {}",
        bench.server_cpus
    );
    let ours = load_on(&bench, n).await?;

    let rtp_port = free_udp_port()?;
    let relay = Relay::start(&bench, SocketAddr::new(ip, rtp_port)).await?;
    let janus = Janus::start(&bench.server_cpus, ip, rtp_port)?;
    janus.wait_up().await?;
    // Janus receiving the stream before it is measured idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let theirs = janus_load(&janus, ip, n).await?;
    println!(
        "janus: Janus ÷ Sightline at {n} viewers: CPU per forwarded packet {:.1}× (target ≥ 6×), \
         memory per viewer {:.1}× (target ≥ 4×); the relay sent Janus {} frames",
        theirs.per_packet_us / ours.per_packet_us,
        theirs.rss_per_viewer_kib / ours.rss_per_viewer_kib,
        relay.frames()
    );
    Ok(())
}

const JANUS: &str = "/usr/bin/janus";
const JANUS_LIB: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// Janus in a process of its own, pinned to `cpus`, with only the streaming plugin and the
/// HTTP transport, and its config in a temporary folder.
struct Janus {
    _child: ChildGuard,
    _dir: TempPath,
    pid: u32,
    http: String,
    version: String,
}

impl Janus {
    fn start(cpus: &str, ip: IpAddr, rtp_port: u16) -> anyhow::Result<Self> {
        let dir = TempPath::dir("bench-janus")?;
        let root = dir.path();
        for (kind, module) in [("plugins", "streaming"), ("transports", "http")] {
            let folder = root.join(kind);
            std::fs::create_dir_all(&folder)?;
            let name = format!("libjanus_{module}.so");
            std::os::unix::fs::symlink(format!("{JANUS_LIB}/{kind}/{name}"), folder.join(&name))?;
        }
        for empty in ["events", "loggers"] {
            std::fs::create_dir_all(root.join(empty))?;
        }
        let interface = interface_with(ip)?;
        let http_port = free_tcp_port()?;
        let r = root.display();
        // Debian's defaults otherwise (one thread per handle, NACK buffers on). Sessions do
        // not time out: the viewers send no keepalives.
        std::fs::write(
            root.join("janus.jcfg"),
            format!(
                "general: {{\n  configs_folder = \"{r}\"\n  plugins_folder = \"{r}/plugins\"\n  \
                 transports_folder = \"{r}/transports\"\n  events_folder = \"{r}/events\"\n  \
                 loggers_folder = \"{r}/loggers\"\n  debug_level = 2\n  session_timeout = 0\n}}\n\
                 nat: {{\n  ice_enforce_list = \"{interface}\"\n  ignore_mdns = true\n}}\n"
            ),
        )?;
        std::fs::write(
            root.join("janus.transport.http.jcfg"),
            format!(
                "general: {{\n  json = \"compact\"\n  base_path = \"/janus\"\n  http = true\n  \
                 port = {http_port}\n  ip = \"127.0.0.1\"\n  https = false\n}}\n\
                 admin: {{\n  admin_http = false\n}}\n"
            ),
        )?;
        // The publisher's periodic IDR is seconds apart and Janus cannot ask the relay for
        // one: it keeps the last keyframe for newcomers instead (as Sightline does).
        std::fs::write(
            root.join("janus.plugin.streaming.jcfg"),
            format!(
                "general: {{\n}}\nbench: {{\n  type = \"rtp\"\n  id = {MOUNTPOINT}\n  \
                 description = \"bench\"\n  audio = false\n  video = true\n  \
                 videoport = {rtp_port}\n  videopt = {PT}\n  videocodec = \"h264\"\n  \
                 videofmtp = \"profile-level-id=42e01f;packetization-mode=1\"\n  \
                 videobufferkf = true\n}}\n"
            ),
        )?;
        let child = std::process::Command::new("taskset")
            .args(["-c", cpus, JANUS, "-F"])
            .arg(root)
            .arg("-o")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting janus")?;
        let pid = child.id();
        let version = std::process::Command::new(JANUS)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| {
                // "Janus version: 1102 (1.1.2)", first of the lines it prints.
                let line = s.lines().find_map(|l| l.strip_prefix("Janus version:"))?;
                Some(line.trim().to_owned())
            })
            .unwrap_or_else(|| "(version unknown)".into());
        Ok(Janus {
            _child: ChildGuard(child),
            _dir: dir,
            pid,
            http: format!("http://127.0.0.1:{http_port}/janus"),
            version,
        })
    }

    async fn wait_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let info = format!("{}/info", self.http);
        while Instant::now() < deadline {
            if http(info.clone(), None).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("janus did not answer on {info} within 15 s")
    }
}

/// The network interface holding `ip` (Janus is told to gather candidates there only).
fn interface_with(ip: IpAddr) -> anyhow::Result<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .context("running ip addr")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!(" {ip}/");
    text.lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|name| name.trim_end_matches(':').to_owned())
        .ok_or_else(|| anyhow!("no interface holds {ip}"))
}

/// One request to Janus's HTTP API (POST with `body`, else GET); its JSON reply. Janus
/// answers errors inside a 200 reply: those become errors here.
async fn http(url: String, body: Option<Value>) -> anyhow::Result<Value> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let mut reply = match &body {
            Some(body) => ureq::post(&url)
                .header("content-type", "application/json")
                .send(body.to_string())?,
            None => ureq::get(&url).call()?,
        };
        let value: Value = serde_json::from_str(&reply.body_mut().read_to_string()?)
            .with_context(|| format!("{url}: not JSON"))?;
        if value["janus"] == "error" {
            bail!("{url}: {}", value["error"]);
        }
        Ok(value)
    })
    .await?
}

/// `n` viewers of Janus joining at the load bench's pace: its figures over [`WINDOW`],
/// printed and returned. Packets are counted where the viewers receive them.
async fn janus_load(janus: &Janus, ip: IpAddr, n: usize) -> anyhow::Result<Figures> {
    let rss_idle = rss_kib(janus.pid)?;
    let packets = Arc::new(AtomicU64::new(0));
    let mut viewers = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(JOIN_EVERY);
    for _ in 0..n {
        tick.tick().await;
        let (http, packets) = (janus.http.clone(), packets.clone());
        viewers.push(LoadViewer::spawn(move |stopped, first| async move {
            let started = Instant::now();
            let watched = watch_janus(&http, ip, &packets, stopped, started, &first).await;
            Record {
                first_frame: first.get().copied(),
                error: watched.err().map(|e| format!("{e:#}")),
                ..Record::default()
            }
        }));
    }
    let with_frames = all_have_frames(&viewers, FIRST_FRAME_TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snapshot = || -> anyhow::Result<_> {
        Ok((
            process_cpu(janus.pid)?,
            packets.load(Ordering::Relaxed),
            Instant::now(),
        ))
    };
    let (c0, p0, t0) = snapshot()?;
    tokio::time::sleep(WINDOW).await;
    let (c1, p1, t1) = snapshot()?;
    let rss_loaded = rss_kib(janus.pid)?;
    let records = finish_all(viewers).await;

    let secs = (t1 - t0).as_secs_f64();
    let cpu = (c1 - c0).as_secs_f64();
    let forwarded = p1 - p0;
    let figures = Figures {
        per_packet_us: cpu * 1e6 / forwarded.max(1) as f64,
        rss_per_viewer_kib: rss_loaded.saturating_sub(rss_idle) as f64 / n as f64,
        core_share: cpu / secs,
        threads: Vec::new(),
    };
    println!(
        "janus, Janus {}, {n} viewers ({with_frames} got frames): {forwarded} packets received by the \
         viewers in {secs:.0} s; server CPU {:.1} % of a core: {:.2} µs per forwarded packet",
        janus.version,
        cpu * 100.0 / secs,
        figures.per_packet_us
    );
    println!(
        "  memory: server RSS {:.1} MiB idle, {:.1} MiB with {n} viewers: {:.0} KiB per viewer",
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        figures.rss_per_viewer_kib
    );
    report_first_frames(&format!("  janus, {n} viewers joining at 50/s"), &records);
    Ok(figures)
}

/// Session, handle, `watch`; Janus's offer from the event poll; the peer's answer with
/// `start`; then the media until `stopped`. Every RTP packet received (media and
/// retransmissions) counts in `packets`.
async fn watch_janus(
    http_base: &str,
    ip: IpAddr,
    packets: &AtomicU64,
    mut stopped: oneshot::Receiver<()>,
    started: Instant,
    first: &FirstFrame,
) -> anyhow::Result<()> {
    let tx = || fastrand::u64(..).to_string();
    let created = http(
        http_base.to_owned(),
        Some(json!({"janus": "create", "transaction": tx()})),
    )
    .await?;
    let session = format!("{http_base}/{}", created["data"]["id"]);
    let attached = http(
        session.clone(),
        Some(json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": tx()})),
    )
    .await?;
    let handle = format!("{session}/{}", attached["data"]["id"]);
    http(
        handle.clone(),
        Some(json!({"janus": "message", "transaction": tx(),
                     "body": {"request": "watch", "id": MOUNTPOINT}})),
    )
    .await?;
    let offer = loop {
        let event = http(format!("{session}?maxev=1"), None).await?;
        if let Some(error) = event["plugindata"]["data"]["error"].as_str() {
            bail!("watch refused: {error}");
        }
        if let Some(sdp) = event["jsep"]["sdp"].as_str() {
            break sdp.to_owned();
        }
    };
    let socket = UdpSocket::bind((ip, 0)).await?;
    let (mut peer, answer) = ViewerPeer::answering(socket.local_addr()?, Instant::now(), &offer)?;
    http(
        handle,
        Some(
            json!({"janus": "message", "transaction": tx(), "body": {"request": "start"},
                     "jsep": {"type": "answer", "sdp": answer, "trickle": false}}),
        ),
    )
    .await?;

    let mut buf = vec![0u8; 2048];
    let (mut send, mut events) = (Vec::<Datagram>::new(), Vec::new());
    loop {
        let wake = peer.drain(&mut send, &mut events);
        for d in send.drain(..) {
            let _ = socket.send_to(&d.contents, d.destination).await;
        }
        for event in events.drain(..) {
            match event {
                PeerEvent::Frame { .. } => {
                    let _ = first.set(started.elapsed());
                }
                PeerEvent::Lost(why) => bail!("media lost: {why}"),
                _ => {}
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received?;
                if is_rtp(&buf[..len]) {
                    packets.fetch_add(1, Ordering::Relaxed);
                }
                peer.handle_datagram(Instant::now(), from, &buf[..len]);
            }
            _ = tokio::time::sleep_until(wake.into()) => peer.handle_timeout(Instant::now()),
        }
    }
    peer.close();
    Ok(())
}

/// An RTP packet (SRTP's header is in the clear), not RTCP, STUN or DTLS.
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(192..=223).contains(&datagram[1])
}

/// One more Sightline viewer that sends every access unit it receives on to Janus as plain
/// RTP: Janus gets the very stream Sightline forwards.
struct Relay {
    frames: Arc<AtomicU64>,
    _viewer: HeadlessViewer,
    _task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(bench: &Bench, to: SocketAddr) -> anyhow::Result<Self> {
        let (tap, mut access_units) = mpsc::unbounded_channel::<Arc<[u8]>>();
        let mut config = ViewerConfig::new(bench.server.ws_url(), "bench");
        config.decode = false;
        config.tap = Some(tap);
        let viewer = HeadlessViewer::connect(config).await?;
        let socket = UdpSocket::bind("0.0.0.0:0").await?;
        let frames = Arc::new(AtomicU64::new(0));
        let counted = frames.clone();
        let task = tokio::spawn(async move {
            let mut packetizer = H264Packetizer::default();
            let (ssrc, epoch) = (fastrand::u32(..), Instant::now());
            let mut seq: u16 = fastrand::u16(..);
            while let Some(au) = access_units.recv().await {
                let time = (epoch.elapsed().as_micros() * 9 / 100) as u32;
                let Ok(payloads) = packetizer.packetize(RTP_PAYLOAD, &au) else {
                    continue;
                };
                let last = payloads.len().saturating_sub(1);
                for (i, payload) in payloads.iter().enumerate() {
                    let marker = if i == last { 0x80 } else { 0 };
                    let mut packet = Vec::with_capacity(12 + payload.len());
                    packet.extend_from_slice(&[0x80, marker | PT]);
                    packet.extend_from_slice(&seq.to_be_bytes());
                    packet.extend_from_slice(&time.to_be_bytes());
                    packet.extend_from_slice(&ssrc.to_be_bytes());
                    packet.extend_from_slice(payload);
                    let _ = socket.send_to(&packet, to).await;
                    seq = seq.wrapping_add(1);
                }
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Relay {
            frames,
            _viewer: viewer,
            _task: task,
        })
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}
