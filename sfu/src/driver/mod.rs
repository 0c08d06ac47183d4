//! The driver: the thin tokio layer around the [`crate::core::Core`].
//!
//! It owns what the core must not: the UDP sockets (`sockets`), the batched sends
//! (`send_batch`: `sendmmsg` with GSO), the ICE-TCP listeners and connections (`tcp`),
//! the command channel from [`SfuHandle`]s and the
//! event broadcast. Its loop only moves things between them and the core: datagrams and
//! commands in, then the core's transmits out to the sockets, its events out to
//! subscribers, its answers to API callers' control commands out to whoever waits on
//! each ticket and watchers' frames to their queues, and sleep until the next datagram, command or core deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::core::Core;
use crate::{PeerId, SfuEvent, WatchMessage};
use command::Command;
use send_batch::SendBatch;
use sockets::{Recv, Sockets};
use tcp::TcpMedia;

mod command;
mod handle;
mod send_batch;
mod sockets;
mod tcp;
mod watch;

pub use handle::{Sfu, SfuHandle};
pub use watch::Watch;

/// Upper bound on one wait, so a far-away core deadline never parks the loop for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Largest datagram we read (str0m's own limit is 2000).
const RECV_BUF: usize = 2048;
/// Datagrams taken in one loop turn after the first, so timers and commands still get
/// their turn under a flood.
const MAX_BURST: usize = 64;
/// Within a burst, send what is queued once it reaches this size: the frames it holds leave
/// without waiting for the rest of the burst, and the queue stays small.
const SEND_AT_BYTES: usize = 1 << 20;

/// API callers waiting for the answer to a control command, by ticket. Each entry ends
/// with its answer, its caller's `ForgetControl`, or (if the caller just went away) the
/// next command's sweep, so it holds no more than the callers still waiting.
type Waiting = HashMap<PeerId, oneshot::Sender<String>>;

/// Each watcher's queue, by id.
type Watchers = HashMap<PeerId, mpsc::Sender<WatchMessage>>;

/// Runs until every [`SfuHandle`] is dropped or one asks for shutdown.
async fn run(
    mut core: Core,
    mut sockets: Sockets,
    mut tcp: TcpMedia,
    events: broadcast::Sender<SfuEvent>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut batches = Batches::default();
    let mut congested = Vec::new();
    let mut stopped_by = None;
    let mut waiting = Waiting::new();
    let mut watchers = Watchers::new();
    loop {
        let now = Instant::now();
        core.handle_timeout(now);
        publish_events(&mut core, &events);
        // Whatever the last turn answered (a command refused at once, a publisher's reply).
        deliver_replies(&mut core, &mut waiting);
        deliver_watched(&mut core, &mut watchers);
        // Everything this turn produced leaves in as few syscalls as possible, and before
        // the loop waits (and before the deadline is read: congestion asks for keyframes).
        send_all(&mut core, &mut batches, &sockets, &mut tcp, &mut congested);
        let deadline = core
            .poll_timeout()
            .map_or(now + MAX_SLEEP, |d| d.min(now + MAX_SLEEP));

        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Shutdown { reply }) => {
                    stopped_by = Some(reply);
                    break;
                }
                Some(cmd) => execute(&mut core, cmd, &events, &mut waiting, &mut watchers),
                None => break,
            },
            res = sockets.recv(&mut buf) => {
                take_datagram(&mut core, res, &buf);
                // Take the rest of a burst now: one loop turn (timer scan, select, flush)
                // per burst rather than per datagram.
                for _ in 0..MAX_BURST {
                    if core.queued_bytes() >= SEND_AT_BYTES {
                        send_all(&mut core, &mut batches, &sockets, &mut tcp, &mut congested);
                    }
                    let Some(res) = sockets.try_recv(&mut buf) else {
                        break;
                    };
                    take_datagram(&mut core, res, &buf);
                }
                publish_events(&mut core, &events);
            }
            event = tcp.recv() => {
                take_tcp(&mut core, &mut tcp, event);
                for _ in 0..MAX_BURST {
                    let Some(event) = tcp.try_recv() else {
                        break;
                    };
                    take_tcp(&mut core, &mut tcp, event);
                }
                publish_events(&mut core, &events);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
    core.close_all();
    publish_events(&mut core, &events);
    send_all(&mut core, &mut batches, &sockets, &mut tcp, &mut congested);
    // Release the sockets before saying so: a restarted server binds the same port.
    drop(sockets);
    drop(tcp);
    if let Some(reply) = stopped_by {
        let _ = reply.send(());
    }
}

/// The send batches: the loop's own, and one per fan-out worker (each used only by its
/// worker, so never waited for).
#[derive(Default)]
struct Batches {
    own: SendBatch,
    workers: Vec<std::sync::Mutex<SendBatch>>,
}

/// Send the core's transmits: UDP in batches, TCP onto each connection's queue. A TCP
/// viewer whose queue is full is told to the core, after the queue is cleared. What the
/// fan-out workers queued they send themselves, all at once.
fn send_all(
    core: &mut Core,
    batches: &mut Batches,
    sockets: &Sockets,
    tcp: &mut TcpMedia,
    congested: &mut Vec<std::net::SocketAddr>,
) {
    let transmits = core.transmits();
    batches.own.flush(transmits, sockets.senders());
    tcp.send(transmits, congested);
    transmits.clear();
    let workers = core.fan_out_workers();
    if batches.workers.len() != workers {
        batches.workers = (0..workers).map(|_| Default::default()).collect();
    }
    let senders = sockets.senders();
    let workers = &batches.workers;
    core.send_on_workers(|i, queue| workers[i].lock().unwrap().flush(queue, senders));
    core.frames_sent(Instant::now());
    for remote in congested.drain(..) {
        core.tcp_congested(remote);
    }
}

