//! ICE over TCP: passive candidates (RFC 6544), packets framed with a 2-byte length
//! (RFC 4571), for viewers whose network lets no UDP out.
//!
//! Each accepted connection gets a task that reads frames and hands them to the driver
//! loop, and a writer task that drains the connection's own queue. The loop never waits
//! on a socket: it puts framed packets in that queue and, once the queue holds
//! [`MAX_QUEUED`] bytes, drops the packet instead and tells the core, which holds that
//! viewer back until the next keyframe. Nobody else's media waits for a slow reader.
//!
//! A connection that has carried nothing but STUN [`ICE_DEADLINE`] after it was accepted
//! (ICE never finished on it: a port scan, a pair the viewer did not pick) is closed, and
//! so is one silent for [`IDLE_TIMEOUT`] (browsers send consent checks every few seconds).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::core::Transmits;

/// Bytes a connection may have waiting to be written before its packets are dropped.
pub(crate) const MAX_QUEUED: usize = 256 * 1024;
/// Time a new connection has to carry something other than STUN (DTLS: ICE finished).
pub(crate) const ICE_DEADLINE: Duration = Duration::from_secs(10);
/// Longest silence from a connection in use.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames and connection news waiting for the driver loop, from all connections.
const EVENT_QUEUE: usize = 1024;

