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

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use crate::core::{Queued, Transmits};

/// Messages per `sendmmsg` call (the headers live on the stack).
const CHUNK: usize = 64;
/// Most datagrams in one GSO message (the kernel's `UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// A GSO message's payload must fit one IP datagram.
const MAX_GSO_BYTES: usize = 60_000;
/// Room for one `UDP_SEGMENT` control message (`CMSG_SPACE(2)` is 24 on 64-bit Linux).
const CMSG_BUF: usize = 32;

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

/// Returns false if a GSO message was refused as such (`EIO`: no checksum offload on the
/// route); its datagrams were then sent one by one.
fn send_chunk(socket: &UdpSocket, bytes: &[u8], msgs: &[Message]) -> bool {
    debug_assert!(msgs.len() <= CHUNK);
    let mut gso_ok = true;
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; CHUNK] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; CHUNK] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
    // u64 keeps the control buffers aligned for `cmsghdr`.
    let mut cmsgs = [[0u64; CMSG_BUF / 8]; CHUNK];
    for (k, m) in msgs.iter().enumerate() {
        let addr_len = write_sockaddr(m.destination, &mut addrs[k]);
        iovs[k] = libc::iovec {
            iov_base: bytes[m.start..].as_ptr() as *mut libc::c_void,
            iov_len: m.len,
        };
        let h = &mut hdrs[k].msg_hdr;
        h.msg_name = &mut addrs[k] as *mut _ as *mut libc::c_void;
        h.msg_namelen = addr_len;
        h.msg_iov = &mut iovs[k];
        h.msg_iovlen = 1;
        if m.count > 1 {
            // SAFETY: the buffer is CMSG_BUF bytes, aligned, and larger than CMSG_SPACE(2).
            unsafe { set_segment_size(h, &mut cmsgs[k], m.segment as u16) };
        }
    }
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < msgs.len() {
        let rest = (msgs.len() - sent) as libc::c_uint;
        // SAFETY: the headers point into `addrs`, `iovs`, `cmsgs` and `bytes`, all alive
        // and unmoved for the duration of the call; `rest` headers from `sent` are set up.
        let n = unsafe { libc::sendmmsg(fd, hdrs[sent..].as_mut_ptr(), rest, 0) };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        let m = msgs[sent];
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                tracing::debug!(dropped = msgs.len() - sent, "udp send buffer full");
                return gso_ok;
            }
            _ if m.count > 1 && e.raw_os_error() == Some(libc::EIO) => {
                gso_ok = false;
                send_one_by_one(socket, bytes, m);
                sent += 1;
            }
            _ => {
                // The error belongs to the first unsent message: skip it, send the rest.
                tracing::debug!(destination = %m.destination, "udp send: {e}");
                sent += 1;
            }
        }
    }
    gso_ok
}

/// Attach `UDP_SEGMENT` (the datagram size the kernel cuts the message into) to `h`.
///
/// # Safety
/// `buf` must stay alive and unmoved until the message is sent.
unsafe fn set_segment_size(h: &mut libc::msghdr, buf: &mut [u64; CMSG_BUF / 8], segment: u16) {
    h.msg_control = buf.as_mut_ptr() as *mut libc::c_void;
    h.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as _;
    let c = libc::CMSG_FIRSTHDR(h);
    (*c).cmsg_level = libc::SOL_UDP;
    (*c).cmsg_type = libc::UDP_SEGMENT;
    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, segment);
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
/// Fill `out` with `addr` in C form; returns the length that is meaningful.
fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
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
