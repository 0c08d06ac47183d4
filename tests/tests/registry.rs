//! The camera registry forgets: `DELETE /api/cameras/{id}` removes a camera (its publisher
//! is told, stops and does not come back), offline cameras are forgotten after
//! `--forget-after`, and the list says when each camera was last seen.

use std::time::Duration;

use sightline_protocol::control::unix_millis as now_ms;
use sightline_protocol::wire::{CameraState, ServerMessage};
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, wait_until, with_tokens};
use sightline_tests::signal::SignalClient;
use sightline_tests::TestServer;

const WAIT: Duration = Duration::from_secs(10);

/// A signaling session that hears the broadcasts (it asks for the list first).
async fn listener(server: &TestServer) -> SignalClient {
    let (client, _) = SignalClient::connect_hello(&server.ws_url(), WAIT)
        .await
        .unwrap();
    client
}

async fn removal_heard(client: &mut SignalClient, camera: &str) {
    client
        .recv_until(WAIT, |m| match m {
            ServerMessage::CameraRemoved { camera_id } if camera_id == camera => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("no camera_removed for {camera}: {e:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_camera_is_gone_and_its_publisher_stops_for_good() {
    let server = TestServer::start().await.unwrap();
    let publisher = server.start_camera("porch").await.unwrap();
    let _other = server.start_camera("yard").await.unwrap();
    let mut heard = listener(&server).await;

    let r = server
        .request("DELETE", "/api/cameras/porch", None, "")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    removal_heard(&mut heard, "porch").await;
    // The publisher heard it too, and its run ended without an error.
    wait_until(WAIT, "the publisher to stop", async || {
        (!publisher.is_running()).then_some(())
    })
    .await
    .unwrap();
    // It does not come back (a publisher that reconnected would be listed within a second
    // or two), and the other camera is untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed: Vec<String> = server
        .cameras()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["yard"]);

    let again = server
        .request("DELETE", "/api/cameras/porch", None, "")
        .await
        .unwrap();
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(again.json().unwrap()["code"], "unknown_camera");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_only_a_controller_of_the_camera_deletes_it() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let _publisher = server.start_camera("porch").await.unwrap();
    for (token, status) in [
        (None, 401),
        (server.token(Role::View, "porch"), 403),
        (server.token(Role::Control, "yard"), 403),
    ] {
        let r = server
            .request("DELETE", "/api/cameras/porch", token.as_deref(), "")
            .await
            .unwrap();
        assert_eq!(r.status, status, "{}", r.body);
    }
    assert_eq!(server.cameras().await.unwrap().len(), 1, "still there");
    let control = server.token(Role::Control, "porch");
    let r = server
        .request("DELETE", "/api/cameras/porch", control.as_deref(), "")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(server.cameras().await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_cameras_are_listed_with_last_seen_then_forgotten() {
    let mut config = loopback_server_config();
    config.forget_after = Some(Duration::from_secs(3));
    let server = TestServer::start_with(config).await.unwrap();
    let publisher = server.start_camera("porch").await.unwrap();
    let mut heard = listener(&server).await;

    // Online: seen now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = now_ms();
    let cam = server.cameras().await.unwrap().remove(0);
    assert!(
        cam.last_seen >= before - 100 && cam.last_seen <= now_ms() + 100,
        "online camera last seen {} ms, now {before}",
        cam.last_seen
    );

    // Offline: seen when its publisher went away, and not later.
    let stopped_at = now_ms();
    publisher.stop().await;
    server.wait_camera_offline("porch", WAIT).await.unwrap();
    let offline_at = now_ms();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cam = server.cameras().await.unwrap().remove(0);
    assert_eq!(cam.state, CameraState::Offline);
    assert!(
        (stopped_at..=offline_at).contains(&cam.last_seen),
        "offline camera last seen {}, stopped between {stopped_at} and {offline_at}",
        cam.last_seen
    );

    // Forgotten 3 s after that: everyone hears it, and the list is empty.
    removal_heard(&mut heard, "porch").await;
    let forgotten_after = now_ms() - cam.last_seen;
    assert!(
        (3_000..8_000).contains(&forgotten_after),
        "forgotten {forgotten_after} ms after going offline, with --forget-after 3s"
    );
    assert!(server.cameras().await.unwrap().is_empty());

    // A camera that comes back is listed again.
    let _back = server.start_camera("porch").await.unwrap();
    assert_eq!(server.cameras().await.unwrap().len(), 1);
    server.shutdown().await;
}
