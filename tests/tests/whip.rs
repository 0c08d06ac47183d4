//! WHIP ingest (`POST /whip/{camera_id}`, `DELETE` on its `Location`), with the suite's own
//! WHIP client (a str0m peer sending barcoded H.264, and a bare HTTP client; none of the
//! server's or the publisher's code): the camera goes online, reaches WHEP and WebSocket
//! viewers, answers control as the SFU alone can, and goes offline when deleted. Bad
//! requests get a precise status and a one-line reason; tokens are enforced.

use std::time::{Duration, Instant};

use serde_json::json;
use sightline_protocol::control::ControlErrorCode;
use sightline_protocol::wire::CameraState;
use sightline_publisher::barcode::tag_for;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, wait_until, with_tokens};
use sightline_tests::whep_player::{post_offer, WhepPlayer};
use sightline_tests::whip_client::WhipClient;
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig, ViewerEvent};

/// The camera list learns a WHIP camera's size from its first keyframe, long before this.
const T_LIST: Duration = Duration::from_secs(5);
const CAMERA: &str = "cam-whip";
const SIZE: (u32, u32) = (320, 240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_camera_reaches_whep_and_websocket_viewers_until_deleted() {
    let server = TestServer::start().await.unwrap();
    let whip = WhipClient::start(server.http_addr(), CAMERA, None, SIZE)
        .await
        .unwrap();
    assert_eq!(whip.created.header("content-type"), Some("application/sdp"));
    assert!(
        whip.location().starts_with("/whip/cam-whip/"),
        "{:?}",
        whip.created
    );
    assert!(whip.created.header("etag").is_some());
    assert!(
        whip.created.body.contains("m=audio 0"),
        "audio is declined: {}",
        whip.created.body
    );
    let camera = server
        .wait_camera_online(CAMERA, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(camera.name, CAMERA);

    // Snapshots come from Sightline's publisher; a WHIP camera has none, and says why.
    let stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    let snap = sightline_tests::raw_http::request(
        stream,
        "GET",
        &format!("/api/cameras/{CAMERA}/snapshot.jpg"),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(snap.status, 404, "{}", snap.body);
    assert!(snap.body.contains("WHIP"), "{}", snap.body);

    // A WHEP player, end to end over the standard doors.
    let started = Instant::now();
    let mut player = WhepPlayer::start(server.http_addr(), CAMERA, None)
        .await
        .unwrap();
    let mut latencies = Vec::new();
    for i in 0..30 {
        let frame = player.next_frame(Duration::from_secs(20)).await.unwrap();
        if i == 0 {
            println!(
                "WHIP → WHEP: first frame decoded {:?} after the WHEP POST",
                started.elapsed()
            );
        }
        let stamp = frame.stamp.expect("a barcode");
        assert_eq!(stamp.tag, tag_for(CAMERA));
        assert_eq!((frame.width, frame.height), SIZE);
        latencies.push(frame.received_at_us.saturating_sub(stamp.capture_us));
    }
    // Its offer said no size; its stream's SPS did, so it is listed like any camera.
    wait_until(T_LIST, "the WHIP camera listed with its size", async || {
        let cams = server.cameras().await.ok()?;
        let cam = cams.into_iter().find(|c| c.id == CAMERA)?;
        ((cam.width, cam.height) == SIZE).then_some(())
    })
    .await
    .unwrap();
    latencies.sort_unstable();
    println!(
        "WHIP → WHEP: capture → decode p50 {} µs, max {} µs over 30 frames",
        latencies[15], latencies[29]
    );

    // A web-client-like viewer, with a control channel.
    let mut config = ViewerConfig::new(server.ws_url(), CAMERA);
    config.control = true;
    let mut viewer = HeadlessViewer::connect(config).await.unwrap();
    let frame = viewer.next_frame(Duration::from_secs(20)).await.unwrap();
    assert_eq!(frame.stamp.map(|s| s.tag), Some(tag_for(CAMERA)));
    viewer.wait_welcome(Duration::from_secs(10)).await.unwrap();
    let t = Duration::from_secs(5);
    let update = viewer.update_settings(json!({"fps": 5}), t).await.unwrap();
    assert!(!update.success, "{update:?}");
    let error = update.error.unwrap();
    assert_eq!(error.code, ControlErrorCode::Unsupported, "{error:?}");
    assert!(error.message.contains("WHIP"), "{}", error.message);
    let keyframe = viewer
        .control_request(json!({"type": "request_keyframe"}), t)
        .await
        .unwrap();
    assert!(keyframe.success, "{keyframe:?}");
    let paused = viewer
        .control_request(json!({"type": "pause"}), t)
        .await
        .unwrap();
    assert!(paused.success, "{paused:?}");

    let deleted = whip.delete(None).await.unwrap();
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let offline = server
        .wait_camera_offline(CAMERA, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(offline.state, CameraState::Offline);
    loop {
        match viewer.next_event(Duration::from_secs(10)).await.unwrap() {
            ViewerEvent::CameraOffline { camera_id } => {
                assert_eq!(camera_id, CAMERA);
                break;
            }
            _ => continue,
        }
    }
    viewer.close().await;
    server.shutdown().await;
}

/// A VP8-only offer, as str0m writes it.
fn vp8_offer() -> String {
    let mut config = str0m::Rtc::builder().clear_codecs();
    config.codec_config().enable_vp8(true);
    let mut rtc = config.build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    api.apply().unwrap().0.to_sdp_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whip_requests_get_a_status_and_a_reason_and_a_live_camera_is_not_taken() {
    let server = TestServer::start().await.unwrap();
    let addr = server.http_addr();
    let vp8 = vp8_offer();
    for (what, path, content_type, body, want, says) in [
        (
            "wrong content type",
            "/whip/cam-x",
            "text/plain",
            "v=0",
            415,
            "application/sdp",
        ),
        (
            "empty offer",
            "/whip/cam-x",
            "application/sdp",
            "",
            400,
            "empty",
        ),
        (
            "garbage offer",
            "/whip/cam-x",
            "application/sdp",
            "nonsense",
            400,
            "SDP",
        ),
        (
            "VP8 only",
            "/whip/cam-x",
            "application/sdp",
            vp8.as_str(),
            400,
            "H.264",
        ),
        (
            "bad camera id",
            "/whip/a%20b",
            "application/sdp",
            vp8.as_str(),
            400,
            "camera",
        ),
    ] {
        let resp = post_offer(addr, path, content_type, body, None)
            .await
            .unwrap();
        assert_eq!(resp.status, want, "{what}: {resp:?}");
        assert!(resp.body.contains(says), "{what}: {}", resp.body);
        assert_eq!(
            resp.body.trim_end().lines().count(),
            1,
            "{what}: {:?}",
            resp.body
        );
        println!("{what}: {} {}", resp.status, resp.body.trim_end());
    }
    let cams = server.cameras().await.unwrap();
    assert!(
        cams.iter().all(|c| c.state == CameraState::Offline),
        "a refused offer leaves no camera online: {cams:?}"
    );

    // A camera live from a WebSocket publisher is not taken by a WHIP client.
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let taken = WhipClient::start(addr, CAMERA, None, SIZE)
        .await
        .err()
        .unwrap();
    assert!(taken.to_string().contains("409"), "{taken:#}");
    let mut player = WhepPlayer::start(addr, CAMERA, None).await.unwrap();
    let frame = player.next_frame(Duration::from_secs(20)).await.unwrap();
    assert_eq!(
        frame.stamp.map(|s| s.tag),
        Some(tag_for(CAMERA)),
        "still the first publisher"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_whip_needs_a_publish_token_and_only_its_maker_ends_it() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let addr = server.http_addr();
    let refused = WhipClient::start(addr, CAMERA, None, SIZE)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("401"), "{refused:#}");
    let view = server.token(Role::View, CAMERA).unwrap();
    let refused = WhipClient::start(addr, CAMERA, Some(&view), SIZE)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("403"), "{refused:#}");

    let publish = server.token(Role::Publish, CAMERA).unwrap();
    let whip = WhipClient::start(addr, CAMERA, Some(&publish), SIZE)
        .await
        .unwrap();
    server
        .wait_camera_online(CAMERA, Duration::from_secs(10))
        .await
        .unwrap();
    let mut player = WhepPlayer::start(addr, CAMERA, Some(&view)).await.unwrap();
    player.next_frame(Duration::from_secs(20)).await.unwrap();
    let location = whip.location().to_owned();
    let not_yours = sightline_tests::whep_player::delete(addr, &location, Some(&view))
        .await
        .unwrap();
    assert_eq!(not_yours.status, 403, "{not_yours:?}");
    assert!(whip.is_sending());
    let ended = whip.delete(Some(&publish)).await.unwrap();
    assert_eq!(ended.status, 200, "{ended:?}");
    server
        .wait_camera_offline(CAMERA, Duration::from_secs(10))
        .await
        .unwrap();
    server.shutdown().await;
}

/// A WHIP client and a WHEP player that vanish without a DELETE (a crash, a pulled cable):
/// the SFU notices their peers went quiet, and the server ends their sessions by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_whose_clients_vanish_end_by_themselves() {
    let server = TestServer::start().await.unwrap();
    let addr = server.http_addr();
    let whip = WhipClient::start(addr, CAMERA, None, SIZE).await.unwrap();
    server
        .wait_camera_online(CAMERA, Duration::from_secs(10))
        .await
        .unwrap();
    let mut player = WhepPlayer::start(addr, CAMERA, None).await.unwrap();
    player.next_frame(Duration::from_secs(20)).await.unwrap();
    let viewers = || async {
        let cams = server.cameras().await.unwrap();
        cams.iter()
            .find(|c| c.id == CAMERA)
            .map_or(0, |c| c.viewers)
    };
    assert_eq!(viewers().await, 1);

    let vanished = Instant::now();
    drop(player);
    drop(whip);
    let offline = server
        .wait_camera_offline(CAMERA, Duration::from_secs(60))
        .await
        .unwrap();
    println!(
        "camera offline {:?} after its WHIP client vanished",
        vanished.elapsed()
    );
    assert_eq!(offline.state, CameraState::Offline);
    // The player's peer times out on its own clock, a moment before or after the client's.
    wait_until(
        Duration::from_secs(15),
        "the WHEP player's session ended too",
        async || (viewers().await == 0).then_some(()),
    )
    .await
    .unwrap();
    let stats = server.sfu().stats().await;
    assert_eq!((stats.peers, stats.viewers), (0, 0), "{stats:?}");
    server.shutdown().await;
}
