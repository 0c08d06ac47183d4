//! The core's output datagrams, queued until the caller sends them.
//!
//! str0m hands every transmit over as its own buffer, which is dropped once polled. The
//! bytes are copied once, back to back, into one reused buffer (the one copy the SFU made
//! before the split too), so the driver can hand a whole turn's datagrams to the kernel in
//! a few `sendmmsg` calls and nothing is allocated per packet once the buffers have grown.
//! Each datagram also names the socket (by index) it must leave from: the core knows the
//! socket addresses from its construction, not the sockets. Packets for ICE-TCP
//! connections share the buffer but sit in their own list: the driver finds their
//! connection by address pair and frames them.

use std::net::SocketAddr;

/// One queued datagram: where it leaves from and goes to, and where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Index of the socket it leaves from (the order of [`super::CoreConfig::local_addrs`]).
    pub(crate) socket: usize,
    /// The address it leaves from (a socket's, or the public one mapped to a socket).
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
    /// Its bytes: `bytes()[start..start + len]`.
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// One queued packet for an ICE-TCP connection, named by its two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpQueued {
    /// Our end: the listener address the connection was accepted on.
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Datagrams waiting to be sent, in order.
#[derive(Debug)]
pub(crate) struct Transmits {
    local_addrs: Vec<SocketAddr>,
    public: Option<(SocketAddr, usize)>,
    bytes: Vec<u8>,
    items: Vec<Queued>,
    tcp: Vec<TcpQueued>,
    /// Capacity kept between turns (see [`Self::clear`]).
    retained: usize,
}

impl Transmits {
    /// Capacity kept between turns by default: a delta frame's fan-out to a few hundred
    /// viewers.
    pub(crate) const RETAINED_BYTES: usize = 4 << 20;

    /// `local_addrs` by socket index; `public` is a 1:1 NAT address and the socket its
    /// traffic uses.
    pub(crate) fn new(local_addrs: Vec<SocketAddr>, public: Option<(SocketAddr, usize)>) -> Self {
        Transmits {
            local_addrs,
            public,
            bytes: Vec::new(),
            items: Vec::new(),
            tcp: Vec::new(),
            retained: Self::RETAINED_BYTES,
        }
    }

    /// Keep `bytes` of capacity between turns instead.
    pub(crate) fn retaining(self, bytes: usize) -> Self {
        Transmits {
            retained: bytes,
            ..self
        }
    }

    /// Queue a packet for the ICE-TCP connection between `local` and `remote`.
    pub(crate) fn push_tcp(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.tcp.push(TcpQueued {
            local,
            remote,
            start: self.bytes.len(),
            len: data.len(),
        });
        self.bytes.extend_from_slice(data);
    }

    pub(crate) fn tcp_items(&self) -> &[TcpQueued] {
        &self.tcp
    }

    /// Queue a datagram from `source` (one of our addresses). A source we do not own is
    /// dropped with a debug log.
    pub(crate) fn push(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let socket = match self.local_addrs.iter().position(|a| *a == source) {
            Some(i) => i,
            None => match self.public {
                Some((public, i)) if public == source => i,
                _ => {
                    tracing::debug!(%source, "transmit from an address we do not own");
                    return;
                }
            },
        };
        self.items.push(Queued {
            socket,
            source,
            destination,
            start: self.bytes.len(),
            len: data.len(),
        });
        self.bytes.extend_from_slice(data);
    }

    /// Move `other`'s ICE-TCP packets here, after what is queued here, in their order.
    pub(crate) fn take_tcp_from(&mut self, other: &mut Transmits) {
        for q in other.tcp.drain(..) {
            let data = &other.bytes[q.start..q.start + q.len];
            self.push_tcp(q.local, q.remote, data);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && self.tcp.is_empty()
    }

    pub(crate) fn items(&self) -> &[Queued] {
        &self.items
    }

    /// The queued datagrams' bytes, back to back (see [`Queued::start`]).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each queued datagram with its bytes, in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Queued, &[u8])> + '_ {
        self.items
            .iter()
            .map(|q| (*q, &self.bytes[q.start..q.start + q.len]))
    }

    /// Bytes queued so far (the caller may send before a turn ends once this grows).
    pub(crate) fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Forget everything queued (the caller sent it). The buffers keep their capacity, up to
    /// [`Self::RETAINED_BYTES`] unless told otherwise: a keyframe to hundreds of viewers queues tens of MB once, which
    /// need not stay resident until the next one.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.tcp.clear();
        self.bytes.clear();
        self.bytes.shrink_to(self.retained);
        self.items.shrink_to(self.retained / 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_keep_their_order_and_their_socket() {
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let b = SocketAddr::from(([10, 0, 0, 1], 9));
        let public = SocketAddr::from(([203, 0, 113, 7], 9));
        let to = SocketAddr::from(([127, 0, 0, 1], 1000));
        let mut q = Transmits::new(vec![a, b], Some((public, 1)));
        q.push(b, to, b"one");
        q.push(public, to, b"two");
        q.push(SocketAddr::from(([10, 9, 9, 9], 9)), to, b"not ours");
        q.push(a, to, b"three");
        let got: Vec<_> = q
            .iter()
            .map(|(t, d)| (t.socket, t.source, d.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, b, b"one".to_vec()),
                (1, public, b"two".to_vec()),
                (0, a, b"three".to_vec()),
            ]
        );
        q.clear();
        assert!(q.is_empty() && q.bytes().is_empty());
    }

    #[test]
    fn tcp_packets_taken_from_another_queue_follow_with_their_bytes() {
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let to = SocketAddr::from(([127, 0, 0, 1], 1000));
        let (mut q, mut other) = (Transmits::new(vec![a], None), Transmits::new(vec![a], None));
        q.push_tcp(a, to, b"one");
        other.push(a, to, b"udp");
        other.push_tcp(a, to, b"two");
        q.take_tcp_from(&mut other);
        let tcp: Vec<_> = (q.tcp_items().iter())
            .map(|t| &q.bytes()[t.start..t.start + t.len])
            .collect();
        assert_eq!(tcp, [&b"one"[..], b"two"]);
        assert!(other.tcp_items().is_empty(), "moved, not copied");
        let udp: Vec<_> = other.iter().map(|(_, d)| d.to_vec()).collect();
        assert_eq!(udp, [b"udp".to_vec()], "UDP stays");
    }
}
