//! WHEP playback (`POST /whep/{camera_id}`, `DELETE` on its `Location`), with the suite's
//! own WHEP player (a str0m peer and a bare HTTP client, none of the server's code): frames
//! decode and carry the camera's barcode, the player counts as a viewer until it ends, bad
//! requests get a precise status and a one-line reason, tokens are enforced.

use std::time::{Duration, Instant};

use sightline_publisher::barcode::tag_for;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, wait_until, with_tokens};
use sightline_tests::raw_http::request;
use sightline_tests::whep_player::{delete, post_offer, WhepPlayer};
use sightline_tests::TestServer;
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;

const CAMERA: &str = "cam-whep";

async fn viewers(server: &TestServer) -> u32 {
    let cams = server.cameras().await.unwrap();
    cams.iter()
        .find(|c| c.id == CAMERA)
        .map_or(0, |c| c.viewers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_decodes_the_camera_until_it_deletes_its_session() {
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();

    let started = Instant::now();
    let mut player = WhepPlayer::start(server.http_addr(), CAMERA, None)
        .await
        .unwrap();
    let created = &player.created;
    assert_eq!(created.header("content-type"), Some("application/sdp"));
    assert!(created.body.starts_with("v=0"), "{}", created.body);
    assert!(
        player.location().starts_with("/whep/cam-whep/"),
        "{:?}",
        created.headers
    );
    assert!(created.header("etag").is_some(), "{:?}", created.headers);
    assert_eq!(created.header("link"), None, "no ICE servers configured");

    let mut latencies = Vec::new();
    for i in 0..30 {
        let frame = player.next_frame(Duration::from_secs(20)).await.unwrap();
        if i == 0 {
            println!(
                "WHEP: first frame decoded {:?} after POST",
                started.elapsed()
            );
        }
        let stamp = frame
            .stamp
            .unwrap_or_else(|| panic!("frame {i} without a barcode"));
        assert_eq!(stamp.tag, tag_for(CAMERA));
        latencies.push(frame.received_at_us.saturating_sub(stamp.capture_us));
    }
    latencies.sort_unstable();
    println!(
        "WHEP: capture → decode p50 {} µs, max {} µs over 30 frames",
        latencies[15], latencies[29]
    );
    assert_eq!(
        viewers(&server).await,
        1,
        "the player is one of the camera's viewers"
    );

    let location = player.location().to_owned();
    let deleted = player.delete(None).await.unwrap();
    assert_eq!(deleted.status, 200, "{deleted:?}");
    wait_until(
        Duration::from_secs(10),
        "the player's viewer gone",
        async || (viewers(&server).await == 0).then_some(()),
    )
    .await
    .unwrap();
    let again = delete(server.http_addr(), &location, None).await.unwrap();
    assert_eq!(again.status, 404, "{again:?}");
    assert!(server.sfu().stats().await.viewers == 0);
    server.shutdown().await;
}

/// A viewer's offer, as the suite's peer writes it (its candidate is never used).
fn viewer_offer() -> String {
    let nowhere = "127.0.0.1:9".parse().unwrap();
    let (_, offer) =
        sightline_tests::peer::ViewerPeer::offering(nowhere, Instant::now(), false, false).unwrap();
    offer
}

/// An offer with only an audio m-line, as str0m writes it.
fn audio_only_offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whep_requests_get_a_status_and_a_reason_and_the_server_serves_on() {
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let addr = server.http_addr();
    let path = format!("/whep/{CAMERA}");
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    let audio = audio_only_offer();
    for (what, content_type, body, want) in [
        ("wrong content type", "application/json", "{}", 415),
        ("empty offer", "application/sdp", "", 400),
        ("huge offer", "application/sdp", huge.as_str(), 413),
        ("garbage offer", "application/sdp", "hello, camera", 400),
        ("no video", "application/sdp", audio.as_str(), 400),
    ] {
        let resp = post_offer(addr, &path, content_type, body, None)
            .await
            .unwrap();
        assert_eq!(resp.status, want, "{what}: {resp:?}");
        assert_eq!(
            resp.body.trim_end().lines().count(),
            1,
            "{what}: one line: {:?}",
            resp.body
        );
        println!("{what}: {} {}", resp.status, resp.body.trim_end());
    }
    let offer = viewer_offer();
    let unknown = post_offer(
        addr,
        "/whep/no-such-camera",
        "application/sdp",
        &offer,
        None,
    )
    .await
    .unwrap();
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(unknown.body.contains("no-such-camera"), "{}", unknown.body);

    let stream = || async { tokio::net::TcpStream::connect(addr).await.unwrap() };
    let patch = request(stream().await, "PATCH", &format!("{path}/abc"), &[], "x")
        .await
        .unwrap();
    assert_eq!(patch.status, 405, "{patch:?}");
    assert_eq!(patch.header("allow"), Some("DELETE"));
    let options = request(stream().await, "OPTIONS", &path, &[], "")
        .await
        .unwrap();
    assert_eq!(options.status, 204, "{options:?}");
    assert_eq!(options.header("accept-post"), Some("application/sdp"));
    let gone = delete(addr, &format!("{path}/0123456789abcdef"), None)
        .await
        .unwrap();
    assert_eq!(gone.status, 404, "{gone:?}");

    // Nothing above left a viewer behind, and a good player still plays.
    assert_eq!(viewers(&server).await, 0);
    let mut player = WhepPlayer::start(addr, CAMERA, None).await.unwrap();
    player.next_frame(Duration::from_secs(20)).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_whep_needs_a_view_token_and_only_its_maker_ends_it() {
    let mut config = with_tokens(loopback_server_config());
    config.ice.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
    config.ice.turn_secret = Some(b"a coturn secret".to_vec());
    let server = TestServer::start_with(config).await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let addr = server.http_addr();

    let refused = WhepPlayer::start(addr, CAMERA, None).await.err().unwrap();
    assert!(refused.to_string().contains("401"), "{refused:#}");
    let elsewhere = server.token(Role::View, "other-camera").unwrap();
    let refused = WhepPlayer::start(addr, CAMERA, Some(&elsewhere))
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("403"), "{refused:#}");

    let view = server.token(Role::View, CAMERA).unwrap();
    let mut player = WhepPlayer::start(addr, CAMERA, Some(&view)).await.unwrap();
    let link = player.created.header("link").unwrap_or_default().to_owned();
    assert!(
        link.starts_with("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"; username=\"")
            && link.contains("credential-type=\"password\""),
        "{link}"
    );
    player.next_frame(Duration::from_secs(20)).await.unwrap();

    let other = server.token(Role::Control, CAMERA).unwrap();
    let location = player.location().to_owned();
    let not_yours = delete(addr, &location, Some(&other)).await.unwrap();
    assert_eq!(not_yours.status, 403, "{not_yours:?}");
    let no_token = delete(addr, &location, None).await.unwrap();
    assert_eq!(no_token.status, 401, "{no_token:?}");
    player
        .next_frame(Duration::from_secs(5))
        .await
        .expect("still playing after refused DELETEs");
    let ended = player.delete(Some(&view)).await.unwrap();
    assert_eq!(ended.status, 200, "{ended:?}");
    server.shutdown().await;
}

/// With `--cors-origin`, a page of that origin may play over WHEP: the preflight allows the
/// POST and the DELETE, and the answer's `Location` is readable by the page's script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_origin_may_play_over_whep() {
    let mut config = loopback_server_config();
    config.cors_origins = vec!["https://dash.example.org".into()];
    let server = TestServer::start_with(config).await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let stream = || async {
        tokio::net::TcpStream::connect(server.http_addr())
            .await
            .unwrap()
    };
    let preflight = |method| async move {
        request(
            stream().await,
            "OPTIONS",
            "/whep/cam-whep/abc",
            &[
                ("Origin", "https://dash.example.org"),
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "content-type,authorization",
                ),
            ],
            "",
        )
        .await
        .unwrap()
    };
    for method in ["POST", "DELETE"] {
        let resp = preflight(method).await;
        assert_eq!(resp.status, 200, "{method}: {resp:?}");
        let allowed = resp.header("access-control-allow-methods").unwrap_or("");
        assert!(allowed.contains(method), "{method}: {allowed}");
    }
    let offer = viewer_offer();
    let created = request(
        stream().await,
        "POST",
        "/whep/cam-whep",
        &[
            ("Origin", "https://dash.example.org"),
            ("Content-Type", "application/sdp"),
        ],
        &offer,
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    let exposed = created
        .header("access-control-expose-headers")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("location") && exposed.contains("link"),
        "{exposed}"
    );
    server.shutdown().await;
}
