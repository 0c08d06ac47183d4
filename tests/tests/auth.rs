//! Tokens end to end, through the real server: every kind of bad token gets its own
//! refusal, a camera cannot be hijacked (live or offline) but its owner reconnecting takes it
//! over, lists and events show only the token's cameras, repeated failures are refused for
//! a while without ever blocking a valid token, and the REST door controls a live camera.
//! No WebRTC is needed for the refusals: raw signaling and raw HTTP.

mod control_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use control_support::{control_viewer, WAIT};
use serde_json::json;
use sightline_protocol::wire::MediaPath;
use sightline_protocol::{ClientMessage, ErrorCode, ServerMessage};
use sightline_signaling::auth::{Claims, Role, Scope};
use sightline_tests::harness::{loopback_server_config, test_token_keys, with_tokens};
use sightline_tests::raw_http::{self, RawResponse};
use sightline_tests::{SignalClient, TestServer};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

async fn token_server() -> TestServer {
    TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap()
}

fn token(role: Role, cameras: &[&str], sub: &str) -> String {
    let ids: Vec<String> = cameras.iter().map(|c| c.to_string()).collect();
    test_token_keys().issue_for(
        role,
        Scope::from_ids(&ids).unwrap(),
        Duration::from_secs(600),
        Some(sub.into()),
    )
}

fn url(server: &TestServer, token: &str) -> String {
    format!("{}?token={token}", server.ws_url())
}

/// Connect with `token`; the server must refuse it with `code`, a message containing
/// `reason`, and close.
async fn refused_at_connect(
    server: &TestServer,
    token: Option<&str>,
    code: ErrorCode,
    reason: &str,
) {
    let u = token.map_or(server.ws_url(), |t| url(server, t));
    let mut c = SignalClient::connect(&u).await.unwrap();
    match c.recv_timeout(T).await.unwrap() {
        ServerMessage::Error { code: got, message } => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(reason), "{reason:?} not in {message:?}");
            if let Some(t) = token {
                assert!(!message.contains(t), "the refusal repeats the token");
            }
        }
        other => panic!("{token:?}: expected a refusal, got {other:?}"),
    }
    assert!(
        c.recv_timeout(T).await.is_err(),
        "the socket closes after a refusal"
    );
}

async fn client(server: &TestServer, token: &str) -> SignalClient {
    SignalClient::connect_hello(&url(server, token), T)
        .await
        .unwrap()
        .0
}

fn register(camera: &str) -> ClientMessage {
    ClientMessage::Register {
        camera_id: camera.into(),
        name: camera.into(),
        width: 320,
        height: 240,
        fps: 15,
        p2p_max: 0,
    }
}

/// The reply to what was just sent: `Ok` for the expected success, `Err(code, message)`.
async fn outcome(c: &mut SignalClient) -> Result<ServerMessage, (ErrorCode, String)> {
    c.recv_until(T, |m| match m {
        ServerMessage::Error { code, message } => Some(Err((*code, message.clone()))),
        ServerMessage::Registered { .. }
        | ServerMessage::Subscribed { .. }
        | ServerMessage::Cameras { .. } => Some(Ok(m.clone())),
        _ => None,
    })
    .await
    .unwrap()
}

