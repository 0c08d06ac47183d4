//! Things restart; video comes back without anyone doing anything.

use std::time::Duration;

use sightline_tests::sequence::next_consecutive;
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig, ViewerEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_restart_resumes_video_on_the_same_subscription() {
    let server = TestServer::start().await.unwrap();
    let camera = "cam-restart";
    let publisher = server.start_camera(camera).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let before = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    let last_before = before.last().unwrap().stamp.unwrap().frame;

    let _publisher = publisher.restart().await;

    // The viewer hears the camera went away...
    loop {
        match viewer.next_event(Duration::from_secs(10)).await.unwrap() {
            ViewerEvent::CameraOffline { camera_id } => {
                assert_eq!(camera_id, camera);
                break;
            }
            ViewerEvent::Frame(_) | ViewerEvent::Connected { .. } => {}
            other => panic!("unexpected event before camera_offline: {other:?}"),
        }
    }
    // ...then, without resubscribing, gets the new publisher's frames, numbered from 0 again.
    let mut first_new = None;
    while first_new.is_none() {
        match viewer.next_event(Duration::from_secs(20)).await.unwrap() {
            ViewerEvent::Frame(f) => {
                if let Some(s) = f.stamp.filter(|s| s.frame < last_before) {
                    first_new = Some((f, s));
                }
            }
            ViewerEvent::CameraOnline { .. } | ViewerEvent::CameraOffline { .. } => {}
            other => panic!("unexpected event while waiting for video: {other:?}"),
        }
    }
    let (f, stamp) = first_new.unwrap();
    assert_eq!(f.session, 1, "same subscription");
    assert!(
        stamp.frame < 200,
        "numbering restarted, got {}",
        stamp.frame
    );
    let after = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert!(after.iter().all(|f| f.session == 1));
    let stats = viewer.stats();
    assert_eq!(
        stats.sessions, 1,
        "the viewer never resubscribed: {stats:?}"
    );
    assert_eq!(stats.camera_offline_events, 1, "{stats:?}");

    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_on_the_same_ports_heals_by_itself() {
    let mut server = TestServer::start().await.unwrap();
    let camera = "cam-server-restart";
    let _publisher = server.start_camera(camera).await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    next_consecutive(&mut viewer, camera, 30).await.unwrap();
    let (http, udp) = (server.http_addr(), server.udp_port());

    server.restart().await.unwrap();
    assert_eq!((server.http_addr(), server.udp_port()), (http, udp));

    // The publisher re-registers by itself...
    server
        .wait_camera_online(camera, Duration::from_secs(30))
        .await
        .unwrap();
    // ...and the viewer notices the loss, resubscribes and decodes again.
    loop {
        match viewer.next_event(Duration::from_secs(30)).await.unwrap() {
            ViewerEvent::Frame(f) if f.session >= 2 => break,
            _ => {}
        }
    }
    let run = next_consecutive(&mut viewer, camera, 30).await.unwrap();
    assert!(run.iter().all(|f| f.session >= 2));
    assert!(viewer.stats().sessions >= 2);

    viewer.close().await;
    server.shutdown().await;
}
