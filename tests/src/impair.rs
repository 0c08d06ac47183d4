//! A bad network between the SFU and everyone who talks to it: loss, delay and reordering
//! on every UDP datagram to and from the SFU's media port, both ways. netem is not
//! available here, so a userspace relay does it.
//!
//! Nobody is told about the relay. An nftables rule in this network namespace sends every
//! datagram for the SFU's port to the relay instead (DNAT in the output hook, so it works on
//! loopback); the relay passes it on to the SFU from an address of its own, one socket per
//! client, as a NAT would; the SFU's answers come back the same way, and conntrack rewrites
//! their source so the client sees the SFU's address. The SFU is ice-lite and never sends
//! first, so every flow starts at a client and goes through the relay. The SFU sees the
//! relay's sockets as peer-reflexive candidates, as it would see a client behind a NAT.
//!
//! Only inside the test namespace (`scripts/netns`, as root): rules go in this namespace's
//! nftables, and there they must not touch the machine's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// The relay's own address towards the SFU: datagrams from it are the relay's, and the
/// rule lets them through untouched.
const RELAY_UPSTREAM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// What the network does to each datagram, each way.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Share of datagrams lost (0.05: 5 %).
    pub loss: f64,
    /// Delay each way: half the round-trip time.
    pub delay: Duration,
    /// Share of datagrams held back by `reorder_by` more, so that the ones after them
    /// arrive first.
    pub reorder: f64,
    pub reorder_by: Duration,
    /// Drop every DTLS record the SFU sends (RFC 7983: first byte 20–63): ICE connects, the
    /// handshake never finishes.
    pub block_dtls_answers: bool,
}

impl Impairment {
    /// A poor mobile link: 5 % loss each way, 100 ms round trip, 10 % of datagrams late by
    /// 15 ms (half a frame at 30 fps, so they fall behind the next packets).
    pub fn poor_mobile() -> Self {
        Impairment {
            loss: 0.05,
            delay: Duration::from_millis(50),
            reorder: 0.10,
            reorder_by: Duration::from_millis(15),
            block_dtls_answers: false,
        }
    }

    /// A path that passes STUN and media but no DTLS from the SFU: a handshake stuck after
    /// ICE, as a client whose DTLS stops resending meets it.
    pub fn dtls_stuck() -> Self {
        Impairment {
            loss: 0.0,
            delay: Duration::ZERO,
            reorder: 0.0,
            reorder_by: Duration::ZERO,
            block_dtls_answers: true,
        }
    }
}

/// What the relay did, both ways together.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayCounts {
    /// Datagrams passed on (some late).
    pub forwarded: u64,
    pub lost: u64,
    /// Of those forwarded, the ones held back so later ones overtook them.
    pub reordered: u64,
    /// Clients seen (one relay socket each towards the SFU).
    pub clients: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    clients: AtomicU64,
}

