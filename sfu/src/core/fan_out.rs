//! A frame's fan-out over every core.
//!
//! Under load nearly all of the SFU's work is writing each frame into every viewer's `Rtc`
//! and sending what comes out: str0m rewrites the headers, encrypts, keeps the RTX copy,
//! then `sendmmsg`. One viewer's `Rtc` needs nothing from another's, so a frame big enough
//! to be worth it has its viewers split into one share per worker thread. Each worker
//! writes and drains its share into a queue of its own, which the driver later has that
//! worker send ([`Core::send_on_workers`]); once all are done the core merges their events
//! and counters. The payloads are shared (`Arc`), not copied. Everything else (datagrams in,
//! timers, signaling, small frames) stays on the core's thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use str0m::Event;

use super::drain::{self, Sink};
use super::feed::FramePackets;
use super::peers::Peer;
use super::transmit::Transmits;
use super::Core;
use crate::PeerId;

/// A frame that makes fewer datagrams than this (viewers × packets) is written on the
/// core's thread: waking the workers (and their spinning before they sleep again) costs
/// more than it saves. 256 datagrams are about 1 ms of work. Measured with `bench sfu` (a
/// one-packet frame to 50 viewers): sharing those out cost about 20 % more CPU per packet.
const MIN_PARALLEL_DATAGRAMS: usize = 256;

/// The workers, and each one's outputs, kept between frames so their buffers are reused.
pub(super) struct FanOut {
    /// `None` with one thread: everything runs on the core's thread.
    pool: Option<rayon::ThreadPool>,
    /// One per worker, by its index. Only its own worker locks one; the core's thread, which
    /// holds the `FanOut` mutably while no worker runs, reaches them without locking.
    shares: Vec<Mutex<Share>>,
}

/// Capacity each queue of datagrams keeps between turns, the core's own and each worker's:
/// together what one queue kept before the workers (resident memory otherwise grows by a
/// queue's worth per worker).
pub(super) fn retained_per_queue(workers: usize) -> usize {
    Transmits::RETAINED_BYTES / (workers + 1)
}

/// What one worker's share of a frame produced.
struct Share {
    /// UDP datagrams stay here until the driver sends them, from this worker too
    /// ([`Core::send_on_workers`]); ICE-TCP packets move to the core's queue.
    transmits: Transmits,
    queue: VecDeque<(PeerId, Event)>,
    dead: Vec<(PeerId, String)>,
    packets_forwarded: u64,
    nacks_sent: u64,
    /// The viewers the frame was written to.
    written: Vec<PeerId>,
}

impl FanOut {
    /// `threads` workers (0 or 1: none). A pool that cannot be started (the system refuses
    /// threads) leaves the fan-out on the core's thread, with a warning.
    pub(super) fn new(
        threads: usize,
        local_addrs: &[SocketAddr],
        public: Option<(SocketAddr, usize)>,
    ) -> Self {
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("sfu-fan-out-{i}"))
                    .build()
            })
            .and_then(|built| {
                built
                    .inspect_err(|e| {
                        tracing::warn!("no fan-out workers ({e}); frames go out from one thread")
                    })
                    .ok()
            });
        let workers = pool.as_ref().map_or(0, |p| p.current_num_threads());
        let shares = (0..workers)
            .map(|_| {
                Mutex::new(Share {
                    transmits: Transmits::new(local_addrs.to_vec(), public)
                        .retaining(retained_per_queue(workers)),
                    queue: VecDeque::new(),
                    dead: Vec::new(),
                    packets_forwarded: 0,
                    nacks_sent: 0,
                    written: Vec::new(),
                })
            })
            .collect();
        FanOut { pool, shares }
    }

    /// Worker threads (1: the core's own).
    pub(super) fn threads(&self) -> usize {
        self.workers().max(1)
    }

    /// Worker threads besides the core's (0: none).
    pub(super) fn workers(&self) -> usize {
        self.shares.len()
    }

    /// Datagrams queued on the workers, not sent yet.
    fn queued_bytes(&mut self) -> usize {
        (self.shares.iter_mut())
            .map(|s| s.get_mut().unwrap().transmits.len_bytes())
            .sum()
    }

    fn holds_datagrams(&mut self) -> bool {
        self.queued_bytes() > 0
    }
}

