//! A thin signaling client: one WebSocket to the server's `/ws`, typed messages both ways.
//!
//! The viewer uses it for the real protocol; the bad-signaling tests use [`SignalClient::send_text`]
//! to put arbitrary bytes on the wire.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use sightline_protocol::{parse_server_message, ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One signaling session.
pub struct SignalClient {
    ws: Ws,
}

impl SignalClient {
    /// Open the WebSocket. Does not read `hello`; see [`SignalClient::connect_hello`].
    pub async fn connect(ws_url: &str) -> anyhow::Result<Self> {
        Self::connect_tls(ws_url, None).await
    }

    /// [`SignalClient::connect`], trusting `tls` (a private CA) for a `wss://` URL.
    pub async fn connect_tls(
        ws_url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Self> {
        // Our side never limits what the server sends: tests must see whatever it says.
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            ws_url,
            Some(config),
            true,
            tls.map(Connector::Rustls),
        )
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
        Ok(SignalClient { ws })
    }

    /// Open the WebSocket and read the server's `hello`. Returns the session id.
    pub async fn connect_hello(ws_url: &str, timeout: Duration) -> anyhow::Result<(Self, u64)> {
        Self::connect_hello_tls(ws_url, None, timeout).await
    }

    /// [`SignalClient::connect_hello`] with a TLS configuration for `wss://`.
    pub async fn connect_hello_tls(
        ws_url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> anyhow::Result<(Self, u64)> {
        let mut client = Self::connect_tls(ws_url, tls).await?;
        match client.recv_timeout(timeout).await? {
            ServerMessage::Hello { session_id, .. } => Ok((client, session_id)),
            other => bail!("expected hello, got {other:?}"),
        }
    }

    /// A publisher's session without media: connected, and `camera_id` (320×240) registered.
    pub async fn register_camera(
        ws_url: &str,
        camera_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let (mut client, _) = Self::connect_hello(ws_url, timeout).await?;
        client
            .send(&ClientMessage::Register {
                camera_id: camera_id.into(),
                name: camera_id.into(),
                width: 320,
                height: 240,
                fps: 30,
                p2p_max: 0,
            })
            .await?;
        client
            .recv_until(timeout, |m| {
                matches!(m, ServerMessage::Registered { .. }).then_some(())
            })
            .await?;
        Ok(client)
    }

    pub async fn send(&mut self, msg: &ClientMessage) -> anyhow::Result<()> {
        self.send_text(msg.to_json()).await
    }

    /// One binary message, as a publisher answers `snapshot_request`.
    pub async fn send_binary(&mut self, data: Vec<u8>) -> anyhow::Result<()> {
        self.ws
            .send(Message::binary(data))
            .await
            .context("sending on the signaling socket")
    }

    /// Send any text, valid or not.
    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(text.into()))
            .await
            .context("sending on the signaling socket")
    }

    /// The next server message. Pings are answered by tungstenite; messages that do not
    /// parse are an error (the server must only send well-formed ones).
    pub async fn recv(&mut self) -> anyhow::Result<ServerMessage> {
        loop {
            let msg = self
                .ws
                .next()
                .await
                .ok_or_else(|| anyhow!("signaling socket closed"))?
                .context("reading the signaling socket")?;
            match msg {
                Message::Text(text) => {
                    return parse_server_message(text.as_str())
                        .with_context(|| format!("server sent an unparsable message: {text}"));
                }
                Message::Close(frame) => bail!("server closed the signaling socket: {frame:?}"),
                Message::Binary(_) => bail!("server sent a binary message"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    pub async fn recv_timeout(&mut self, timeout: Duration) -> anyhow::Result<ServerMessage> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| anyhow!("no signaling message within {timeout:?}"))?
    }

    /// Read until a message `pick` accepts, skipping others (camera_online/offline broadcasts
    /// arrive at any time). An `error` message ends the wait unless `pick` takes it.
    pub async fn recv_until<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv_timeout(left).await?;
            if let Some(t) = pick(&msg) {
                return Ok(t);
            }
            if let ServerMessage::Error { code, message } = &msg {
                bail!("server refused: {}: {message}", code.as_str());
            }
            tracing::trace!(?msg, "skipping while waiting");
        }
    }

    /// Close politely (best effort) and drop the socket.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}
