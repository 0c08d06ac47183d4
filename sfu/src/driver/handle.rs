//! The SFU's public handle: [`Sfu::start`] binds the sockets and spawns the driver loop
//! around a new core; [`SfuHandle`] sends the loop commands and hands out its events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_protocol::control::unix_millis;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::command::Command;
use super::sockets::Sockets;
use super::tcp::TcpMedia;
use super::watch::{Watch, WATCH_QUEUE};
use crate::core::{Core, CoreConfig};
use crate::{PeerAnswer, PeerId, SfuConfig, SfuError, SfuEvent, SfuStats, ViewerAccess};

/// Entry point.
pub struct Sfu;

impl Sfu {
    /// Bind the UDP sockets and spawn the driver loop on the current tokio runtime.
    /// The loop stops when the last [`SfuHandle`] is dropped.
    pub async fn start(config: SfuConfig) -> Result<SfuHandle, SfuError> {
        let sockets = Sockets::bind(&config)?;
        let addrs: Arc<[SocketAddr]> = sockets.local_addrs().into();
        let tcp = match config.tcp_port {
            Some(port) => {
                let ips: Vec<_> = addrs.iter().map(|a| a.ip()).collect();
                // Port 0: the same number as UDP, which is what a firewall is opened for.
                let same = if port == 0 { addrs[0].port() } else { port };
                match TcpMedia::bind(&ips, same) {
                    // A UDP port picked at random (tests) may have its number taken on TCP.
                    Err(_) if port == 0 && config.udp_port == 0 => TcpMedia::bind(&ips, 0)?,
                    bound => bound?,
                }
            }
            None => TcpMedia::off(),
        };
        let tcp_addrs: Arc<[SocketAddr]> = tcp.local_addrs().into();
        // The public address takes TCP on the listener's port, like UDP.
        let advertised_tcp = tcp_addrs
            .iter()
            .copied()
            .chain(
                sockets
                    .public()
                    .zip(tcp_addrs.first())
                    .map(|((public, _), l)| SocketAddr::new(public.ip(), l.port())),
            )
            .collect();
        let (commands, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let core = Core::new(
            CoreConfig {
                local_addrs: sockets.local_addrs().to_vec(),
                public: sockets.public(),
                tcp_addrs: advertised_tcp,
                keyframe_request_interval: config.keyframe_request_interval,
                control_rate_limit: config.control_rate_limit,
                fan_out_threads: match config.media_threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                },
            },
            Instant::now(),
            unix_millis(),
        );
        tokio::spawn(super::run(core, sockets, tcp, events.clone(), rx));
        tracing::info!(udp = ?addrs, tcp = ?tcp_addrs, "SFU started");
        Ok(SfuHandle {
            commands,
            events,
            addrs,
            tcp_addrs,
        })
    }
}

/// Cheap to clone; every method talks to the driver loop (and through it, the core).
#[derive(Clone)]
pub struct SfuHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<SfuEvent>,
    addrs: Arc<[SocketAddr]>,
    tcp_addrs: Arc<[SocketAddr]>,
}

