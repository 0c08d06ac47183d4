//! Outgoing datagrams of one loop turn, handed to the kernel with `sendmmsg` and UDP GSO.
//!
//! One frame fans out to every viewer in the same loop turn, so a turn produces tens to
//! hundreds of datagrams. One `sendto` each paid the syscall entry, socket lookup and
//! bookkeeping every time; collecting them and sending up to [`CHUNK`] messages per
//! `sendmmsg` pays that once per chunk. On top of that, a frame's packets to one viewer are
//! mostly full-size fragments of equal length, back to back: with UDP generic segmentation
//! offload (`UDP_SEGMENT`) such a run is one message that the kernel (or the NIC) cuts into
//! datagrams, so the per-datagram trip through the IP stack is paid once per run.
//! Datagrams keep their order and go out before the loop sleeps.
//!
//! `sendmmsg` and GSO are Linux's; elsewhere (Windows, macOS) each datagram is its own
//! `send_to`, which is slower per packet but the same in every other way.

use std::net::{SocketAddr, UdpSocket};

use crate::core::{Queued, Transmits};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux::send_chunk;

/// Messages per `sendmmsg` call (the headers live on the stack).
const CHUNK: usize = 64;

/// Most datagrams in one GSO message (the kernel's `UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// A GSO message's payload must fit one IP datagram.
const MAX_GSO_BYTES: usize = 60_000;

/// One `sendmmsg` entry: `count` datagrams of `segment` bytes (the last may be shorter),
/// contiguous in the batch's buffer from `start`.
#[derive(Debug, Clone, Copy)]
struct Message {
    destination: SocketAddr,
    start: usize,
    len: usize,
    segment: usize,
    count: usize,
}

/// How the core's queued datagrams ([`Transmits`]) are cut into `sendmmsg` messages.
#[derive(Debug)]
pub(crate) struct SendBatch {
    /// Reused between flushes.
    messages: Vec<Message>,
    /// Whether to coalesce runs with GSO; switched off for good if the kernel refuses it.
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            messages: Vec::new(),
            gso: cfg!(target_os = "linux"),
        }
    }
}

impl SendBatch {
    /// Send everything queued, in order. UDP is lossy anyway: a full send buffer drops
    /// the rest of a chunk rather than stalling every peer's media, and a datagram the
    /// kernel refuses (e.g. ICMP unreachable reported back) is skipped. The queue is left
    /// as it is: its ICE-TCP packets are sent next, then it is cleared.
    pub(crate) fn flush(&mut self, queue: &Transmits, sockets: &[UdpSocket]) {
        let items = queue.items();
        let bytes = queue.bytes();
        let mut i = 0;
        while i < items.len() {
            // A run of consecutive datagrams on the same socket (almost always all).
            let socket = items[i].socket;
            let run = items[i..]
                .iter()
                .take_while(|it| it.socket == socket)
                .count();
            self.messages.clear();
            group(&items[i..i + run], self.gso, &mut self.messages);
            match sockets.get(socket) {
                Some(s) => {
                    for chunk in self.messages.chunks(CHUNK) {
                        if !send_chunk(s, bytes, chunk) {
                            // The kernel cannot segment on this path: never try again.
                            tracing::info!("UDP GSO unavailable, sending datagrams one by one");
                            self.gso = false;
                        }
                    }
                }
                None => tracing::debug!(socket, "send on an unknown socket"),
            }
            i += run;
        }
    }
}

/// Cut one socket's datagrams into messages: with `gso`, consecutive datagrams to one
/// destination of one length (the last may be shorter) share a message.
fn group(items: &[Queued], gso: bool, out: &mut Vec<Message>) {
    let mut k = 0;
    while k < items.len() {
        let first = items[k];
        let mut m = Message {
            destination: first.destination,
            start: first.start,
            len: first.len,
            segment: first.len,
            count: 1,
        };
        k += 1;
        while gso && k < items.len() {
            let it = items[k];
            let fits = it.destination == m.destination
                && it.start == m.start + m.len
                && it.len <= m.segment
                && m.count < MAX_SEGMENTS
                && m.len + it.len <= MAX_GSO_BYTES;
            if !fits {
                break;
            }
            m.len += it.len;
            m.count += 1;
            k += 1;
            if it.len < m.segment {
                // A short datagram can only end a run.
                break;
            }
        }
        out.push(m);
    }
}

/// Send one chunk of messages, one `send_to` per datagram: the path where `sendmmsg` and
/// GSO do not exist. Never refuses GSO, since it is never asked for (see `SendBatch`).
#[cfg(not(target_os = "linux"))]
fn send_chunk(socket: &UdpSocket, bytes: &[u8], msgs: &[Message]) -> bool {
    for &m in msgs {
        send_one_by_one(socket, bytes, m);
    }
    true
}

