//! `GET /api/cameras/{id}/snapshot.jpg`: the real publisher (test pattern, real encoder
//! thread) makes a JPEG of its picture when the server asks on its signaling socket; the
//! JPEG is decoded here and its barcode read, so it is the camera's own, recent picture.
//! Then `?width=`, every refusal, tokens, and publishers that answer badly or not at all;
//! and the MJPEG stream made of snapshots, read by the publisher's own MJPEG client.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_protocol::wire::{snapshot_reply, ClientMessage, ErrorCode, ServerMessage};
use sightline_publisher::barcode;
use sightline_publisher::image::decode_jpeg;
use sightline_publisher::source::{self, Payload, Source, SourceSpec, SourceUrl};
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, with_tokens};
use sightline_tests::raw_http::{request, RawResponse};
use sightline_tests::{SignalClient, TestServer};

const CAMERA: &str = "cam-snap";
const T: Duration = Duration::from_secs(10);

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    request(stream, "GET", path, headers, "").await.unwrap()
}

fn snapshot_path(camera: &str, query: &str) -> String {
    format!("/api/cameras/{camera}/snapshot.jpg{query}")
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_the_cameras_picture_now_at_the_asked_width() {
    let server = TestServer::start().await.unwrap();
    let mut config = server.publisher_config(CAMERA);
    (config.width, config.height) = (640, 360);
    let _camera = server.start_publisher(config).await.unwrap();
    server.wait_camera_online(CAMERA, T).await.unwrap();

    // The first may wait for the media connection; then each is one frame away.
    let mut times = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while times.len() < 20 {
        let asked_us = now_us();
        let started = Instant::now();
        let r = get(&server, &snapshot_path(CAMERA, ""), &[]).await;
        if r.status == 503 && times.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue; // not encoding yet
        }
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let picture = decode_jpeg(&r.bytes).expect("a JPEG");
        assert_eq!((picture.width, picture.height), (640, 360));
        let stamp = barcode::read(&picture.y, 640, 640, 360).expect("the barcode survives JPEG");
        assert_eq!(stamp.tag, barcode::tag_for(CAMERA));
        // Captured after the request was made (a frame that came by, not an old one).
        assert!(
            stamp.capture_us + 100_000 >= asked_us,
            "the picture is {} ms older than the request",
            (asked_us - stamp.capture_us) / 1000
        );
        assert!(took < Duration::from_secs(1), "a snapshot took {took:?}");
        times.push(took);
    }
    times.sort();
    println!(
        "snapshot latency (640x360 test pattern, {} requests): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );

    let small = get(&server, &snapshot_path(CAMERA, "?width=320"), &[]).await;
    assert_eq!(small.status, 200, "{}", small.body);
    let picture = decode_jpeg(&small.bytes).unwrap();
    assert_eq!((picture.width, picture.height), (320, 180));
    // Wider than the picture: its own size, never scaled up.
    let wide = get(&server, &snapshot_path(CAMERA, "?width=4000"), &[]).await;
    assert_eq!(decode_jpeg(&wide.bytes).unwrap().width, 640);

    for bad in ["?width=abc", "?width=-5", "?width=8", "?width=99999999999"] {
        let r = get(&server, &snapshot_path(CAMERA, bad), &[]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("width"), "{bad}: {}", r.body);
    }
    let unknown = get(&server, &snapshot_path("nobody", ""), &[]).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // `quality` is the snapshots' JPEG quality, set like any other setting.
    let mut sizes = Vec::new();
    for quality in [95, 20] {
        let command = format!(
            r#"{{"v":1,"type":"update_settings","request_id":"q{quality}","settings":{{"quality":{quality}}}}}"#
        );
        let path = format!("/api/cameras/{CAMERA}/control");
        let r = server.request("POST", &path, None, &command).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let shot = get(&server, &snapshot_path(CAMERA, ""), &[]).await;
        assert_eq!(shot.status, 200, "{}", shot.body);
        sizes.push(shot.bytes.len());
    }
    println!(
        "snapshot size (640x360 test pattern): {} bytes at quality 95, {} at 20",
        sizes[0], sizes[1]
    );
    assert!(
        sizes[1] * 4 < sizes[0] * 3,
        "quality 20 ({} bytes) is not clearly smaller than quality 95 ({} bytes)",
        sizes[1],
        sizes[0]
    );

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_and_idle_cameras_say_why_there_is_no_picture() {
    let server = TestServer::start().await.unwrap();
    let camera = server.start_camera(CAMERA).await.unwrap();
    server.wait_camera_online(CAMERA, T).await.unwrap();
    camera.stop().await;
    server.wait_camera_offline(CAMERA, T).await.unwrap();
    let r = get(&server, &snapshot_path(CAMERA, ""), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json().unwrap()["code"], "offline", "{}", r.body);

    // An on-demand camera with nobody watching captures nothing: no picture, and why.
    let mut config = server.publisher_config("cam-idle");
    config.on_demand = true;
    let _idle = server.start_publisher(config).await.unwrap();
    server.wait_camera_online("cam-idle", T).await.unwrap();
    let r = get(&server, &snapshot_path("cam-idle", ""), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("not capturing"), "{}", r.body);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_a_snapshot_needs_view_on_that_camera() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let _camera = server.start_camera(CAMERA).await.unwrap();
    server.wait_camera_online(CAMERA, T).await.unwrap();
    let none = get(&server, &snapshot_path(CAMERA, ""), &[]).await;
    assert_eq!(none.status, 401, "{}", none.body);
    let other = server.token(Role::View, "another").unwrap();
    let r = get(
        &server,
        &snapshot_path(CAMERA, &format!("?token={other}")),
        &[],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let view = server.token(Role::View, CAMERA).unwrap();
    let bearer = format!("Bearer {view}");
    let mut status = 0;
    for _ in 0..50 {
        let r = get(
            &server,
            &snapshot_path(CAMERA, ""),
            &[("authorization", &bearer)],
        )
        .await;
        status = r.status;
        if status == 200 {
            assert!(decode_jpeg(&r.bytes).is_ok());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // until it encodes
    }
    assert_eq!(status, 200);
    server.shutdown().await;
}

/// A hand-driven publisher session: it sees `snapshot_request` and answers as a test wants.
async fn fake_publisher(server: &TestServer, camera: &str) -> SignalClient {
    SignalClient::register_camera(&server.ws_url(), camera, T)
        .await
        .unwrap()
}

async fn next_request(c: &mut SignalClient) -> (u64, Option<u32>) {
    c.recv_until(T, |m| match m {
        ServerMessage::SnapshotRequest { request, width } => Some((*request, *width)),
        _ => None,
    })
    .await
    .unwrap()
}

fn error_code(m: &ServerMessage) -> Option<ErrorCode> {
    match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_that_fail_refuse_or_send_garbage_get_clear_answers() {
    let server = TestServer::start().await.unwrap();
    let mut publisher = fake_publisher(&server, "cam-fake").await;
    let addr = server.http_addr();
    let ask = |query: &'static str| {
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            request(stream, "GET", &snapshot_path("cam-fake", query), &[], "")
                .await
                .unwrap()
        })
    };

    // The publisher says it cannot: 503 with its reason.
    let pending = ask("?width=200");
    let (request_id, width) = next_request(&mut publisher).await;
    assert_eq!(width, Some(200));
    publisher
        .send(&ClientMessage::SnapshotFailed {
            request: request_id,
            reason: "the lens cap is on".into(),
        })
        .await
        .unwrap();
    let r = pending.await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("the lens cap is on"), "{}", r.body);

    // Garbage in binary, and a JPEG for a request nobody made: errors to the publisher,
    // and the session goes on.
    publisher.send_binary(vec![1, 2, 3]).await.unwrap();
    let m = publisher.recv_timeout(T).await.unwrap();
    assert_eq!(error_code(&m), Some(ErrorCode::BadMessage), "{m:?}");
    publisher
        .send_binary(snapshot_reply(12345, b"not a jpeg"))
        .await
        .unwrap();
    let m = publisher.recv_timeout(T).await.unwrap();
    assert_eq!(error_code(&m), Some(ErrorCode::BadMessage), "{m:?}");
    publisher
        .send_binary(snapshot_reply(12345, &[0xff, 0xd8, 0xff, 0xd9]))
        .await
        .unwrap(); // nobody waits: dropped quietly

    // A good answer reaches the caller as it was sent.
    let pending = ask("");
    let (request_id, _) = next_request(&mut publisher).await;
    let jpeg = [0xff, 0xd8, 0xff, 0xe0, 0, 0, 0xff, 0xd9];
    publisher
        .send_binary(snapshot_reply(request_id, &jpeg))
        .await
        .unwrap();
    let r = pending.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bytes, jpeg);

    // A viewer may not answer snapshots.
    let mut viewer = SignalClient::connect(&server.ws_url()).await.unwrap();
    viewer
        .send_binary(snapshot_reply(1, &[0xff, 0xd8]))
        .await
        .unwrap();
    let m = viewer
        .recv_until(T, |m| error_code(m).map(|c| (c, m.clone())))
        .await
        .unwrap();
    assert_ne!(
        m.0,
        ErrorCode::BadMessage,
        "refused for what it is: {:?}",
        m.1
    );

    // A publisher that never answers: 504 after the server's wait, and it still serves.
    let started = Instant::now();
    let r = ask("").await.unwrap();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(8));
    publisher.send(&ClientMessage::List).await.unwrap();
    publisher
        .recv_until(T, |m| {
            matches!(m, ServerMessage::Cameras { .. }).then_some(())
        })
        .await
        .expect("the publisher's session still answers");
    server.shutdown().await;
}