impl Core {
    /// Write `frame` to each of `viewers` (peer ids, sorted) and drain them, on the workers
    /// when that is enough work to share. The viewers it was written to (some may have
    /// no send stream yet) are put in `written`.
    pub(super) fn write_frame_to(
        &mut self,
        frame: &FramePackets,
        viewers: &[PeerId],
        written: &mut Vec<PeerId>,
    ) {
        written.clear();
        let now = self.now;
        // Once the workers hold datagrams not yet sent, the turn's later frames go to them
        // too, even small ones: the core's own queue is sent first, and a viewer's frames
        // must leave in order.
        let share_out = viewers.len() * frame.payloads.len() >= MIN_PARALLEL_DATAGRAMS
            || self.fan_out.holds_datagrams();
        let pool = match &self.fan_out.pool {
            Some(pool) if share_out => pool,
            _ => {
                let (peers, mut sink) = self.peers_and_sink();
                for &id in viewers {
                    if let Some(peer) = peers.get_mut(id) {
                        if write_frame(id, peer, frame, now, &mut sink) {
                            written.push(id);
                        }
                    }
                }
                return;
            }
        };
        let shares = &self.fan_out.shares;
        let mut peers = self.peers.many_mut(viewers);
        // Equal counts, one per worker, each run by its own worker: work stealing would
        // leave a share to whichever worker woke first.
        let per_worker = peers.len().div_ceil(shares.len()).max(1);
        let chunks: Vec<Mutex<&mut [(PeerId, &mut Peer)]>> =
            peers.chunks_mut(per_worker).map(Mutex::new).collect();
        pool.broadcast(|worker| {
            if let Some(chunk) = chunks.get(worker.index()) {
                let mut chunk = chunk.lock().unwrap();
                shares[worker.index()]
                    .lock()
                    .unwrap()
                    .write(&mut chunk, frame, now);
            }
        });
        drop(chunks);
        for share in &mut self.fan_out.shares {
            let share = share.get_mut().unwrap();
            self.transmits.take_tcp_from(&mut share.transmits);
            self.queue.append(&mut share.queue);
            self.dead.append(&mut share.dead);
            self.counters.packets_forwarded += std::mem::take(&mut share.packets_forwarded);
            self.counters.nacks_sent += std::mem::take(&mut share.nacks_sent);
            written.append(&mut share.written);
        }
    }

    /// Run `send` on every worker with its queue of UDP datagrams (worker index, queue),
    /// all at once; the queues are then cleared. Nothing to do without workers.
    pub(crate) fn send_on_workers(&mut self, send: impl Fn(usize, &Transmits) + Sync) {
        if !self.fan_out.holds_datagrams() {
            return;
        }
        let (Some(pool), shares) = (&self.fan_out.pool, &self.fan_out.shares) else {
            return;
        };
        pool.broadcast(|worker| {
            let mut share = shares[worker.index()].lock().unwrap();
            if share.transmits.len_bytes() > 0 {
                send(worker.index(), &share.transmits);
                share.transmits.clear();
            }
        });
    }

    /// Fan-out workers (0: none, the core's thread does it all).
    pub(crate) fn fan_out_workers(&self) -> usize {
        self.fan_out.workers()
    }

    /// Bytes queued to send: the core's own queue and the workers'.
    pub(crate) fn queued_bytes(&mut self) -> usize {
        self.transmits.len_bytes() + self.fan_out.queued_bytes()
    }
}

impl Share {
    fn write(&mut self, peers: &mut [(PeerId, &mut Peer)], frame: &FramePackets, now: Instant) {
        let mut sink = Sink {
            transmits: &mut self.transmits,
            queue: &mut self.queue,
            dead: &mut self.dead,
            packets_forwarded: &mut self.packets_forwarded,
            nacks_sent: &mut self.nacks_sent,
        };
        for (id, peer) in peers.iter_mut() {
            if write_frame(*id, peer, frame, now, &mut sink) {
                self.written.push(*id);
            }
        }
    }
}

/// Queue `frame` on a viewer's send stream and send it now. False (nothing queued) if the
/// viewer has no send stream.
fn write_frame(
    id: PeerId,
    peer: &mut Peer,
    frame: &FramePackets,
    now: Instant,
    sink: &mut Sink<'_>,
) -> bool {
    let Some(tx) = peer.tx.as_mut() else {
        return false;
    };
    if !tx.write(&mut peer.rtc, frame) {
        tracing::debug!(viewer = %id, "no send stream");
        return false;
    }
    // str0m hands queued RTP to its pacer in its timeout handler: run it now.
    drain::poke(id, peer, now, sink);
    true
}