async fn http(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> RawResponse {
    server.request(method, path, token, body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_token_gets_its_own_refusal() {
    let server = token_server().await;
    let keys = test_token_keys();
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let good = token(Role::View, &["cam"], "viewer");
    let claims = good.split('.').nth(1).unwrap().to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = keys.issue(&Claims {
        role: Role::View,
        cameras: Scope::All,
        exp: now - 10,
        sub: None,
    });
    let forged = sightline_signaling::auth::TokenKeys::new(b"somebody else's secret, long")
        .unwrap()
        .issue_for(Role::Control, Scope::All, Duration::from_secs(60), None);
    let unsigned = format!("{}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    let cases: [(Option<&str>, &str); 6] = [
        (None, "needs a token"),
        (Some("not-a-token"), "malformed token"),
        (Some(&expired), "token expired"),
        (Some(&forged), "wrong signature"),
        (Some(&unsigned), "`alg: none`"),
        (
            Some(&format!("{}.{claims}.c2ln", b64(r#"{"alg":"HS512"}"#))),
            "algorithm HS512",
        ),
    ];
    for (t, reason) in cases {
        refused_at_connect(&server, t, ErrorCode::Unauthorized, reason).await;
    }

    // A valid token is let in; what it may do is checked per action, and the session stays.
    let _publisher = server.start_camera("cam").await.unwrap();
    let mut viewer = client(&server, &good).await;
    viewer.send(&register("cam")).await.unwrap();
    let (code, message) = outcome(&mut viewer).await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.contains("role is `view`"), "{message}");
    viewer
        .send(&ClientMessage::Subscribe {
            camera_id: "other".into(),
            path: MediaPath::Server,
        })
        .await
        .unwrap();
    let (code, message) = outcome(&mut viewer).await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(
        message.contains("does not cover camera `other`"),
        "{message}"
    );
    viewer
        .send(&ClientMessage::Subscribe {
            camera_id: "cam".into(),
            path: MediaPath::Server,
        })
        .await
        .unwrap();
    assert!(matches!(
        outcome(&mut viewer).await,
        Ok(ServerMessage::Subscribed { .. })
    ));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_cannot_be_hijacked_but_their_owner_takes_them_over() {
    let server = token_server().await;
    let owner = token(Role::Publish, &["cam", "spare"], "front-door");
    let mut first = client(&server, &owner).await;
    first.send(&register("cam")).await.unwrap();
    assert!(outcome(&mut first).await.is_ok());

    // A live camera, with a publish token for it but another subject: refused.
    let mut mallory = client(&server, &token(Role::Publish, &["cam"], "mallory")).await;
    mallory.send(&register("cam")).await.unwrap();
    let (code, message) = outcome(&mut mallory).await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
    assert!(message.contains("live from another publisher"), "{message}");

    // An offline camera outside the token's scope: refused too.
    let mut spare = client(&server, &owner).await;
    spare.send(&register("spare")).await.unwrap();
    assert!(outcome(&mut spare).await.is_ok());
    drop(spare);
    server.wait_camera_offline("spare", T).await.unwrap();
    let mut thief = client(&server, &token(Role::Publish, &["other"], "mallory")).await;
    thief.send(&register("spare")).await.unwrap();
    let (code, message) = outcome(&mut thief).await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
    assert!(
        message.contains("does not cover camera `spare`"),
        "{message}"
    );
    assert_eq!(
        server
            .cameras()
            .await
            .unwrap()
            .iter()
            .find(|c| c.id == "spare")
            .unwrap()
            .state,
        sightline_protocol::CameraState::Offline
    );

    // The owner reconnecting (its old session not yet timed out) takes "cam" over at once,
    // and the old session is told and closed.
    let mut second = client(&server, &owner).await;
    second.send(&register("cam")).await.unwrap();
    assert!(matches!(
        outcome(&mut second).await,
        Ok(ServerMessage::Registered { .. })
    ));
    let (code, message) = outcome(&mut first).await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.contains("taken over"), "{message}");
    assert!(first.recv_timeout(T).await.is_err(), "the old session ends");
    // The camera stayed online through the takeover and after the old session's end.
    let cam = server.wait_camera_online("cam", T).await.unwrap();
    assert_eq!(cam.state, sightline_protocol::CameraState::Online);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_events_and_the_api_show_only_the_tokens_cameras() {
    let server = token_server().await;
    let publisher = token(Role::Publish, &["*"], "nvr");
    let mut a = client(&server, &publisher).await;
    a.send(&register("yard")).await.unwrap();
    assert!(outcome(&mut a).await.is_ok());

    let only_yard = token(Role::View, &["yard"], "neighbour");
    let mut viewer = client(&server, &only_yard).await;
    viewer.send(&ClientMessage::List).await.unwrap();
    let Ok(ServerMessage::Cameras { cameras }) = outcome(&mut viewer).await else {
        panic!("no camera list");
    };
    assert_eq!(
        cameras.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["yard"]
    );

    // A camera it does not cover comes online: no event. Then one it covers goes offline.
    let mut b = client(&server, &publisher).await;
    b.send(&register("bedroom")).await.unwrap();
    assert!(outcome(&mut b).await.is_ok());
    drop(a);
    let event = viewer
        .recv_until(T, |m| match m {
            ServerMessage::CameraOnline { camera } => Some(camera.id.clone()),
            ServerMessage::CameraOffline { camera_id } => Some(camera_id.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(
        event, "yard",
        "the bedroom camera's event must not reach this viewer"
    );

    let r = http(&server, "GET", "/api/cameras", Some(&only_yard), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let ids: Vec<String> = r
        .json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["yard"]);
    let r = http(&server, "GET", "/api/cameras", None, "").await;
    assert_eq!(
        (r.status, r.json().unwrap()["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let r = http(&server, "GET", "/api/stats", Some(&only_yard), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body.contains(&only_yard));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_refused_for_a_while_but_a_valid_token_never_is() {
    let server = token_server().await;
    for i in 0..20 {
        let r = http(&server, "GET", "/api/cameras", Some("guess"), "").await;
        assert_eq!(r.status, 401, "attempt {i}: {r:?}");
    }
    let r = http(&server, "GET", "/api/cameras", Some("guess"), "").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json().unwrap()["code"], "rate_limited");
    // The WebSocket door is shut too, before any upgrade.
    let e = SignalClient::connect(&url(&server, "guess"))
        .await
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("429"), "{e:#}");
    // A valid token from the same address goes through.
    let good = token(Role::View, &["*"], "family");
    assert_eq!(
        http(&server, "GET", "/api/cameras", Some(&good), "")
            .await
            .status,
        200
    );
    let _ = client(&server, &good).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_door_controls_a_live_camera_and_refuses_clearly() {
    const CAMERA: &str = "cam-rest";
    let server = token_server().await;
    let publisher = server.start_camera(CAMERA).await.unwrap();
    let watcher = control_viewer(&server, CAMERA, server.token(Role::View, CAMERA)).await;
    let control = token(Role::Control, &[CAMERA], "home-assistant");
    let path = format!("/api/cameras/{CAMERA}/control");
    let command = json!({"v": 1, "type": "update_settings", "request_id": "ha-1",
                         "settings": {"bitrate": 600_000}})
    .to_string();

    let r = http(&server, "POST", &path, Some(&control), &command).await;
    assert_eq!(r.status, 200, "{r:?}");
    let answer = r.json().unwrap();
    assert_eq!(
        (answer["success"].as_bool(), answer["request_id"].as_str()),
        (Some(true), Some("ha-1"))
    );
    assert_eq!(answer["settings"]["bitrate"], 600_000);
    // The data channel viewer sees the new state.
    watcher
        .control()
        .wait_state(WAIT, "bitrate 600000", |s| {
            s.settings.bitrate == Some(600_000)
        })
        .await
        .unwrap();

    let status = http(
        &server,
        "GET",
        &format!("/api/cameras/{CAMERA}/status"),
        Some(&control),
        "",
    )
    .await;
    assert_eq!(status.status, 200, "{status:?}");
    assert_eq!(status.json().unwrap()["settings"]["bitrate"], 600_000);

    // Refusals: each with its status and a body that says why.
    let view = token(Role::View, &[CAMERA], "viewer");
    let bad_value = json!({"v": 1, "type": "update_settings", "request_id": "x",
                           "settings": {"bitrate": 1}})
    .to_string();
    let cases = [
        (None, path.clone(), command.clone(), 401, "unauthorized"),
        (
            Some(view.as_str()),
            path.clone(),
            command.clone(),
            403,
            "forbidden",
        ),
        (
            Some(control.as_str()),
            "/api/cameras/nope/control".to_string(),
            command.clone(),
            403,
            "forbidden",
        ),
        (
            Some(control.as_str()),
            path.clone(),
            "{oops".to_string(),
            400,
            "bad_message",
        ),
        (
            Some(control.as_str()),
            path.clone(),
            bad_value,
            400,
            "invalid_value",
        ),
    ];
    for (t, p, body, status, code) in cases {
        let r = http(&server, "POST", &p, t, &body).await;
        assert_eq!(r.status, status, "{p} {body}: {r:?}");
        let v = r.json().unwrap();
        let got = v["error"]["code"].as_str().or(v["code"].as_str());
        assert_eq!(got, Some(code), "{r:?}");
    }
    let all = token(Role::Control, &["*"], "admin");
    let r = http(
        &server,
        "POST",
        "/api/cameras/nope/control",
        Some(&all),
        &command,
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");

    publisher.stop().await;
    server.wait_camera_offline(CAMERA, T).await.unwrap();
    let r = http(&server, "POST", &path, Some(&control), &command).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json().unwrap()["error"]["code"], "unavailable");
    watcher.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_lets_in_only_the_configured_origins() {
    let preflight = |origin: &'static str| {
        [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ]
    };
    let plain = TestServer::start().await.unwrap();
    let stream = TcpStream::connect(plain.http_addr()).await.unwrap();
    let r = raw_http::request(
        stream,
        "OPTIONS",
        "/api/cameras",
        &preflight("https://dash.example"),
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "none by default: {r:?}"
    );
    plain.shutdown().await;

    let mut config = with_tokens(loopback_server_config());
    config.cors_origins = vec!["https://dash.example".into()];
    let server = TestServer::start_with(config).await.unwrap();
    for (origin, allowed) in [
        ("https://dash.example", true),
        ("https://evil.example", false),
    ] {
        let stream = TcpStream::connect(server.http_addr()).await.unwrap();
        let r = raw_http::request(
            stream,
            "OPTIONS",
            "/api/cameras/x/control",
            &preflight(origin),
            "",
        )
        .await
        .unwrap();
        assert_eq!(
            r.header("access-control-allow-origin"),
            allowed.then_some(origin),
            "{origin}: {r:?}"
        );
        if allowed {
            let headers = r.header("access-control-allow-headers").unwrap_or_default();
            assert!(headers.contains("authorization"), "{r:?}");
        }
    }
    server.shutdown().await;
}
