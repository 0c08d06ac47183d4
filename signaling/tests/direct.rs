//! The direct (P2P) path through signaling: the server grants direct viewers up to the
//! publisher's `p2p_max`, relays offers, answers and candidates between the two sessions
//! (and nobody else), tells the publisher when a direct viewer leaves, and hands the
//! publisher's `direct_ended` to the viewer. Signaling only (no media), over 127.0.0.1: the
//! peer connections themselves are tested with a real publisher (`tests/tests/direct.rs`).

use sightline_protocol::wire::{ErrorCode, MediaPath};
use sightline_protocol::{ClientMessage, ServerMessage};
use sightline_signaling::server::RunningServer;

mod common;
use common::{next, register, send, start, ws, Ws};

async fn publisher(server: &RunningServer, p2p_max: u32) -> Ws {
    let mut p = ws(server).await;
    send(&mut p, register("cam", p2p_max)).await;
    next(&mut p, |m| {
        matches!(m, ServerMessage::Registered { .. }).then_some(())
    })
    .await;
    p
}

/// A viewer that asked for a direct path, and the path and note it got.
async fn viewer(server: &RunningServer) -> (Ws, MediaPath, Option<String>) {
    let mut v = ws(server).await;
    let (path, note) = ask_direct(&mut v).await;
    (v, path, note)
}

/// Subscribe asking for a direct path: the path and note the server answers with.
async fn ask_direct(v: &mut Ws) -> (MediaPath, Option<String>) {
    send(
        v,
        ClientMessage::Subscribe {
            camera_id: "cam".into(),
            path: MediaPath::Direct,
        },
    )
    .await;
    next(v, |m| match m {
        ServerMessage::Subscribed { path, note, .. } => Some((path, note)),
        _ => None,
    })
    .await
}

fn offer() -> ClientMessage {
    ClientMessage::Offer {
        sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n".into(),
    }
}

/// The next direct offer the publisher gets: the viewer it names and the SDP.
async fn direct_offer(p: &mut Ws) -> (u64, String, bool) {
    next(p, |m| match m {
        ServerMessage::DirectOffer {
            viewer,
            sdp,
            may_control,
        } => Some((viewer, sdp, may_control)),
        _ => None,
    })
    .await
}

async fn error(ws: &mut Ws) -> (ErrorCode, String) {
    next(ws, |m| match m {
        ServerMessage::Error { code, message } => Some((code, message)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn offers_answers_and_candidates_go_between_viewer_and_publisher() {
    let server = start().await;
    let mut p = publisher(&server, 2).await;
    let (mut v, path, note) = viewer(&server).await;
    assert_eq!((path, note), (MediaPath::Direct, None));

    send(&mut v, offer()).await;
    let (id, sdp, may_control) = direct_offer(&mut p).await;
    assert!(sdp.starts_with("v=0"));
    assert!(may_control, "an open server lets everyone control");
    send(
        &mut v,
        ClientMessage::Candidate {
            candidate: "candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
    )
    .await;
    let (cid, candidate) = next(&mut p, |m| match m {
        ServerMessage::DirectCandidate {
            viewer, candidate, ..
        } => Some((viewer, candidate)),
        _ => None,
    })
    .await;
    assert_eq!(cid, id);
    assert!(candidate.contains("192.0.2.7"));

    send(
        &mut p,
        ClientMessage::DirectAnswer {
            viewer: id,
            sdp: "v=0 answer".into(),
        },
    )
    .await;
    let answer = next(&mut v, |m| match m {
        ServerMessage::Answer { sdp, .. } => Some(sdp),
        _ => None,
    })
    .await;
    assert_eq!(answer, "v=0 answer");
    send(
        &mut p,
        ClientMessage::DirectCandidate {
            viewer: id,
            candidate: "candidate:2 1 udp 1694498815 198.51.100.4 6000 typ srflx".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
    )
    .await;
    let candidate = next(&mut v, |m| match m {
        ServerMessage::Candidate { candidate, .. } => Some(candidate),
        _ => None,
    })
    .await;
    assert!(candidate.contains("198.51.100.4"));

    // The publisher may speak only to its own direct viewers.
    send(
        &mut p,
        ClientMessage::DirectAnswer {
            viewer: id + 1000,
            sdp: "v=0".into(),
        },
    )
    .await;
    let (code, message) = error(&mut p).await;
    assert_eq!(code, ErrorCode::WrongState);
    assert!(message.contains("not a direct viewer"), "{message}");

    // The viewer leaves: the publisher is told to close its connection.
    drop(v);
    let closed = next(&mut p, |m| match m {
        ServerMessage::DirectClose { viewer } => Some(viewer),
        _ => None,
    })
    .await;
    assert_eq!(closed, id);
    server.shutdown().await;
}

#[tokio::test]
async fn the_cap_holds_and_a_freed_slot_is_taken_again() {
    let server = start().await;
    let mut p = publisher(&server, 1).await;
    let (mut first, path, _) = viewer(&server).await;
    assert_eq!(path, MediaPath::Direct);
    let (mut second, path, note) = viewer(&server).await;
    assert_eq!(path, MediaPath::Server, "over --p2p-max: through the SFU");
    let note = note.expect("a note says why");
    assert!(note.contains("--p2p-max"), "{note}");

    // The publisher gives up on the first (its ICE failed): the viewer hears why, the
    // slot is free for the next one.
    send(&mut first, offer()).await;
    let (id, _, _) = direct_offer(&mut p).await;
    send(
        &mut p,
        ClientMessage::DirectEnded {
            viewer: id,
            reason: "the direct connection failed".into(),
        },
    )
    .await;
    let reason = next(&mut first, |m| match m {
        ServerMessage::DirectFailed { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("failed"), "{reason}");
    assert_eq!(ask_direct(&mut second).await.0, MediaPath::Direct);
    server.shutdown().await;
}

#[tokio::test]
async fn a_publisher_without_p2p_and_a_departed_one_take_nobody_directly() {
    let server = start().await;
    let p = publisher(&server, 0).await;
    let (mut v, path, note) = viewer(&server).await;
    assert_eq!(path, MediaPath::Server);
    assert!(note.unwrap().contains("no direct viewers"));
    drop(p);

    // A direct viewer whose publisher went away is told to subscribe again, not left
    // waiting for an answer.
    let p = publisher(&server, 2).await;
    assert_eq!(ask_direct(&mut v).await.0, MediaPath::Direct);
    drop(p);
    // The camera goes offline once the server noticed the socket close.
    next(&mut v, |m| {
        matches!(m, ServerMessage::CameraOffline { .. }).then_some(())
    })
    .await;
    send(&mut v, offer()).await;
    let (code, message) = error(&mut v).await;
    assert_eq!(code, ErrorCode::WrongState);
    assert!(message.contains("subscribe again"), "{message}");
    server.shutdown().await;
}
