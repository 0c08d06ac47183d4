//! The Linux fast path: up to [`CHUNK`] messages per `sendmmsg`, each run of equal
//! datagrams one message with a `UDP_SEGMENT` control message.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use super::{send_one_by_one, Message, CHUNK};

/// Room for one `UDP_SEGMENT` control message (`CMSG_SPACE(2)` is 24 on 64-bit Linux).
const CMSG_BUF: usize = 32;

/// Returns false if a GSO message was refused as such (`EIO`: no checksum offload on the
/// route); its datagrams were then sent one by one.
pub(super) fn send_chunk(socket: &UdpSocket, bytes: &[u8], msgs: &[Message]) -> bool {
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
