//! What the signaling tests share: a server on 127.0.0.1 with an SFU, WebSocket clients,
//! and waiting for one kind of message.

#![allow(dead_code)] // each test file uses its own part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sightline_protocol::{parse_server_message, ClientMessage, ServerMessage};
use sightline_sfu::SfuConfig;
use sightline_signaling::server::{self, RunningServer, ServerConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn start() -> RunningServer {
    server::start(ServerConfig::open(
        SocketAddr::new(LOOPBACK, 0),
        SfuConfig {
            bind_ips: vec![LOOPBACK],
            ..SfuConfig::default()
        },
    ))
    .await
    .unwrap()
}

pub async fn ws(server: &RunningServer) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    ws
}

/// A publisher's `register` for camera `id` (320x240 at 30 fps) taking `p2p_max` direct
/// viewers.
pub fn register(id: &str, p2p_max: u32) -> ClientMessage {
    ClientMessage::Register {
        camera_id: id.into(),
        name: id.into(),
        width: 320,
        height: 240,
        fps: 30,
        p2p_max,
    }
}

pub async fn send(ws: &mut Ws, msg: ClientMessage) {
    ws.send(Message::text(msg.to_json())).await.unwrap();
}

/// The next message `pick` takes, skipping others.
pub async fn next<T>(ws: &mut Ws, mut pick: impl FnMut(ServerMessage) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the expected message in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            if let Some(v) = pick(parse_server_message(t.as_str()).unwrap()) {
                return v;
            }
        }
    }
}
