//! A camera's publisher hears its viewer count (`demand`): right after `registered`, then at
//! every change: a viewer subscribes, moves to another camera, or its session ends.
//! Re-subscribing to the same camera changes nothing. Signaling only (no media), over
//! 127.0.0.1.

use std::time::Duration;

use sightline_protocol::wire::MediaPath;
use sightline_protocol::{ClientMessage, ServerMessage};
use sightline_signaling::server::RunningServer;

mod common;
use common::{next, register, send, start, ws, Ws, WAIT};

/// The next `demand` the publisher gets, checked to be for `camera`.
async fn demand(publisher: &mut Ws, camera: &str) -> u32 {
    let (id, viewers) = next(publisher, |m| match m {
        ServerMessage::Demand {
            camera_id, viewers, ..
        } => Some((camera_id, viewers)),
        _ => None,
    })
    .await;
    assert_eq!(id, camera);
    viewers
}

/// No `demand` arrives for a moment.
async fn quiet(publisher: &mut Ws) {
    let got = tokio::time::timeout(
        Duration::from_millis(300),
        next(publisher, |m| {
            matches!(m, ServerMessage::Demand { .. }).then_some(m)
        }),
    )
    .await;
    assert!(got.is_err(), "unexpected {got:?}");
}

async fn subscribe(server: &RunningServer, camera: &str) -> Ws {
    let mut v = ws(server).await;
    send(&mut v, sub(camera)).await;
    next(&mut v, |m| {
        matches!(m, ServerMessage::Subscribed { .. }).then_some(())
    })
    .await;
    v
}

fn sub(camera: &str) -> ClientMessage {
    ClientMessage::Subscribe {
        camera_id: camera.into(),
        path: MediaPath::Server,
    }
}

#[tokio::test]
async fn the_publisher_follows_its_viewer_count() {
    let server = start().await;
    let mut p = ws(&server).await;
    send(&mut p, register("cam", 0)).await;
    next(&mut p, |m| {
        matches!(m, ServerMessage::Registered { .. }).then_some(())
    })
    .await;
    assert_eq!(demand(&mut p, "cam").await, 0, "told at once: nobody yet");

    let mut a = subscribe(&server, "cam").await;
    assert_eq!(demand(&mut p, "cam").await, 1);
    let b = subscribe(&server, "cam").await;
    assert_eq!(demand(&mut p, "cam").await, 2);

    // Subscribing again to the same camera keeps the subscription: still 2.
    send(&mut a, sub("cam")).await;
    next(&mut a, |m| {
        matches!(m, ServerMessage::Subscribed { .. }).then_some(())
    })
    .await;
    assert_eq!(demand(&mut p, "cam").await, 2);

    // Another camera's viewers are not ours.
    let mut q = ws(&server).await;
    send(&mut q, register("other", 0)).await;
    assert_eq!(demand(&mut q, "other").await, 0);
    let _c = subscribe(&server, "other").await;
    assert_eq!(demand(&mut q, "other").await, 1);
    quiet(&mut p).await;

    // A viewer moving to the other camera, and one leaving.
    send(&mut a, sub("other")).await;
    assert_eq!(demand(&mut q, "other").await, 2);
    assert_eq!(demand(&mut p, "cam").await, 1);
    drop(b);
    assert_eq!(demand(&mut p, "cam").await, 0);

    // A publisher coming back is told the count of viewers who stayed subscribed.
    drop(q);
    let mut q2 = ws(&server).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // The old session may still hold the camera for a moment after its socket dropped.
        send(&mut q2, register("other", 0)).await;
        let registered = next(&mut q2, |m| match m {
            ServerMessage::Registered { .. } => Some(true),
            ServerMessage::Error { .. } => Some(false),
            _ => None,
        })
        .await;
        if registered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(demand(&mut q2, "other").await, 2);
    server.shutdown().await;
}

/// A viewer offer with `codecs` configured (str0m), video recvonly.
fn viewer_offer(vp8_only: bool) -> String {
    let mut config = str0m::Rtc::builder().clear_codecs();
    if vp8_only {
        config.codec_config().enable_vp8(true);
    } else {
        config.codec_config().enable_h264(true);
    }
    let mut rtc = config.build(std::time::Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Video,
        str0m::media::Direction::RecvOnly,
        None,
        None,
        None,
    );
    api.apply().unwrap().0.to_sdp_string()
}

/// The next `demand` the publisher gets, as (viewers, of them VP8).
async fn vp8_demand(publisher: &mut Ws) -> (u32, u32) {
    next(publisher, |m| match m {
        ServerMessage::Demand {
            viewers,
            vp8_viewers,
            ..
        } => Some((viewers, vp8_viewers)),
        _ => None,
    })
    .await
}

/// The publisher hears how many viewers the SFU sends VP8 (their offers have no H.264), so
/// it encodes VP8 only while there are any.
#[tokio::test]
async fn the_publisher_hears_of_vp8_viewers() {
    let server = start().await;
    let mut p = ws(&server).await;
    send(&mut p, register("cam", 0)).await;
    assert_eq!(vp8_demand(&mut p).await, (0, 0));
    let mut firefox = subscribe(&server, "cam").await;
    assert_eq!(vp8_demand(&mut p).await, (1, 0));
    let mut chrome = subscribe(&server, "cam").await;
    assert_eq!(vp8_demand(&mut p).await, (2, 0));
    let offer = |vp8_only| ClientMessage::Offer {
        sdp: viewer_offer(vp8_only),
    };
    send(&mut chrome, offer(false)).await;
    send(&mut firefox, offer(true)).await;
    assert_eq!(vp8_demand(&mut p).await, (2, 1));
    // A new offer from the same viewer, with H.264 this time: no VP8 viewer left.
    send(&mut firefox, offer(false)).await;
    assert_eq!(vp8_demand(&mut p).await, (2, 0));
    send(&mut firefox, offer(true)).await;
    assert_eq!(vp8_demand(&mut p).await, (2, 1));
    drop(firefox);
    assert_eq!(vp8_demand(&mut p).await, (1, 0));
    quiet(&mut p).await;
    server.shutdown().await;
}