/// The relay and its rule; dropping it takes both away.
pub struct ImpairmentRelay {
    table: String,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl ImpairmentRelay {
    /// Put `impairment` between the SFU at `sfu` (a loopback address) and every client that
    /// sends to it from now on. `seed` makes the dice the same on every run.
    pub async fn start(sfu: SocketAddr, impairment: Impairment, seed: u64) -> anyhow::Result<Self> {
        if std::env::var_os("SIGHTLINE_NETNS").is_none() {
            bail!("the impairment relay changes nftables rules: run inside scripts/netns");
        }
        let IpAddr::V4(sfu_ip) = sfu.ip() else {
            bail!("the impairment relay handles IPv4 only, not {sfu}");
        };
        let listen = Arc::new(UdpSocket::bind(SocketAddr::new(sfu.ip(), 0)).await?);
        let relay_port = listen.local_addr()?.port();
        let table = format!("sightline_impair_{}", sfu.port());
        let rules = format!(
            "table ip {table} {{\n\
               chain out {{\n\
                 type nat hook output priority -100; policy accept;\n\
                 ip daddr {sfu_ip} udp dport {port} ip saddr != {RELAY_UPSTREAM_IP} \
                   dnat to {sfu_ip}:{relay_port}\n\
               }}\n\
             }}\n",
            port = sfu.port(),
        );
        nft(&rules).context("installing the impairment relay's DNAT rule")?;
        let counters = Arc::new(Counters::default());
        let dice = Arc::new(Dice {
            impairment,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counters: counters.clone(),
        });
        let task = tokio::spawn(relay(listen, sfu, dice));
        Ok(ImpairmentRelay {
            table,
            counters,
            task,
        })
    }

    pub fn counts(&self) -> RelayCounts {
        let c = &self.counters;
        RelayCounts {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
            clients: c.clients.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ImpairmentRelay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = nft(&format!("delete table ip {}\n", self.table));
    }
}

fn nft(rules: &str) -> anyhow::Result<()> {
    use std::io::Write;
    // nft lives in /usr/sbin, often not on a user's PATH.
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("nft");
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {nft} (scripts/setup --test installs nftables)"))?;
    child
        .stdin
        .take()
        .context("nft's stdin")?
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Decides each datagram's fate, and counts.
struct Dice {
    impairment: Impairment,
    rng: Mutex<fastrand::Rng>,
    counters: Arc<Counters>,
}

impl Dice {
    /// `None`: lost. Otherwise, how long to hold the datagram.
    fn roll(&self) -> Option<Duration> {
        let (lost, late) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.f64() < self.impairment.loss,
                rng.f64() < self.impairment.reorder,
            )
        };
        if lost {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        if late {
            self.counters.reordered.fetch_add(1, Ordering::Relaxed);
            return Some(self.impairment.delay + self.impairment.reorder_by);
        }
        Some(self.impairment.delay)
    }

    /// Send `datagram` from `socket` to `to` after the network has had its way with it.
    fn pass(&self, socket: &Arc<UdpSocket>, datagram: &[u8], to: SocketAddr) {
        let Some(hold) = self.roll() else { return };
        let socket = socket.clone();
        let datagram = datagram.to_vec();
        // A task per datagram: a few hundred a second, and each keeps its own deadline.
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let _ = socket.send_to(&datagram, to).await;
        });
    }
}

/// Clients → SFU on `listen`; each new client gets its own socket towards the SFU, whose
/// answers go back out of `listen` (where conntrack gives them the SFU's address).
async fn relay(listen: Arc<UdpSocket>, sfu: SocketAddr, dice: Arc<Dice>) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    // Dropped with the relay's task, which aborts every answering task.
    let mut answers = JoinSet::new();
    loop {
        // An error here is an ICMP report for an earlier send (a client's socket gone):
        // the relay serves the others on.
        let Ok((n, client)) = listen.recv_from(&mut buf).await else {
            continue;
        };
        let upstream = match upstreams.get(&client) {
            Some(u) => u.clone(),
            None => {
                let Ok(socket) = UdpSocket::bind(SocketAddr::new(RELAY_UPSTREAM_IP, 0)).await
                else {
                    continue;
                };
                let socket = Arc::new(socket);
                dice.counters.clients.fetch_add(1, Ordering::Relaxed);
                answers.spawn(answer(socket.clone(), listen.clone(), client, dice.clone()));
                upstreams.insert(client, socket.clone());
                socket
            }
        };
        dice.pass(&upstream, &buf[..n], sfu);
    }
}

/// SFU → one client.
async fn answer(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    dice: Arc<Dice>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Ok((n, _)) = upstream.recv_from(&mut buf).await {
            let dtls = (20..=63).contains(&buf[0]);
            if dtls && dice.impairment.block_dtls_answers {
                dice.counters.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            dice.pass(&listen, &buf[..n], client);
        }
    }
}

/// What one viewer saw of one camera through [`Impairment::poor_mobile`] on both legs.
#[derive(Debug, Clone)]
pub struct PoorNetworkRun {
    /// Pictures decoded while watching (after the first).
    pub frames: u64,
    pub watched: Duration,
    /// The longest time between two decoded pictures.
    pub longest_freeze: Duration,
    /// Times the picture stood still for more than 200 ms.
    pub freezes_over_200ms: u64,
    /// Capture → decoded, median, in ms.
    pub latency_p50_ms: u64,
    pub relay: RelayCounts,
    pub viewer: crate::ViewerStats,
    pub sfu: sightline_sfu::SfuStats,
}

