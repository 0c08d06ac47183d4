//! The server decides per viewer whether it may control: the role of the token it connected
//! with, or everything when the server has no tokens. Proved end to end over 127.0.0.1:
//! WebSocket signaling, then a str0m viewer whose `control` data channel gets the SFU's
//! welcome.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sightline_protocol::control::{parse_message, ControlMessage, Welcome};
use sightline_protocol::wire::MediaPath;
use sightline_protocol::{parse_server_message, ClientMessage, ErrorCode, ServerMessage};
use sightline_sfu::SfuConfig;
use sightline_signaling::auth::{AuthMode, Role, Scope, TokenKeys};
use sightline_signaling::server::{self, RunningServer, ServerConfig};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(keys: Option<&TokenKeys>) -> RunningServer {
    let mut config = ServerConfig::open(
        SocketAddr::new(LOOPBACK, 0),
        SfuConfig {
            bind_ips: vec![LOOPBACK],
            ..SfuConfig::default()
        },
    );
    if let Some(keys) = keys {
        config.auth = AuthMode::Tokens(Box::new(keys.clone()));
    }
    server::start(config).await.unwrap()
}

fn keys() -> TokenKeys {
    TokenKeys::new(b"a test secret of more than 16 bytes").unwrap()
}

fn token(keys: &TokenKeys, role: Role) -> String {
    keys.issue_for(
        role,
        Scope::All,
        Duration::from_secs(600),
        Some(role.to_string()),
    )
}

/// A signaling connection that was let in (its first message is the hello); `token` goes
/// in `?token=`.
async fn ws_with(server: &RunningServer, token: Option<&str>) -> Ws {
    let url = match token {
        Some(t) => format!("{}?token={t}", server.ws_url()),
        None => server.ws_url(),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(matches!(recv(&mut ws).await, ServerMessage::Hello { .. }));
    ws
}

async fn send(ws: &mut Ws, msg: ClientMessage) {
    ws.send(Message::text(msg.to_json())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> ServerMessage {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a signaling message in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            return parse_server_message(t.as_str()).unwrap();
        }
    }
}

/// The next message that is not a camera event or candidate.
async fn reply(ws: &mut Ws) -> ServerMessage {
    loop {
        match recv(ws).await {
            ServerMessage::CameraOnline { .. } | ServerMessage::Candidate { .. } => {}
            m => return m,
        }
    }
}

/// A publisher session that registers `cam` (no media: viewers only need the camera known).
async fn register(server: &RunningServer, token: Option<&str>) -> Ws {
    let mut p = ws_with(server, token).await;
    send(
        &mut p,
        ClientMessage::Register {
            camera_id: "cam".into(),
            name: "Cam".into(),
            width: 320,
            height: 240,
            fps: 30,
            p2p_max: 0,
        },
    )
    .await;
    assert!(matches!(
        reply(&mut p).await,
        ServerMessage::Registered { .. }
    ));
    p
}

fn subscribe() -> ClientMessage {
    ClientMessage::Subscribe {
        camera_id: "cam".into(),
        path: MediaPath::Server,
    }
}

/// Subscribe, connect a str0m viewer with a `control` channel and return the SFU's welcome.
async fn welcome(server: &RunningServer, token: Option<&str>) -> Welcome {
    let mut v = ws_with(server, token).await;
    send(&mut v, subscribe()).await;
    assert!(matches!(
        reply(&mut v).await,
        ServerMessage::Subscribed { .. }
    ));

    let socket = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut config = Rtc::builder().clear_codecs();
    config
        .codec_config()
        .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_channel("control".into());
    let (offer, pending) = api.apply().unwrap();
    send(
        &mut v,
        ClientMessage::Offer {
            sdp: offer.to_sdp_string(),
        },
    )
    .await;
    let ServerMessage::Answer { sdp, .. } = reply(&mut v).await else {
        panic!("no answer");
    };
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&sdp).unwrap())
        .unwrap();

    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 2048];
    loop {
        assert!(Instant::now() < deadline, "no welcome in time");
        let timeout = match rtc.poll_output().unwrap() {
            Output::Transmit(t) => {
                socket.send_to(&t.contents, t.destination).await.unwrap();
                continue;
            }
            Output::Event(Event::ChannelData(d)) => {
                match parse_message(std::str::from_utf8(&d.data).unwrap()).unwrap() {
                    ControlMessage::Welcome(w) => return w,
                    other => panic!("first control message must be the welcome: {other:?}"),
                }
            }
            Output::Event(_) => continue,
            Output::Timeout(t) => t,
        };
        let wake = timeout.min(deadline);
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.unwrap();
                if let Ok(input) = Receive::new(Protocol::Udp, source, addr, &buf[..n]) {
                    rtc.handle_input(Input::Receive(Instant::now(), input)).unwrap();
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_role_decides_who_may_control() {
    let keys = keys();
    let server = start(Some(&keys)).await;
    let _publisher = register(&server, Some(&token(&keys, Role::Publish))).await;

    let w = welcome(&server, Some(&token(&keys, Role::Control))).await;
    assert!(w.may_control, "{w:?}");
    assert_eq!(w.camera, "cam");
    assert!(w.viewer.starts_with("peer-"), "{w:?}");
    assert!(
        !welcome(&server, Some(&token(&keys, Role::View)))
            .await
            .may_control
    );

    // A publisher's token does not let it watch.
    let mut v = ws_with(&server, Some(&token(&keys, Role::Publish))).await;
    send(&mut v, subscribe()).await;
    match reply(&mut v).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, ErrorCode::Forbidden);
            assert!(message.contains("role is `publish`"), "{message}");
        }
        other => panic!("a publish token must not watch, got {other:?}"),
    }

    // Loopback is not enough once tokens are on: no hello, an error, and the socket closes.
    let (mut anon, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    match recv(&mut anon).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert!(message.contains("needs a token"), "{message}");
        }
        other => panic!("a client without a token must be refused, got {other:?}"),
    }
    let closed = tokio::time::timeout(WAIT, anon.next()).await.unwrap();
    assert!(
        matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{closed:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_loopback_viewers_may_control() {
    let server = start(None).await;
    let _publisher = register(&server, None).await;
    assert!(welcome(&server, None).await.may_control);
    server.shutdown().await;
}
