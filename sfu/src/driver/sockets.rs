//! The UDP sockets media uses: one per local address, all on one port.
//!
//! Each socket is bound to a concrete address (never `0.0.0.0`), so the address a packet
//! arrived on is known without `IP_PKTINFO`: str0m needs it as `Receive.destination` and
//! drops STUN whose destination is not one of its host candidates.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::Poll;

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::{SfuConfig, SfuError};

/// One receive: `(socket index, length, source)`, or the error with its socket index.
pub(crate) type Recv = Result<(usize, usize, SocketAddr), (usize, io::Error)>;

pub(crate) struct Sockets {
    sockets: Vec<UdpSocket>,
    /// The same sockets for sending. A plain non-blocking `sendmmsg` goes straight to the
    /// kernel; tokio's `try_send_to` would first consult its readiness cache, which reports
    /// "would block" until the reactor has seen the socket writable once.
    senders: Vec<std::net::UdpSocket>,
    /// `local_addr()` of each socket, same order.
    addrs: Vec<SocketAddr>,
    /// The 1:1 NAT public address and the socket index its traffic arrives on.
    public: Option<(SocketAddr, usize)>,
    /// Where the next receive scan starts, so one busy socket cannot starve the others.
    next_first: usize,
}

/// The IPs to bind: the configured ones, or every local IPv4 interface address.
fn bind_ips(config: &SfuConfig) -> Result<Vec<IpAddr>, SfuError> {
    if !config.bind_ips.is_empty() {
        return Ok(config.bind_ips.clone());
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4())
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    Ok(ips)
}

impl Sockets {
    pub(crate) fn bind(config: &SfuConfig) -> Result<Sockets, SfuError> {
        let ips = bind_ips(config)?;
        let mut port = config.udp_port;
        let mut sockets = Vec::with_capacity(ips.len());
        let mut senders = Vec::with_capacity(ips.len());
        let mut addrs = Vec::with_capacity(ips.len());
        for ip in ips {
            let std_socket = std::net::UdpSocket::bind(SocketAddr::new(ip, port))
                .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {ip}:{port}: {e}")))?;
            std_socket.set_nonblocking(true)?;
            senders.push(std_socket.try_clone()?);
            let socket = UdpSocket::from_std(std_socket)?;
            let addr = socket.local_addr()?;
            // With port 0 the first socket picks the port; the others must share it, since
            // "one UDP port" is what firewalls and NATs are configured for.
            port = addr.port();
            sockets.push(socket);
            addrs.push(addr);
        }
        let public = config.public_ip.map(|ip| {
            let idx = addrs
                .iter()
                .position(|a| !a.ip().is_loopback())
                .unwrap_or(0);
            (SocketAddr::new(ip, port), idx)
        });
        Ok(Sockets {
            sockets,
            senders,
            addrs,
            public,
            next_first: 0,
        })
    }

    pub(crate) fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Addresses to advertise as host candidates: every socket's, then the public one
    /// (the core builds the same list from `local_addrs` and `public`).
    #[cfg(test)]
    pub(crate) fn advertised(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs
            .iter()
            .copied()
            .chain(self.public.map(|(a, _)| a))
    }

    #[cfg(test)]
    pub(crate) fn addr(&self, idx: usize) -> SocketAddr {
        self.addrs[idx]
    }

    /// Receive one datagram from whichever socket has one: `(socket index, length, source)`.
    /// An error carries the socket index too, so the caller can log and carry on.
    pub(crate) async fn recv(&mut self, buf: &mut [u8]) -> Recv {
        let n = self.sockets.len();
        let first = self.next_first;
        self.next_first = if n == 0 { 0 } else { (first + 1) % n };
        let sockets = &self.sockets;
        poll_fn(|cx| {
            for k in 0..n {
                let i = (first + k) % n;
                let mut rb = ReadBuf::new(buf);
                match sockets[i].poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(src)) => return Poll::Ready(Ok((i, rb.filled().len(), src))),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err((i, e))),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// A datagram that is already waiting, without waiting: lets the loop take a burst
    /// (a whole frame from the publisher) in one turn instead of one turn per datagram.
    pub(crate) fn try_recv(&mut self, buf: &mut [u8]) -> Option<Recv> {
        for (i, socket) in self.sockets.iter().enumerate() {
            match socket.try_recv_from(buf) {
                Ok((len, src)) => return Some(Ok((i, len, src))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err((i, e))),
            }
        }
        None
    }

    /// The 1:1 NAT public address and the socket index its traffic arrives on.
    pub(crate) fn public(&self) -> Option<(SocketAddr, usize)> {
        self.public
    }

    /// Plain std handles on the same sockets, same order, for `sendmmsg`.
    pub(crate) fn senders(&self) -> &[std::net::UdpSocket] {
        &self.senders
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Transmits;
    use crate::driver::send_batch::SendBatch;

    fn config(ips: &[[u8; 4]], public: Option<[u8; 4]>) -> SfuConfig {
        SfuConfig {
            bind_ips: ips.iter().map(|ip| IpAddr::from(*ip)).collect(),
            public_ip: public.map(IpAddr::from),
            ..SfuConfig::default()
        }
    }

    #[tokio::test]
    async fn all_sockets_share_the_port_the_first_one_got() {
        let s = Sockets::bind(&config(&[[127, 0, 0, 1], [127, 0, 0, 2]], None)).unwrap();
        let addrs = s.local_addrs();
        assert_eq!(addrs.len(), 2);
        assert_ne!(addrs[0].port(), 0);
        assert_eq!(addrs[0].port(), addrs[1].port());
        assert_eq!(addrs[1].ip(), IpAddr::from([127, 0, 0, 2]));
    }

    #[tokio::test]
    async fn default_binds_every_ipv4_interface_including_loopback() {
        let s = Sockets::bind(&SfuConfig::default()).unwrap();
        assert!(s
            .local_addrs()
            .iter()
            .any(|a| a.ip() == IpAddr::from([127, 0, 0, 1])));
        assert!(s.local_addrs().iter().all(|a| a.is_ipv4()));
    }

    #[tokio::test]
    async fn public_address_is_advertised_and_sends_through_its_socket() {
        let mut s = Sockets::bind(&config(&[[127, 0, 0, 1]], Some([203, 0, 113, 7]))).unwrap();
        let mut q = Transmits::new(s.local_addrs().to_vec(), s.public());
        let mut batch = SendBatch::default();
        let port = s.addr(0).port();
        let public = SocketAddr::from(([203, 0, 113, 7], port));
        assert_eq!(s.advertised().collect::<Vec<_>>(), vec![s.addr(0), public]);

        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer_addr = peer.local_addr().unwrap();
        q.push(public, peer_addr, b"hi");
        batch.flush(&q, s.senders());
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hi"[..], s.addr(0)));

        // Unknown sources send nothing, and do not panic.
        q.clear();
        q.push(SocketAddr::from(([10, 9, 9, 9], port)), peer_addr, b"no");
        batch.flush(&q, s.senders());

        peer.send_to(b"back", s.addr(0)).await.unwrap();
        let (idx, n, src) = s.recv(&mut buf).await.unwrap();
        assert_eq!((idx, &buf[..n], src), (0, &b"back"[..], peer_addr));
    }
}
