//! ICE restarts through signaling: on the viewer's own socket, and from a new socket that
//! resumes the media connection a lost one held (a phone that changed networks). Real
//! server and SFU on 127.0.0.1, str0m viewers making real offers; the media itself need not
//! flow for what is checked here (who owns the SFU peer, and when it closes).

mod common;

use std::time::{Duration, Instant};

use common::{next, register, send, start, ws, Ws, WAIT};
use futures_util::{SinkExt, StreamExt};
use sightline_protocol::wire::{MediaPath, RESUME_CLOSE_CODE, RESUME_GRACE_SECS};
use sightline_protocol::{ClientMessage, ErrorCode, ServerMessage};
use sightline_signaling::server::RunningServer;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A str0m viewer and the server's answer to its offer (with the resume key).
struct Viewer {
    rtc: Rtc,
    ws: Ws,
    key: String,
}

fn viewer_rtc() -> Rtc {
    let mut config = Rtc::builder().clear_codecs();
    config
        .codec_config()
        .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    rtc
}

/// The answer (and its `resume` key), skipping candidates and other chatter; an error is a
/// panic.
async fn answer(ws: &mut Ws) -> (String, Option<String>) {
    next(ws, |m| match m {
        ServerMessage::Answer { sdp, resume } => Some((sdp, resume)),
        ServerMessage::Error { code, message } => panic!("{code:?}: {message}"),
        _ => None,
    })
    .await
}

/// The next error.
async fn error(ws: &mut Ws) -> (ErrorCode, String) {
    next(ws, |m| match m {
        ServerMessage::Error { code, message } => Some((code, message)),
        ServerMessage::Answer { .. } => panic!("answered, where an error was expected"),
        _ => None,
    })
    .await
}

fn accept(rtc: &mut Rtc, pending: SdpPendingOffer, sdp: &str) {
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(sdp).unwrap())
        .unwrap();
}

/// A publisher for `camera` and a viewer of it whose offer the SFU answered.
async fn watching(server: &RunningServer, camera: &str) -> (Ws, Viewer) {
    let mut publisher = ws(server).await;
    send(&mut publisher, register(camera, 0)).await;
    next(&mut publisher, |m| {
        matches!(m, ServerMessage::Registered { .. }).then_some(())
    })
    .await;
    let mut v = ws(server).await;
    send(
        &mut v,
        ClientMessage::Subscribe {
            camera_id: camera.into(),
            path: MediaPath::Server,
        },
    )
    .await;
    next(&mut v, |m| {
        matches!(m, ServerMessage::Subscribed { .. }).then_some(())
    })
    .await;
    let mut rtc = viewer_rtc();
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    send(
        &mut v,
        ClientMessage::Offer {
            sdp: offer.to_sdp_string(),
        },
    )
    .await;
    let (sdp, key) = answer(&mut v).await;
    accept(&mut rtc, pending, &sdp);
    let key = key.expect("a viewer's answer carries a resume key");
    (publisher, Viewer { rtc, ws: v, key })
}

/// An offer with new ICE credentials from `rtc`.
fn restart_offer(rtc: &mut Rtc) -> (String, SdpPendingOffer) {
    let mut api = rtc.sdp_api();
    api.ice_restart(true);
    let (offer, pending) = api.apply().unwrap();
    (offer.to_sdp_string(), pending)
}

fn resume(sdp: String, key: &str) -> ClientMessage {
    ClientMessage::IceRestart {
        sdp,
        resume: Some(key.to_owned()),
    }
}