fn send_one_by_one(socket: &UdpSocket, bytes: &[u8], m: Message) {
    let mut at = m.start;
    let end = m.start + m.len;
    while at < end {
        let len = m.segment.min(end - at);
        if let Err(e) = socket.send_to(&bytes[at..at + len], m.destination) {
            tracing::debug!(destination = %m.destination, "udp send: {e}");
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue whose socket 0 is `tx` (the tests push from `from`).
    fn queue(from: SocketAddr) -> Transmits {
        Transmits::new(vec![from], None)
    }

    #[test]
    fn batch_arrives_in_order_across_chunks_and_destinations() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (rx_a.local_addr().unwrap(), rx_b.local_addr().unwrap());
        let from = tx.local_addr().unwrap();
        let mut q = queue(from);
        let mut batch = SendBatch::default();
        let n = CHUNK * 2 + 3;
        for i in 0..n {
            let to = if i % 3 == 0 { b } else { a };
            q.push(from, to, &(i as u32).to_be_bytes());
        }
        batch.flush(&q, std::slice::from_ref(&tx));
        let mut buf = [0u8; 16];
        for i in 0..n {
            let rx = if i % 3 == 0 { &rx_b } else { &rx_a };
            let (len, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..len], &(i as u32).to_be_bytes());
        }
        // Cleared after the flush: nothing is sent twice.
        q.clear();
        batch.flush(&q, std::slice::from_ref(&tx));
        rx_a.set_nonblocking(true).unwrap();
        assert!(rx_a.recv_from(&mut buf).is_err());
    }

    #[test]
    fn a_refused_datagram_does_not_stop_the_rest() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = tx.local_addr().unwrap();
        // Socket 1 is not among the sockets handed to `flush`.
        let other = SocketAddr::from(([127, 0, 0, 2], 9));
        let mut q = Transmits::new(vec![from, other], None);
        let mut batch = SendBatch::default();
        // Port 0 is not a valid destination: the kernel refuses it (EINVAL).
        q.push(from, SocketAddr::from(([127, 0, 0, 1], 0)), b"bad");
        q.push(from, rx.local_addr().unwrap(), b"good");
        q.push(other, rx.local_addr().unwrap(), b"unknown socket");
        batch.flush(&q, std::slice::from_ref(&tx));
        let mut buf = [0u8; 16];
        let (len, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"good");
    }

    #[test]
    fn equal_runs_to_one_destination_share_a_message() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1000));
        let b = SocketAddr::from(([127, 0, 0, 1], 2000));
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut q = queue(from);
        // To a: 300 (a STAP-A), 3 x 1000, 400; to b: 1000, 1000; to a again: 1000.
        for (to, len) in [(a, 300), (a, 1000), (a, 1000), (a, 1000), (a, 400)]
            .into_iter()
            .chain([(b, 1000), (b, 1000), (a, 1000)])
        {
            q.push(from, to, &vec![0; len]);
        }
        let mut out = Vec::new();
        group(q.items(), true, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|m| (m.destination, m.count, m.segment, m.len))
            .collect();
        assert_eq!(
            got,
            vec![
                (a, 1, 300, 300),
                (a, 4, 1000, 3400),
                (b, 2, 1000, 2000),
                (a, 1, 1000, 1000),
            ]
        );
        out.clear();
        group(q.items(), false, &mut out);
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|m| m.count == 1));
    }

    #[test]
    fn a_run_never_exceeds_the_segment_limit() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1000));
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut q = queue(from);
        for _ in 0..MAX_SEGMENTS + 5 {
            q.push(from, a, &[0; 100]);
        }
        let mut out = Vec::new();
        group(q.items(), true, &mut out);
        let counts: Vec<_> = out.iter().map(|m| m.count).collect();
        assert_eq!(counts, vec![MAX_SEGMENTS, 5]);
    }

    #[test]
    fn a_gso_run_arrives_as_separate_datagrams_in_order() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let from = tx.local_addr().unwrap();
        let mut q = queue(from);
        let mut batch = SendBatch::default();
        let sizes = [200, 1100, 1100, 1100, 500];
        for (i, &len) in sizes.iter().enumerate() {
            q.push(from, to, &vec![i as u8; len]);
        }
        batch.flush(&q, std::slice::from_ref(&tx));
        let mut buf = [0u8; 2048];
        for (i, &len) in sizes.iter().enumerate() {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(n, len, "datagram {i}");
            assert!(buf[..n].iter().all(|&x| x == i as u8));
        }
    }
}