impl std::fmt::Display for PoorNetworkRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (r, v, s) = (&self.relay, &self.viewer, &self.sfu);
        write!(
            f,
            "{} frames in {:?}, longest freeze {} ms, {} freezes over 200 ms, latency p50 {} ms; \
             relay: {} forwarded, {} lost, {} reordered; viewer: {} NACKs, {} RTX, {} keyframe \
             requests; SFU: {} NACKs to the publisher, {} frames in after unrepaired loss, {} \
             keyframe requests to the publisher",
            self.frames,
            self.watched,
            self.longest_freeze.as_millis(),
            self.freezes_over_200ms,
            self.latency_p50_ms,
            r.forwarded,
            r.lost,
            r.reordered,
            v.nacks_sent,
            v.rtx_packets_received,
            v.keyframe_requests_sent,
            s.nacks_sent,
            s.frames_after_loss,
            s.keyframe_requests_sent,
        )
    }
}

/// A server, the relay on its media port, a test-pattern publisher (320×240, 30 fps) and a
/// decoding viewer that asks for keyframes as browsers do; the viewer watches for `watch`
/// from its first picture. Everything is torn down before returning.
pub async fn watch_through_poor_network(
    watch: Duration,
    seed: u64,
) -> anyhow::Result<PoorNetworkRun> {
    use crate::{HeadlessViewer, TestServer, ViewerConfig, ViewerEvent};
    const CAMERA: &str = "cam-poor-network";

    let mut config = crate::harness::loopback_server_config();
    // UDP only: ICE-TCP would go round the relay.
    config.sfu.tcp_port = None;
    let server = TestServer::start_with(config).await?;
    let sfu_addr = *server
        .sfu()
        .local_addrs()
        .first()
        .context("the SFU has no socket")?;
    let relay = ImpairmentRelay::start(sfu_addr, Impairment::poor_mobile(), seed).await?;
    let publisher = server.start_camera(CAMERA).await?;
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), CAMERA)).await?;

    // 45 s: one in a few handshakes over this link strands in webrtc-rs's DTLS client (see
    // BENCHMARKS.md, "Faults") and the publisher only starts again after its 20 s media
    // timeout. That costs a slow first picture, not a failed run.
    let first = viewer
        .next_frame(Duration::from_secs(45))
        .await
        .with_context(|| format!("no first picture through the relay: {:?}", relay.counts()))?;
    let mut last_at = first.received_at_us;
    let (mut frames, mut freezes) = (0, 0);
    let mut longest_freeze = Duration::ZERO;
    let mut latencies = Vec::new();
    let end = tokio::time::Instant::now() + watch;
    while tokio::time::Instant::now() < end {
        match viewer.next_event(Duration::from_secs(5)).await? {
            ViewerEvent::Frame(f) => {
                let gap = Duration::from_micros(f.received_at_us.saturating_sub(last_at));
                longest_freeze = longest_freeze.max(gap);
                freezes += u64::from(gap > Duration::from_millis(200));
                last_at = f.received_at_us;
                frames += 1;
                if let Some(stamp) = f.stamp {
                    latencies.push(f.received_at_us.saturating_sub(stamp.capture_us) / 1000);
                }
            }
            ViewerEvent::Disconnected { reason, .. } => {
                bail!("the viewer lost its session: {reason}")
            }
            _ => {}
        }
    }
    latencies.sort_unstable();
    let run = PoorNetworkRun {
        frames,
        watched: watch,
        longest_freeze,
        freezes_over_200ms: freezes,
        latency_p50_ms: latencies.get(latencies.len() / 2).copied().unwrap_or(0),
        relay: relay.counts(),
        viewer: viewer.stats(),
        sfu: server.sfu().stats().await,
    };
    viewer.close().await;
    publisher.stop().await;
    server.shutdown().await;
    drop(relay);
    Ok(run)
}