/// Poll until the SFU holds `peers` peers.
async fn sfu_peers_become(server: &RunningServer, peers: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = server.sfu.stats().await.peers;
        if now == peers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the SFU holds {now} peers, not {peers}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The publisher's latest viewer count, as `demand` says.
async fn demand(publisher: &mut Ws, viewers: u32) {
    next(publisher, |m| match m {
        ServerMessage::Demand { viewers: n, .. } if n == viewers => Some(()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_restarts_ice_on_its_own_socket() {
    let server = start().await;
    let (_publisher, mut v) = watching(&server, "cam").await;
    let (offer, pending) = restart_offer(&mut v.rtc);
    send(
        &mut v.ws,
        ClientMessage::IceRestart {
            sdp: offer,
            resume: None,
        },
    )
    .await;
    let (sdp, key) = answer(&mut v.ws).await;
    assert!(sdp.contains("a=ice-ufrag:"), "{sdp}");
    assert_eq!(key.as_deref(), Some(v.key.as_str()), "the same connection");
    accept(&mut v.rtc, pending, &sdp);
    assert_eq!(server.sfu.stats().await.peers, 1, "no second peer");

    // Garbage is refused, and the session goes on.
    send(
        &mut v.ws,
        ClientMessage::IceRestart {
            sdp: "v=0 nonsense".into(),
            resume: None,
        },
    )
    .await;
    assert_eq!(error(&mut v.ws).await.0, ErrorCode::InvalidSdp);
    // A session without a media connection has nothing to restart.
    let mut idle = ws(&server).await;
    let (offer, _) = restart_offer(&mut viewer_rtc());
    send(
        &mut idle,
        ClientMessage::IceRestart {
            sdp: offer,
            resume: None,
        },
    )
    .await;
    let (code, message) = error(&mut idle).await;
    assert_eq!(code, ErrorCode::WrongState, "{message}");
    server.shutdown().await;
}

/// The phone's socket dies with its network: the media connection waits, a new socket
/// resumes it (same SFU peer, the viewer counted again), and the spent key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_socket_resumes_the_connection_a_lost_socket_held() {
    let server = start().await;
    let (mut publisher, mut v) = watching(&server, "cam").await;
    demand(&mut publisher, 1).await;
    drop(v.ws); // no close frame: the path died
    demand(&mut publisher, 0).await;
    assert_eq!(server.sfu.stats().await.peers, 1, "kept for a resume");

    let mut fresh = ws(&server).await;
    let (offer, pending) = restart_offer(&mut v.rtc);
    send(&mut fresh, resume(offer, &v.key)).await;
    let camera = next(&mut fresh, |m| match m {
        ServerMessage::Subscribed { camera, path, .. } => Some((camera.id, path)),
        _ => None,
    })
    .await;
    assert_eq!(camera, ("cam".to_owned(), MediaPath::Server));
    let (sdp, key) = answer(&mut fresh).await;
    accept(&mut v.rtc, pending, &sdp);
    let key = key.expect("a new key");
    assert_ne!(key, v.key, "keys are spent once used");
    demand(&mut publisher, 1).await;
    assert_eq!(server.sfu.stats().await.peers, 1, "the same peer");

    let mut late = ws(&server).await;
    let (offer, _) = restart_offer(&mut viewer_rtc());
    send(&mut late, resume(offer, &v.key)).await;
    let (code, message) = error(&mut late).await;
    assert_eq!(code, ErrorCode::WrongState);
    assert!(message.contains("subscribe again"), "{message}");
    // After a resume, the session is a viewer like any other: a second resume on it is refused.
    let (offer, _) = restart_offer(&mut v.rtc);
    send(&mut fresh, resume(offer, &key)).await;
    assert_eq!(error(&mut fresh).await.0, ErrorCode::WrongState);
    server.shutdown().await;
}

/// The server has not noticed the old socket is dead (its path just went quiet): the resume
/// takes the connection from the old session, which ends without closing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_ends_the_old_session_that_still_held_the_connection() {
    let server = start().await;
    let (_publisher, mut v) = watching(&server, "cam").await;
    let mut fresh = ws(&server).await;
    let (offer, pending) = restart_offer(&mut v.rtc);
    send(&mut fresh, resume(offer, &v.key)).await;
    let (sdp, _) = answer(&mut fresh).await;
    accept(&mut v.rtc, pending, &sdp);
    // The old socket is closed by the server.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = v.ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the old session ends");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.sfu.stats().await.peers,
        1,
        "not closed by the old session"
    );
    server.shutdown().await;
}

/// A page that closes its socket for good leaves nothing to resume; one that closes it with
/// the "reconnecting" code does, as does a socket that died, until the grace runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_lost_socket_leaves_its_connection_for_a_while() {
    let server = start().await;
    let (_publisher, mut v) = watching(&server, "cam").await;
    v.ws.close(None).await.unwrap();
    sfu_peers_become(&server, 0, WAIT).await;
    let mut fresh = ws(&server).await;
    let (offer, _) = restart_offer(&mut v.rtc);
    send(&mut fresh, resume(offer, &v.key)).await;
    assert_eq!(error(&mut fresh).await.0, ErrorCode::WrongState);

    let (_second, v) = watching(&server, "cam2").await;
    let mut old = v.ws;
    old.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(RESUME_CLOSE_CODE),
        reason: "reconnecting".into(),
    })))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.sfu.stats().await.peers, 1, "kept for a resume");
    // Nobody comes back for it: closed once the grace is over.
    let grace = Duration::from_secs(RESUME_GRACE_SECS);
    sfu_peers_become(&server, 0, grace + Duration::from_secs(5)).await;
    server.shutdown().await;
}