impl SfuHandle {
    /// The addresses media arrives on (one per bound socket, all on one port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.to_vec()
    }

    /// The driver loop still runs (it has not been shut down or died).
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// The addresses ICE-TCP listens on (empty when it is off).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp_addrs.to_vec()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SfuError::Stopped)?;
        answer.await.map_err(|_| SfuError::Stopped)
    }

    /// A publisher's offer (sendonly H.264 video) for `camera_id`. Viewers already subscribed
    /// to that camera start receiving its video once it connects. A publisher already on
    /// that camera is closed and replaced.
    pub async fn publish(&self, camera_id: &str, offer_sdp: &str) -> Result<PeerAnswer, SfuError> {
        self.ask(|reply| Command::Publish {
            camera: camera_id.to_owned(),
            offer: offer_sdp.to_owned(),
            reply,
        })
        .await?
    }

    /// A viewer's offer (recvonly video, optionally a `control` data channel) for
    /// `camera_id`. The camera need not be live yet. `access` says what the viewer may do on
    /// its control channel.
    pub async fn subscribe(
        &self,
        camera_id: &str,
        offer_sdp: &str,
        access: ViewerAccess,
    ) -> Result<PeerAnswer, SfuError> {
        self.ask(|reply| Command::Subscribe {
            camera: camera_id.to_owned(),
            offer: offer_sdp.to_owned(),
            access,
            reply,
        })
        .await?
    }

    /// A viewer's new offer for its existing connection, with new ICE credentials (an ICE
    /// restart: the browser's network changed, or its path went quiet). The connection,
    /// its DTLS keys and its place among the camera's viewers are kept; ICE starts over on
    /// the new credentials, and once it is back the viewer resumes at a keyframe. The answer
    /// carries the SFU's candidates (with the new credentials) in its SDP.
    pub async fn restart_ice(&self, peer: PeerId, offer_sdp: &str) -> Result<PeerAnswer, SfuError> {
        self.ask(|reply| Command::RestartIce {
            peer,
            offer: offer_sdp.to_owned(),
            reply,
        })
        .await?
    }

    /// A trickled candidate from the peer (`candidate:...`, `a=` prefix allowed). An empty
    /// string (end of candidates) and mDNS (`.local`) candidates are accepted and ignored:
    /// ice-lite learns the peer's address from its connectivity checks.
    pub async fn add_remote_candidate(
        &self,
        peer: PeerId,
        candidate: &str,
    ) -> Result<(), SfuError> {
        self.ask(|reply| Command::AddCandidate {
            peer,
            candidate: candidate.to_owned(),
            reply,
        })
        .await?
    }

    /// Remove a peer and everything it owns. Unknown peers are ignored.
    pub async fn close_peer(&self, peer: PeerId) {
        let _ = self.ask(|reply| Command::Close { peer, reply }).await;
    }

    /// Current counters; all zero once the SFU has stopped.
    pub async fn stats(&self) -> SfuStats {
        self.ask(|reply| Command::Stats { reply })
            .await
            .unwrap_or_default()
    }

    /// Send one control command (the same JSON text a viewer sends on its `control` data
    /// channel) to `camera_id`'s publisher, as a caller with `access`, and wait up to
    /// `timeout` for the answer. `caller` names the rate-limit bucket (e.g. the token's
    /// subject or the client's address): each caller has its own bucket with the data
    /// channel's limit.
    ///
    /// `Ok(Some(text))`: the JSON answer: the publisher's `response` (with `to` naming the
    /// caller's ticket) or the SFU's own refusal (`bad_message`, `unknown_command`,
    /// `forbidden`, `rate_limited`, `unavailable` when the camera has no publisher with an
    /// open control channel), exactly as a viewer would get them. `pause` and `resume` apply
    /// to a viewer's own video and are refused (`bad_message`). `Ok(None)`: no answer within
    /// `timeout`; a later answer is dropped.
    pub async fn control(
        &self,
        camera_id: &str,
        command: &str,
        access: ViewerAccess,
        caller: &str,
        timeout: Duration,
    ) -> Result<Option<String>, SfuError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        let asked = self.ask(|ticket| Command::Control {
            camera: camera_id.to_owned(),
            command: command.to_owned(),
            access,
            caller: caller.to_owned(),
            ticket,
            reply,
        });
        // The ticket comes at once unless the loop is swamped. Given up on, it is
        // forgotten by the loop, which finds nobody to hand it to.
        let Ok(ticket) = tokio::time::timeout_at(deadline, asked).await else {
            return Ok(None);
        };
        let ticket = ticket?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(text)) => Ok(Some(text)),
            Ok(Err(_)) => Err(SfuError::Stopped),
            Err(_) => {
                // Not waiting for a full command channel: past the timeout already, and the
                // loop's sweep forgets the ticket anyway once it sees nobody waits on it.
                let _ = self.commands.try_send(Command::ForgetControl { ticket });
                Ok(None)
            }
        }
    }

    /// Watch `camera_id` (live or not yet) from outside WebRTC, with `access` on control:
    /// see [`Watch`]. The watcher counts as a viewer (stats, keyframe requests) and is
    /// welcomed on control like a data channel.
    pub async fn watch(&self, camera_id: &str, access: ViewerAccess) -> Result<Watch, SfuError> {
        let (messages, rx) = mpsc::channel(WATCH_QUEUE);
        let id = self
            .ask(|reply| Command::Watch {
                camera: camera_id.to_owned(),
                access,
                messages,
                reply,
            })
            .await?;
        Ok(Watch::new(id, rx, self.commands.clone()))
    }

    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        self.events.subscribe()
    }

    /// Close every peer, stop the driver loop and wait until its UDP sockets are closed, so
    /// a restarted server can bind the same port at once. Later calls on any clone fail
    /// with [`SfuError::Stopped`] or do nothing.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}
