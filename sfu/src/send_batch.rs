//! Outgoing datagrams of one loop turn, handed to the kernel with `sendmmsg`.
//!
//! One frame fans out to every viewer in the same loop turn, so a turn produces tens to
//! hundreds of datagrams. One `sendto` each paid the syscall entry, socket lookup and
//! bookkeeping every time; collecting them and sending up to [`CHUNK`] per `sendmmsg`
//! pays that once per chunk. Datagrams keep their order and go out before the loop sleeps.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Messages per `sendmmsg` call (the headers live on the stack).
const CHUNK: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Item {
    socket: usize,
    destination: SocketAddr,
    start: usize,
    len: usize,
}

/// Datagrams waiting to be sent: their bytes back to back in one reused buffer.
#[derive(Debug, Default)]
pub(crate) struct SendBatch {
    bytes: Vec<u8>,
    items: Vec<Item>,
}

impl SendBatch {
    pub(crate) fn push(&mut self, socket: usize, destination: SocketAddr, data: &[u8]) {
        self.items.push(Item {
            socket,
            destination,
            start: self.bytes.len(),
            len: data.len(),
        });
        self.bytes.extend_from_slice(data);
    }

    /// Send everything queued, in order. UDP is lossy anyway: a full send buffer drops
    /// the rest of a chunk rather than stalling every peer's media, and a datagram the
    /// kernel refuses (e.g. ICMP unreachable reported back) is skipped.
    pub(crate) fn flush(&mut self, sockets: &[UdpSocket]) {
        let mut i = 0;
        while i < self.items.len() {
            // A run of consecutive datagrams on the same socket (almost always all).
            let socket = self.items[i].socket;
            let run = self.items[i..]
                .iter()
                .take(CHUNK)
                .take_while(|it| it.socket == socket)
                .count();
            let chunk = &self.items[i..i + run];
            match sockets.get(socket) {
                Some(s) => send_chunk(s, &self.bytes, chunk),
                None => tracing::debug!(socket, "send on an unknown socket"),
            }
            i += run;
        }
        self.items.clear();
        self.bytes.clear();
    }
}

fn send_chunk(socket: &UdpSocket, bytes: &[u8], items: &[Item]) {
    debug_assert!(items.len() <= CHUNK);
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; CHUNK] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; CHUNK] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
    for (k, it) in items.iter().enumerate() {
        let addr_len = write_sockaddr(it.destination, &mut addrs[k]);
        iovs[k] = libc::iovec {
            iov_base: bytes[it.start..].as_ptr() as *mut libc::c_void,
            iov_len: it.len,
        };
        hdrs[k].msg_hdr.msg_name = &mut addrs[k] as *mut _ as *mut libc::c_void;
        hdrs[k].msg_hdr.msg_namelen = addr_len;
        hdrs[k].msg_hdr.msg_iov = &mut iovs[k];
        hdrs[k].msg_hdr.msg_iovlen = 1;
    }
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < items.len() {
        let rest = (items.len() - sent) as libc::c_uint;
        // SAFETY: the headers point into `addrs`, `iovs` and `bytes`, all alive and
        // unmoved for the duration of the call; `rest` headers from `sent` are initialised.
        let n = unsafe { libc::sendmmsg(fd, hdrs[sent..].as_mut_ptr(), rest, 0) };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                tracing::debug!(dropped = items.len() - sent, "udp send buffer full");
                return;
            }
            _ => {
                // The error belongs to the first unsent datagram: skip it, send the rest.
                tracing::debug!(destination = %items[sent].destination, "udp send: {e}");
                sent += 1;
            }
        }
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

    #[test]
    fn batch_arrives_in_order_across_chunks_and_destinations() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (rx_a.local_addr().unwrap(), rx_b.local_addr().unwrap());
        let mut batch = SendBatch::default();
        let n = CHUNK * 2 + 3;
        for i in 0..n {
            let to = if i % 3 == 0 { b } else { a };
            batch.push(0, to, &(i as u32).to_be_bytes());
        }
        batch.flush(std::slice::from_ref(&tx));
        let mut buf = [0u8; 16];
        for i in 0..n {
            let rx = if i % 3 == 0 { &rx_b } else { &rx_a };
            let (len, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..len], &(i as u32).to_be_bytes());
        }
        // Flushed: nothing is sent twice.
        batch.flush(std::slice::from_ref(&tx));
        rx_a.set_nonblocking(true).unwrap();
        assert!(rx_a.recv_from(&mut buf).is_err());
    }

    #[test]
    fn a_refused_datagram_does_not_stop_the_rest() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = SendBatch::default();
        // Port 0 is not a valid destination: the kernel refuses it (EINVAL).
        batch.push(0, SocketAddr::from(([127, 0, 0, 1], 0)), b"bad");
        batch.push(0, rx.local_addr().unwrap(), b"good");
        batch.push(7, rx.local_addr().unwrap(), b"unknown socket");
        batch.flush(std::slice::from_ref(&tx));
        let mut buf = [0u8; 16];
        let (len, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"good");
    }
}
