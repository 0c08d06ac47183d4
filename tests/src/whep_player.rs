//! A WHEP player for tests, independent of the server's code: the suite's own str0m viewer
//! peer ([`crate::peer::ViewerPeer`]) makes the offer, a bare HTTP client
//! ([`crate::raw_http`]) POSTs it and DELETEs the session, and a task moves the peer's
//! datagrams over a UDP socket and decodes what arrives with the suite's decoder.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::decode::{DecodedFrame, FrameDecoder};
use crate::peer::{Datagram, PeerEvent, ViewerPeer};
use crate::raw_http::{request, RawResponse};

/// One WHEP playback session.
pub struct WhepPlayer {
    server: SocketAddr,
    /// The `201` response: answer, `Location`, `ETag`, `Link`s.
    pub created: RawResponse,
    frames: mpsc::Receiver<DecodedFrame>,
    task: JoinHandle<()>,
}

/// POST `offer` (as `application/sdp`, with `token` as a bearer token) to `path` on `server`.
pub async fn post_offer(
    server: SocketAddr,
    path: &str,
    content_type: &str,
    offer: &str,
    token: Option<&str>,
) -> anyhow::Result<RawResponse> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", content_type)];
    headers.extend(bearer.as_deref().map(|b| ("Authorization", b)));
    request(
        TcpStream::connect(server).await?,
        "POST",
        path,
        &headers,
        offer,
    )
    .await
}

impl WhepPlayer {
    /// Offer to play `camera` from `server`; fails unless the server answers `201`.
    pub async fn start(
        server: SocketAddr,
        camera: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await?;
        let (mut peer, offer) =
            ViewerPeer::offering(socket.local_addr()?, Instant::now(), false, false)?;
        let path = format!("/whep/{camera}");
        let created = post_offer(server, &path, "application/sdp", &offer, token).await?;
        if created.status != 201 {
            bail!("POST {path}: {} {}", created.status, created.body);
        }
        peer.accept_answer(&created.body)
            .context("applying the WHEP answer")?;
        let (tx, frames) = mpsc::channel(256);
        let task = tokio::spawn(drive(peer, socket, tx));
        Ok(WhepPlayer {
            server,
            created,
            frames,
            task,
        })
    }

    /// The session's resource (the answer's `Location`).
    pub fn location(&self) -> &str {
        self.created.header("location").unwrap_or("")
    }

    /// The next decoded frame.
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<DecodedFrame> {
        tokio::time::timeout(timeout, self.frames.recv())
            .await
            .context("no frame in time")?
            .context("the player's peer ended")
    }

    /// `DELETE` the session (with `token`); the player's peer stops too.
    pub async fn delete(self, token: Option<&str>) -> anyhow::Result<RawResponse> {
        self.task.abort();
        delete(self.server, self.location(), token).await
    }
}

impl Drop for WhepPlayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `DELETE path` on `server`, with `token` as a bearer token.
pub async fn delete(
    server: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<RawResponse> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<_> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    request(
        TcpStream::connect(server).await?,
        "DELETE",
        path,
        &headers,
        "",
    )
    .await
}

/// Move datagrams and time through the peer; decoded frames go out until nobody listens.
async fn drive(mut peer: ViewerPeer, socket: UdpSocket, frames: mpsc::Sender<DecodedFrame>) {
    let Ok(mut decoder) = FrameDecoder::new() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    let (mut out, mut events) = (Vec::new(), Vec::new());
    loop {
        let next = peer.drain(&mut out, &mut events);
        for Datagram {
            destination,
            contents,
        } in out.drain(..)
        {
            let _ = socket.send_to(&contents, destination).await;
        }
        for event in events.drain(..) {
            match event {
                PeerEvent::Frame { data, .. } => match decoder.decode(&data) {
                    Ok(Some(frame)) => {
                        if frames.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!("WHEP player: decode failed: {e}");
                        peer.request_keyframe();
                    }
                },
                PeerEvent::Lost(reason) => {
                    tracing::info!("WHEP player: peer lost: {reason}");
                    return;
                }
                _ => {}
            }
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, source)) = r {
                    peer.handle_datagram(Instant::now(), source, &buf[..n]);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                peer.handle_timeout(Instant::now());
            }
        }
    }
}
