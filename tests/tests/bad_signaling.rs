//! Whatever a client sends, the server answers with a precise error, keeps the session
//! open, and leaves everyone else alone. No WebRTC here: raw WebSocket messages only.

use std::time::Duration;

use sightline_protocol::wire::{MediaPath, MAX_MESSAGE_BYTES};
use sightline_protocol::{ClientMessage, ErrorCode, ServerMessage};
use sightline_tests::{SignalClient, TestServer};

const T: Duration = Duration::from_secs(5);

async fn client(server: &TestServer) -> SignalClient {
    SignalClient::connect_hello(&server.ws_url(), T)
        .await
        .unwrap()
        .0
}

/// Read until an `error` arrives (broadcasts may come first) and return its code.
async fn error_code(c: &mut SignalClient) -> ErrorCode {
    c.recv_until(T, |m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await
    .unwrap()
}

/// The session still answers `list`.
async fn still_works(c: &mut SignalClient) {
    c.send(&ClientMessage::List).await.unwrap();
    c.recv_until(T, |m| {
        matches!(m, ServerMessage::Cameras { .. }).then_some(())
    })
    .await
    .expect("the session still answers list");
}

async fn sends_error(c: &mut SignalClient, text: impl Into<String>, expected: ErrorCode) {
    let text = text.into();
    let shown: String = text.chars().take(80).collect();
    c.send_text(text).await.unwrap();
    assert_eq!(error_code(c).await, expected, "for {shown}");
    still_works(c).await;
}

/// A publisher session that registered `camera_id` (no media needed).
async fn register(server: &TestServer, camera_id: &str) -> SignalClient {
    SignalClient::register_camera(&server.ws_url(), camera_id, T)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_precise_errors_and_the_session_lives_on() {
    let server = TestServer::start().await.unwrap();
    let mut bystander = client(&server).await;
    let mut c = client(&server).await;

    sends_error(&mut c, "{not json", ErrorCode::BadMessage).await;
    sends_error(&mut c, "[1,2,3]", ErrorCode::BadMessage).await;
    sends_error(&mut c, r#"{"camera_id":"x"}"#, ErrorCode::BadMessage).await;
    sends_error(&mut c, r#"{"type":"subscribe"}"#, ErrorCode::BadMessage).await;
    sends_error(&mut c, r#"{"type":"dance"}"#, ErrorCode::UnknownType).await;
    sends_error(
        &mut c,
        r#"{"type":"subscribe","camera_id":"../etc/passwd"}"#,
        ErrorCode::InvalidField,
    )
    .await;
    sends_error(
        &mut c,
        r#"{"type":"register","camera_id":"c","name":"n","width":0,"height":240,"fps":30}"#,
        ErrorCode::InvalidField,
    )
    .await;
    let huge = format!(
        r#"{{"type":"offer","sdp":"{}"}}"#,
        "v".repeat(MAX_MESSAGE_BYTES + 1)
    );
    sends_error(&mut c, huge, ErrorCode::TooLarge).await;

    // The bystander saw none of it.
    still_works(&mut bystander).await;
    assert!(
        bystander
            .recv_timeout(Duration::from_millis(300))
            .await
            .is_err(),
        "nothing else arrives for an uninvolved session"
    );
    server.stats().await.expect("the server still serves HTTP");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_and_unknown_requests_are_refused() {
    let server = TestServer::start().await.unwrap();
    let mut c = client(&server).await;

    // Offers and candidates need a role first.
    sends_error(
        &mut c,
        r#"{"type":"offer","sdp":"v=0\r\n"}"#,
        ErrorCode::WrongState,
    )
    .await;
    // A camera nobody ever registered.
    sends_error(
        &mut c,
        r#"{"type":"subscribe","camera_id":"no-such-camera"}"#,
        ErrorCode::UnknownCamera,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_unusable_sdp_is_refused() {
    let server = TestServer::start().await.unwrap();
    let _publisher = register(&server, "cam-sdp").await;
    let mut viewer = client(&server).await;
    viewer
        .send(&ClientMessage::Subscribe {
            camera_id: "cam-sdp".into(),
            path: MediaPath::Server,
        })
        .await
        .unwrap();
    viewer
        .recv_until(T, |m| {
            matches!(m, ServerMessage::Subscribed { .. }).then_some(())
        })
        .await
        .unwrap();

    for sdp in [
        "this is not sdp",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    ] {
        let text = ClientMessage::Offer { sdp: sdp.into() }.to_json();
        sends_error(&mut viewer, text, ErrorCode::InvalidSdp).await;
    }
    sends_error(
        &mut viewer,
        r#"{"type":"offer","sdp":"   "}"#,
        ErrorCode::InvalidSdp,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_cannot_take_a_live_camera() {
    let server = TestServer::start().await.unwrap();
    let mut first = register(&server, "cam-taken").await;
    let mut second = client(&server).await;
    let text = ClientMessage::Register {
        camera_id: "cam-taken".into(),
        name: "impostor".into(),
        width: 320,
        height: 240,
        fps: 30,
        p2p_max: 0,
    }
    .to_json();
    sends_error(&mut second, text, ErrorCode::CameraAlreadyLive).await;

    // The first publisher still owns it.
    still_works(&mut first).await;
    let cams = server.cameras().await.unwrap();
    let cam = cams.iter().find(|c| c.id == "cam-taken").unwrap();
    assert_eq!(cam.name, "cam-taken");
    server.shutdown().await;
}

/// An offer str0m panics on (two video m-lines giving payload type 102 different
/// parameters; found by fuzzing) gets its sender `invalid_sdp`, and the SFU's media loop
/// goes on: a viewer of another camera keeps getting frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_panics_str0m_is_refused_and_video_goes_on() {
    use sightline_tests::{HeadlessViewer, ViewerConfig};
    use str0m::media::{Direction, MediaKind};

    let server = TestServer::start().await.unwrap();
    let _camera = server.start_camera("cam-good").await.unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), "cam-good"))
        .await
        .unwrap();
    viewer.next_frame(T).await.unwrap();

    let mut rtc = {
        let mut config = str0m::Rtc::builder().clear_codecs();
        config
            .codec_config()
            .add_h264(102.into(), Some(103.into()), true, 0x42e01f);
        config.build(std::time::Instant::now())
    };
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let sdp = api.apply().unwrap().0.to_sdp_string().replacen(
        "profile-level-id=42e01f",
        "profile-level-id=42e0!f",
        1,
    );
    let mut evil = register(&server, "cam-evil").await;
    let text = ClientMessage::Offer { sdp }.to_json();
    sends_error(&mut evil, text, ErrorCode::InvalidSdp).await;

    for _ in 0..30 {
        viewer.next_frame(T).await.unwrap();
    }
    viewer.close().await;
    server.shutdown().await;
}