/// Until `camera` is online and encoding (its first snapshot may wait for media).
async fn wait_for_snapshots(server: &TestServer, camera: &str) {
    server.wait_camera_online(camera, T).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(server, &snapshot_path(camera, ""), &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "{camera} never made a snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The publisher's HTTP source (multipart parser, JPEG decoder) reading `path` of `server`.
fn mjpeg_client(server: &TestServer, path: &str) -> Box<dyn Source> {
    source::open(&SourceSpec {
        url: SourceUrl::Http {
            url: format!("http://{}{path}", server.http_addr()),
        },
        width: 0,
        height: 0,
        fps: 30,
        poll_fps: 1,
        read_timeout: Duration::from_secs(10),
        camera_id: "mjpeg-reader".into(),
        controls: Default::default(),
    })
    .unwrap()
}

/// Read `n` pictures (blocking, off the runtime's threads); their sizes and the time taken.
async fn read_pictures(
    mut client: Box<dyn Source>,
    n: usize,
) -> (Box<dyn Source>, Vec<(u32, u32)>, Duration) {
    tokio::task::spawn_blocking(move || {
        let mut sizes = Vec::new();
        let mut started = None;
        while sizes.len() < n {
            let frame = client.next_frame().expect("a picture");
            // Timed from the first picture: the stream's rate, not its start.
            started.get_or_insert_with(Instant::now);
            match frame.payload {
                Payload::Raw(f) => sizes.push((f.width, f.height)),
                Payload::H264(_) => panic!("MJPEG gave H.264"),
            }
        }
        (client, sizes, started.unwrap().elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_streams_snapshots_at_the_asked_rate_until_the_camera_or_server_goes() {
    let server = TestServer::start().await.unwrap();
    let mut config = server.publisher_config(CAMERA);
    (config.width, config.height) = (640, 360);
    let camera = server.start_publisher(config).await.unwrap();
    wait_for_snapshots(&server, CAMERA).await;

    for (query, status) in [("?fps=0", 400), ("?fps=6", 400), ("?width=3", 400)] {
        let r = get(&server, &format!("/api/cameras/{CAMERA}/mjpeg{query}"), &[]).await;
        assert_eq!(r.status, status, "{query}: {}", r.body);
    }
    let r = get(&server, "/api/cameras/nobody/mjpeg", &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);

    let path = format!("/api/cameras/{CAMERA}/mjpeg?fps=5&width=320");
    let (client, sizes, took) = read_pictures(mjpeg_client(&server, &path), 6).await;
    assert!(sizes.iter().all(|s| *s == (320, 180)), "{sizes:?}");
    // Five intervals of 200 ms after the first picture.
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "6 pictures at 5 fps took {took:?}"
    );
    println!("mjpeg: 6 pictures at ?fps=5 in {took:?}");

    // The camera leaves: the stream ends (the client sees the connection close).
    camera.stop().await;
    let ended = tokio::task::spawn_blocking(move || {
        let mut client = client;
        (0..20).find_map(|_| client.next_frame().err())
    });
    let ended = tokio::time::timeout(Duration::from_secs(15), ended).await;
    assert!(
        matches!(ended, Ok(Ok(Some(_)))),
        "the stream went on: {ended:?}"
    );

    // A stream still open does not hold up the server's shutdown.
    let _again = server.start_camera("cam-second").await.unwrap();
    wait_for_snapshots(&server, "cam-second").await;
    let path = "/api/cameras/cam-second/mjpeg?fps=5";
    let _open = read_pictures(mjpeg_client(&server, path), 1).await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown waited on an MJPEG stream");
}
