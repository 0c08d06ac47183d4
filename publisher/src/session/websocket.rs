//! The session's signaling connection: connecting (with a timeout), sending a
//! [`ClientMessage`], and turning what arrives into a [`ServerMessage`] or the reason the
//! connection ended. Separate so the session loop reads as decisions, not framing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use futures_util::SinkExt;
use sightline_protocol::wire::{self, ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{info, warn};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the WebSocket connect (TCP + upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to the signaling server. The connection closes when the returned stream is
/// dropped.
pub(super) async fn connect(server: &str) -> anyhow::Result<Ws> {
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(server))
        .await
        .map_err(|_| anyhow!("connecting to {server}: timed out"))?
        // Not `context`: tungstenite's error already repeats its source in its message.
        .map_err(|e| anyhow!("connecting to {server}: {e}"))?
        .0;
    info!(server = %server, "signaling connected");
    Ok(ws)
}

pub(super) async fn send(ws: &mut Ws, msg: &ClientMessage) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json()))
        .await
        .context("sending on the WebSocket")
}

/// What one read from the WebSocket gave.
pub(super) enum Incoming {
    Message(ServerMessage),
    /// Nothing for the session: ping, pong, binary, or a message that does not parse.
    Nothing,
    /// The server closed the connection (the reason, for the log).
    Closed(String),
}

/// Make sense of one read (`None`: the stream ended). A transport error is an `Err`.
pub(super) fn read(msg: Option<Result<Message, tungstenite::Error>>) -> anyhow::Result<Incoming> {
    let text = match msg {
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Close(frame))) => {
            return Ok(Incoming::Closed(format!(
                "server closed the WebSocket ({frame:?})"
            )));
        }
        Some(Ok(_)) => return Ok(Incoming::Nothing), // ping/pong/binary
        Some(Err(e)) => return Err(anyhow!("WebSocket error: {e}")),
        None => return Ok(Incoming::Closed("server closed the WebSocket".into())),
    };
    match wire::parse_server_message(text.as_str()) {
        Ok(m) => Ok(Incoming::Message(m)),
        Err(e) => {
            warn!("ignoring unparsable server message: {e}");
            Ok(Incoming::Nothing)
        }
    }
}

/// The server's socket address (for picking the local interface facing it).
pub(super) async fn server_addr(url: &str) -> Option<SocketAddr> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("wss") | Some("https") => 443,
        _ => 80,
    });
    let mut addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    addrs.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_addr_parses_urls() {
        assert_eq!(
            server_addr("ws://127.0.0.1:8080/ws").await,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            server_addr("ws://[::1]/ws").await,
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(server_addr("not a url").await, None);
    }
}