fn take_tcp(core: &mut Core, tcp: &mut TcpMedia, event: tcp::TcpEvent) {
    match tcp.track(event) {
        Some((local, remote, data)) => core.handle_tcp_frame(Instant::now(), local, remote, &data),
        None => core.set_tcp_connections(tcp.connections()),
    }
}

fn take_datagram(core: &mut Core, res: Recv, buf: &[u8]) {
    match res {
        Ok((idx, len, source)) => core.handle_datagram(Instant::now(), idx, source, &buf[..len]),
        // ICMP errors (port unreachable from a viewer that left) surface here.
        Err((idx, e)) => tracing::debug!(socket = idx, "udp recv: {e}"),
    }
}

/// One command from a handle. Events the command caused go out before its reply, so a
/// caller that gets the reply has been told.
fn execute(
    core: &mut Core,
    cmd: Command,
    events: &broadcast::Sender<SfuEvent>,
    waiting: &mut Waiting,
    watchers: &mut Watchers,
) {
    let now = Instant::now();
    match cmd {
        Command::Publish {
            camera,
            offer,
            reply,
        } => {
            let answer = core.publish(now, &camera, &offer);
            publish_events(core, events);
            let _ = reply.send(answer);
        }
        Command::Subscribe {
            camera,
            offer,
            access,
            reply,
        } => {
            let answer = core.subscribe(now, &camera, &offer, access);
            publish_events(core, events);
            let _ = reply.send(answer);
        }
        Command::RestartIce { peer, offer, reply } => {
            let answer = core.restart_ice(now, peer, &offer);
            publish_events(core, events);
            let _ = reply.send(answer);
        }
        Command::AddCandidate {
            peer,
            candidate,
            reply,
        } => {
            let result = core.add_remote_candidate(now, peer, &candidate);
            publish_events(core, events);
            let _ = reply.send(result);
        }
        Command::Close { peer, reply } => {
            core.close_peer(peer);
            publish_events(core, events);
            let _ = reply.send(());
        }
        Command::Stats { reply } => {
            let _ = reply.send(core.stats());
        }
        Command::Control {
            camera,
            command,
            access,
            caller,
            ticket,
            reply,
        } => {
            // Callers that went away without a word (their future dropped) end here.
            waiting.retain(|&t, reply| {
                let gone = reply.is_closed();
                if gone {
                    core.forget_control(t);
                }
                !gone
            });
            let t = core.control(now, &camera, &command, access, &caller);
            publish_events(core, events);
            if ticket.send(t).is_ok() {
                waiting.insert(t, reply);
            } else {
                core.forget_control(t);
            }
        }
        Command::ForgetControl { ticket } => {
            waiting.remove(&ticket);
            core.forget_control(ticket);
        }
        Command::Watch {
            camera,
            access,
            messages,
            reply,
        } => {
            let id = core.watch(now, &camera, access);
            if reply.send(id).is_ok() {
                watchers.insert(id, messages);
            } else {
                core.unwatch(id);
            }
        }
        Command::WatcherControl { watcher, text } => core.watcher_command(now, watcher, &text),
        Command::Unwatch { watcher } => {
            watchers.remove(&watcher);
            core.unwatch(watcher);
        }
        // The loop itself takes shutdown; it never gets here.
        Command::Shutdown { reply } => {
            let _ = reply.send(());
        }
    }
}

/// Answers to API callers, each to the one waiting on its ticket.
fn deliver_replies(core: &mut Core, waiting: &mut Waiting) {
    while let Some((ticket, text)) = core.poll_api_reply() {
        match waiting.remove(&ticket) {
            Some(reply) => {
                if reply.send(text).is_err() {
                    tracing::debug!(%ticket, "control answer dropped: its caller stopped waiting");
                }
            }
            None => tracing::debug!(%ticket, "control answer for a forgotten ticket dropped"),
        }
    }
}

/// Frames and control messages to watchers, without waiting: a full queue loses the frame
/// (the watcher then restarts at a keyframe), a closed one ends the watcher.
fn deliver_watched(core: &mut Core, watchers: &mut Watchers) {
    while let Some((id, message)) = core.poll_watch() {
        let Some(queue) = watchers.get(&id) else {
            continue;
        };
        match queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(WatchMessage::Frame(_))) => {
                tracing::debug!(watcher = %id, "watcher too slow; frames dropped up to a keyframe");
                core.watcher_lagged(id);
            }
            Err(TrySendError::Full(WatchMessage::Control(_))) => {
                tracing::warn!(watcher = %id, "watcher queue full; control message dropped");
            }
            Err(TrySendError::Closed(_)) => {
                watchers.remove(&id);
                core.unwatch(id);
            }
        }
    }
}

fn publish_events(core: &mut Core, events: &broadcast::Sender<SfuEvent>) {
    while let Some(event) = core.poll_event() {
        let _ = events.send(event);
    }
}