/// What the connection tasks tell the driver loop.
pub(crate) enum TcpEvent {
    Opened {
        local: SocketAddr,
        remote: SocketAddr,
        conn: Connection,
    },
    Frame {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Closed {
        local: SocketAddr,
        remote: SocketAddr,
    },
}

/// The driver loop's side of one connection: its write queue and the bytes in it.
pub(crate) struct Connection {
    out: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// The listeners and the open connections, by (our address, theirs).
pub(crate) struct TcpMedia {
    addrs: Vec<SocketAddr>,
    conns: HashMap<(SocketAddr, SocketAddr), Connection>,
    events: mpsc::Receiver<TcpEvent>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl TcpMedia {
    /// No listeners: ICE-TCP is off.
    pub(crate) fn off() -> TcpMedia {
        let (_, events) = mpsc::channel(1);
        TcpMedia {
            addrs: Vec::new(),
            conns: HashMap::new(),
            events,
            accept_tasks: Vec::new(),
        }
    }

    /// Listen on `port` at each of `ips` (port 0: the first listener picks one and the
    /// others share it).
    pub(crate) fn bind(ips: &[std::net::IpAddr], port: u16) -> io::Result<TcpMedia> {
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let mut port = port;
        let mut addrs = Vec::new();
        let mut listeners = Vec::new();
        for &ip in ips {
            let addr = SocketAddr::new(ip, port);
            let std_listener = std::net::TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("binding TCP {addr}: {e}")))?;
            std_listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std_listener)?;
            let local = listener.local_addr()?;
            port = local.port();
            addrs.push(local);
            listeners.push(listener);
        }
        let accept_tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, tx.clone())))
            .collect();
        Ok(TcpMedia {
            addrs,
            conns: HashMap::new(),
            events,
            accept_tasks,
        })
    }

    /// The listeners' addresses.
    pub(crate) fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub(crate) fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The next event from any connection; pending forever when ICE-TCP is off.
    pub(crate) async fn recv(&mut self) -> TcpEvent {
        match self.events.recv().await {
            Some(ev) => ev,
            None => std::future::pending().await,
        }
    }

    pub(crate) fn try_recv(&mut self) -> Option<TcpEvent> {
        self.events.try_recv().ok()
    }

    /// Keep track of opened and closed connections; a frame is returned for the core.
    pub(crate) fn track(&mut self, event: TcpEvent) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        match event {
            TcpEvent::Opened {
                local,
                remote,
                conn,
            } => {
                self.conns.insert((local, remote), conn);
                None
            }
            TcpEvent::Closed { local, remote } => {
                self.conns.remove(&(local, remote));
                None
            }
            TcpEvent::Frame {
                local,
                remote,
                data,
            } => Some((local, remote, data)),
        }
    }

    /// Queue the turn's TCP packets on their connections: a connection's run of packets
    /// (a frame for a viewer) goes out framed in one buffer, one allocation and one write.
    /// The remote address of each packet that did not fit goes to `dropped`; packets for
    /// connections that are gone are forgotten.
    pub(crate) fn send(&mut self, transmits: &Transmits, dropped: &mut Vec<SocketAddr>) {
        let bytes = transmits.bytes();
        let mut run: Option<((SocketAddr, SocketAddr), Vec<u8>)> = None;
        for t in transmits.tcp_items() {
            let key = (t.local, t.remote);
            if run.as_ref().is_some_and(|(k, _)| *k != key) {
                self.enqueue(run.take());
            }
            let Some(conn) = self.conns.get(&key) else {
                tracing::debug!(remote = %t.remote, "TCP packet for a closed connection");
                continue;
            };
            let Ok(len) = u16::try_from(t.len) else {
                continue;
            };
            let buf = &mut run.get_or_insert_with(|| (key, Vec::new())).1;
            if conn.queued.load(Ordering::Relaxed) + buf.len() + 2 + t.len > MAX_QUEUED {
                dropped.push(t.remote);
                continue;
            }
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&bytes[t.start..t.start + t.len]);
        }
        self.enqueue(run);
    }

    /// Hand one connection's framed packets to its writer.
    fn enqueue(&self, run: Option<((SocketAddr, SocketAddr), Vec<u8>)>) {
        let Some((key, buf)) = run.filter(|(_, buf)| !buf.is_empty()) else {
            return;
        };
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        let n = buf.len();
        conn.queued.fetch_add(n, Ordering::Relaxed);
        if conn.out.send(buf).is_err() {
            // The writer ended; its Closed event is on the way.
            conn.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl Drop for TcpMedia {
    fn drop(&mut self) {
        // Stop accepting, so a restarted server can bind the port; open connections end
        // as their queues close.
        for t in &self.accept_tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                tokio::spawn(serve(stream, local, remote, events.clone()));
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!(%local, "ICE-TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if events.is_closed() {
            return;
        }
    }
}

/// One connection, from accept to close.
async fn serve(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
) {
    // Media: every packet goes out as soon as it is written.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (out, queue) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let conn = Connection {
        out,
        queued: queued.clone(),
    };
    let opened = TcpEvent::Opened {
        local,
        remote,
        conn,
    };
    if events.send(opened).await.is_err() {
        return;
    }
    let writing = tokio::spawn(write_loop(writer, queue, queued));
    let why = read_loop(reader, local, remote, &events).await;
    tracing::debug!(%remote, "ICE-TCP connection closed: {why}");
    writing.abort();
    let _ = events.send(TcpEvent::Closed { local, remote }).await;
}

/// Read frames until the connection ends, breaks the rules or the driver stops; returns
/// why it ended.
async fn read_loop(
    mut reader: OwnedReadHalf,
    local: SocketAddr,
    remote: SocketAddr,
    events: &mpsc::Sender<TcpEvent>,
) -> String {
    let mut deadline = Instant::now() + ICE_DEADLINE;
    let mut in_use = false;
    loop {
        let frame = tokio::time::timeout_at(deadline, read_frame(&mut reader)).await;
        let data = match frame {
            Err(_) if in_use => return format!("silent for {IDLE_TIMEOUT:?}"),
            Err(_) => return format!("ICE not finished after {ICE_DEADLINE:?}"),
            Ok(Err(e)) => return e.to_string(),
            Ok(Ok(data)) => data,
        };
        if data.is_empty() {
            continue;
        }
        in_use |= !is_stun(&data);
        if in_use {
            deadline = Instant::now() + IDLE_TIMEOUT;
        }
        let frame = TcpEvent::Frame {
            local,
            remote,
            data,
        };
        if events.send(frame).await.is_err() {
            return "SFU stopped".into();
        }
    }
}

/// One RFC 4571 frame: a 16-bit big-endian length, then that many bytes.
async fn read_frame(reader: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let len = reader.read_u16().await?;
    let mut data = vec![0u8; usize::from(len)];
    reader.read_exact(&mut data).await?;
    Ok(data)
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(buf) = queue.recv().await {
        if writer.write_all(&buf).await.is_err() {
            return;
        }
        queued.fetch_sub(buf.len(), Ordering::Relaxed);
    }
    let _ = writer.shutdown().await;
}

/// STUN (RFC 7983 demultiplexing: first byte 0..=3); DTLS and SRTP start higher.
fn is_stun(data: &[u8]) -> bool {
    data.first().is_some_and(|&b| b <= 3)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use tokio::io::AsyncReadExt;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    /// A STUN binding request's first bytes, framed.
    const STUN: [u8; 6] = [0, 4, 0x00, 0x01, 0x00, 0x00];

    async fn listening() -> (TcpMedia, SocketAddr) {
        let tcp = TcpMedia::bind(&[LOOPBACK], 0).unwrap();
        let addr = tcp.local_addrs()[0];
        (tcp, addr)
    }

    /// Take events until `done` says so, keeping the connection table up to date; frames
    /// are returned.
    async fn pump(tcp: &mut TcpMedia, done: impl Fn(&TcpMedia) -> bool) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while !done(tcp) {
            let event = tokio::time::timeout(Duration::from_secs(60), tcp.recv())
                .await
                .expect("a TCP event");
            if let Some((_, _, data)) = tcp.track(event) {
                frames.push(data);
            }
        }
        frames
    }

    /// The next frame from any connection, with its two ends.
    async fn next_frame(tcp: &mut TcpMedia) -> (SocketAddr, SocketAddr, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let event = tcp.recv().await;
                if let Some(frame) = tcp.track(event) {
                    return frame;
                }
            }
        })
        .await
        .expect("a frame")
    }

    #[test]
    fn stun_is_told_from_dtls_and_rtp() {
        assert!(is_stun(&[0x00, 0x01, 0x00, 0x00]));
        assert!(!is_stun(&[22, 0xfe, 0xfd]));
        assert!(!is_stun(&[0x80, 96]));
        assert!(!is_stun(&[]));
    }

    #[tokio::test]
    async fn frames_arrive_whole_and_go_out_framed() {
        let (mut tcp, addr) = listening().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        // One frame split across writes, an empty frame, then a second one.
        client.write_all(&[0, 3, 22]).await.unwrap();
        client
            .write_all(&[1, 2, 0, 0, 0, 2, 0x80, 7])
            .await
            .unwrap();
        let ends = (addr, client.local_addr().unwrap());
        assert_eq!(next_frame(&mut tcp).await, (ends.0, ends.1, vec![22, 1, 2]));
        assert_eq!(next_frame(&mut tcp).await, (ends.0, ends.1, vec![0x80, 7]));
        assert_eq!(tcp.connections(), 1);

        let mut q = Transmits::new(Vec::new(), None);
        q.push_tcp(addr, client.local_addr().unwrap(), b"hello");
        q.push_tcp(addr, client.local_addr().unwrap(), b"ab");
        let mut dropped = Vec::new();
        tcp.send(&q, &mut dropped);
        assert!(dropped.is_empty());
        let mut buf = [0u8; 11];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"\0\x05hello\0\x02ab");
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_loses_packets_and_stalls_nothing() {
        let (mut tcp, addr) = listening().await;
        let client = TcpStream::connect(addr).await.unwrap();
        let remote = client.local_addr().unwrap();
        pump(&mut tcp, |t| t.connections() == 1).await;
        let mut q = Transmits::new(Vec::new(), None);
        let mut dropped = Vec::new();
        // 8 MB for a reader that never reads: far more than its queue and the kernel's
        // buffers hold. Each `send` returns at once.
        for _ in 0..100 {
            for _ in 0..64 {
                q.push_tcp(addr, remote, &[0x80; 1200]);
            }
            let started = std::time::Instant::now();
            tcp.send(&q, &mut dropped);
            assert!(started.elapsed() < Duration::from_millis(500));
            q.clear();
            tokio::task::yield_now().await;
        }
        assert!(!dropped.is_empty() && dropped.iter().all(|&r| r == remote));
        let queued = tcp.conns[&(addr, remote)].queued.load(Ordering::Relaxed);
        assert!(queued <= MAX_QUEUED, "{queued}");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_finishes_ice_is_closed() {
        let (mut tcp, addr) = listening().await;
        let mut stun_only = TcpStream::connect(addr).await.unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        pump(&mut tcp, |t| t.connections() == 2).await;
        stun_only.write_all(&STUN).await.unwrap();
        let started = Instant::now();
        pump(&mut tcp, |t| t.connections() == 0).await;
        assert!(started.elapsed() >= ICE_DEADLINE - Duration::from_millis(100));
        let mut buf = [0u8; 1];
        assert_eq!(stun_only.read(&mut buf).await.unwrap(), 0, "closed");
        assert_eq!(silent.read(&mut buf).await.unwrap(), 0, "closed");
    }

    #[tokio::test]
    async fn a_frame_cut_short_ends_only_its_connection() {
        let (mut tcp, addr) = listening().await;
        let mut good = TcpStream::connect(addr).await.unwrap();
        let mut bad = TcpStream::connect(addr).await.unwrap();
        pump(&mut tcp, |t| t.connections() == 2).await;
        // Says 1000 bytes, sends 3 and hangs up.
        bad.write_all(&[0x03, 0xe8, 1, 2, 3]).await.unwrap();
        drop(bad);
        pump(&mut tcp, |t| t.connections() == 1).await;
        good.write_all(&[0, 2, 0x80, 1]).await.unwrap();
        assert_eq!(next_frame(&mut tcp).await.2, vec![0x80, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_idle_connections_are_held() {
        let (mut tcp, addr) = listening().await;
        let mut clients = Vec::new();
        for _ in 0..1000 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        pump(&mut tcp, |t| t.connections() == 1000).await;
        drop(clients);
        pump(&mut tcp, |t| t.connections() == 0).await;
    }
}
