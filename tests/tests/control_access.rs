//! Who may control a camera and how much, through the real server, SFU and publisher:
//! view-only viewers are refused, bad values are refused naming the field (and change
//! nothing), the rate limit answers, and two controllers at once leave one state everyone sees.

mod control_support;

use std::collections::BTreeSet;
use std::time::Duration;

use control_support::{control_viewer, ok, set, WAIT};
use serde_json::json;
use sightline_protocol::control::{Capability, ControlErrorCode};
use sightline_sfu::RateLimit;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, with_tokens};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_token_is_refused_and_a_control_token_may_control() {
    const CAMERA: &str = "cam-keyed";
    let config = with_tokens(loopback_server_config());
    let server = TestServer::start_with(config).await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();

    let keyed = control_viewer(&server, CAMERA, server.token(Role::Control, CAMERA)).await;
    let plain = control_viewer(&server, CAMERA, server.token(Role::View, CAMERA)).await;
    assert!(keyed.control().welcome().unwrap().may_control);
    assert!(!plain.control().welcome().unwrap().may_control);

    let before = ok(&plain, json!({"type": "get_status"})).await;
    let r = plain
        .update_settings(json!({"fps": 10}), WAIT)
        .await
        .unwrap();
    assert!(!r.success, "{r:?}");
    let e = r.error.expect("a refusal carries its error");
    assert_eq!(e.code, ControlErrorCode::Forbidden, "{e:?}");
    assert!(r.message.contains("view-only"), "{}", r.message);
    for command in [
        "start_stream",
        "stop_stream",
        "restart_camera",
        "request_keyframe",
    ] {
        let r = plain
            .control_request(json!({ "type": command }), WAIT)
            .await
            .unwrap();
        assert_eq!(
            r.error.map(|e| e.code),
            Some(ControlErrorCode::Forbidden),
            "{command}"
        );
    }
    let after = ok(&plain, json!({"type": "get_status"})).await;
    assert_eq!(after.settings, before.settings, "nothing changed");

    let r = set(&keyed, json!({"fps": 10})).await;
    assert_eq!(r.settings.unwrap().fps, Some(10));

    // A token for another camera is refused at subscribe time, a forged one at connect.
    let mut wrong = ViewerConfig::new(server.ws_url(), CAMERA);
    (wrong.control, wrong.token) = (true, server.token(Role::Control, "elsewhere"));
    let e = HeadlessViewer::connect(wrong).await.err().expect("refused");
    assert!(format!("{e:#}").contains("forbidden"), "{e:#}");
    let mut forged = ViewerConfig::new(server.ws_url(), CAMERA);
    forged.token = Some("x.y.z".into());
    let e = HeadlessViewer::connect(forged)
        .await
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("malformed token"), "{e:#}");

    keyed.close().await;
    plain.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_naming_the_field_and_change_nothing() {
    const CAMERA: &str = "cam-ranges";
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let viewer = control_viewer(&server, CAMERA, None).await;
    let caps = viewer.control().wait_capabilities(WAIT).await.unwrap();
    let Some(&Capability::Int { min, max, .. }) = caps.get("bitrate") else {
        panic!("bitrate capability: {:?}", caps.get("bitrate"));
    };
    let Some(&Capability::Int { max: max_fps, .. }) = caps.get("fps") else {
        panic!("fps capability: {:?}", caps.get("fps"));
    };

    let before = ok(&viewer, json!({"type": "get_status"}))
        .await
        .settings
        .unwrap();
    let version_before = viewer.control().last_state().map(|s| s.version);
    let too_high = max + 1;
    let cases = [
        // field at fault, the update, what the message must mention
        (
            "bitrate",
            json!({ "bitrate": too_high }),
            vec![min.to_string(), max.to_string()],
        ),
        (
            "bitrate",
            json!({ "bitrate": min - 1 }),
            vec![min.to_string()],
        ),
        // All or nothing: a good fps beside a bad bitrate is not applied either.
        (
            "bitrate",
            json!({ "fps": 5, "bitrate": too_high }),
            vec![max.to_string()],
        ),
        (
            "fps",
            json!({ "fps": max_fps + 1 }),
            vec![max_fps.to_string()],
        ),
        ("fps", json!({ "fps": 0 }), vec![]),
        ("fps", json!({ "fps": "fast" }), vec![]),
        ("width", json!({ "width": 333, "height": 240 }), vec![]),
        ("brightness", json!({ "brightness": 100_000 }), vec![]),
        ("zoom", json!({ "zoom": 2 }), vec![]),
    ];
    for (field, update, mentions) in cases {
        let r = viewer.update_settings(update.clone(), WAIT).await.unwrap();
        assert!(!r.success, "{update} was accepted: {r:?}");
        let e = r.error.clone().unwrap();
        assert_eq!(e.field.as_deref(), Some(field), "{update}: {e:?}");
        let expected = if field == "zoom" {
            ControlErrorCode::UnknownSetting
        } else {
            ControlErrorCode::InvalidValue
        };
        assert_eq!(e.code, expected, "{update}: {e:?}");
        assert!(e.message.starts_with(field), "{update}: {}", e.message);
        for m in mentions {
            assert!(
                e.message.contains(&m),
                "{update}: `{}` lacks {m}",
                e.message
            );
        }
    }
    let after = ok(&viewer, json!({"type": "get_status"}))
        .await
        .settings
        .unwrap();
    assert_eq!(after, before, "refused updates changed nothing");
    assert_eq!(
        viewer.control().last_state().map(|s| s.version),
        version_before,
        "and broadcast no new state"
    );
    viewer.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_with_when_to_retry() {
    const CAMERA: &str = "cam-limited";
    const BURST: u32 = 4;
    let mut config = loopback_server_config();
    config.sfu.control_rate_limit = RateLimit {
        per_second: 2.0,
        burst: BURST,
    };
    let server = TestServer::start_with(config).await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let viewer = control_viewer(&server, CAMERA, None).await;
    assert_eq!(viewer.control().welcome().unwrap().rate_limit.burst, BURST);

    // Twelve at once: the burst goes through, the rest are refused.
    let replies = futures_util::future::join_all(
        (0..12).map(|_| viewer.control_request(json!({"type": "get_status"}), WAIT)),
    )
    .await;
    let mut accepted = 0;
    let mut retry_after = Vec::new();
    for r in replies {
        let r = r.unwrap();
        if r.success {
            accepted += 1;
            continue;
        }
        let e = r.error.unwrap();
        assert_eq!(e.code, ControlErrorCode::RateLimited, "{e:?}");
        retry_after.push(e.retry_after_ms.expect("rate_limited says when to retry"));
    }
    // A token may come back while the twelve are on their way.
    assert!(
        (BURST as usize..=BURST as usize + 1).contains(&accepted),
        "{accepted} accepted"
    );
    assert_eq!(accepted + retry_after.len(), 12);
    let wait = *retry_after.iter().max().unwrap();
    assert!((1..=1000).contains(&wait), "retry after {wait} ms at 2/s");

    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    ok(&viewer, json!({"type": "get_status"})).await;
    viewer.close().await;
    server.shutdown().await;
}

/// Send every (fps, bitrate) update at once and collect the responses.
async fn send_all(
    v: &HeadlessViewer,
    pairs: Vec<(u32, u64)>,
) -> Vec<anyhow::Result<sightline_protocol::control::Response>> {
    let futs = pairs
        .into_iter()
        .map(|(fps, bitrate)| v.update_settings(json!({"fps": fps, "bitrate": bitrate}), WAIT));
    futures_util::future::join_all(futs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_at_once_end_in_one_state_seen_by_all() {
    const CAMERA: &str = "cam-contended";
    let server = TestServer::start().await.unwrap();
    let _publisher = server.start_camera(CAMERA).await.unwrap();
    // Loopback viewers of a server without a key may all control.
    let a = control_viewer(&server, CAMERA, None).await;
    let b = control_viewer(&server, CAMERA, None).await;
    let watcher = control_viewer(&server, CAMERA, None).await;

    // Each update is an (fps, bitrate) pair no other update uses: the final state must be
    // exactly one of them, never a mix.
    let pairs_a: Vec<(u32, u64)> = (0..6)
        .map(|i| (10 + i, 300_000 + 10_000 * i as u64))
        .collect();
    let pairs_b: Vec<(u32, u64)> = (0..6)
        .map(|i| (20 + i, 600_000 + 10_000 * i as u64))
        .collect();
    let (ra, rb) = tokio::join!(send_all(&a, pairs_a.clone()), send_all(&b, pairs_b.clone()));
    for r in ra.into_iter().chain(rb) {
        let r = r.unwrap();
        assert!(r.success, "{r:?}");
    }

    let status = ok(&watcher, json!({"type": "get_status"})).await;
    let fin = status.settings.unwrap();
    let pair = (fin.fps.unwrap(), fin.bitrate.unwrap());
    assert!(
        pairs_a.contains(&pair) || pairs_b.contains(&pair),
        "the final state {pair:?} mixes two updates"
    );

    // Every viewer's last broadcast is that state, with one version.
    let mut versions = BTreeSet::new();
    for v in [&a, &b, &watcher] {
        let s = v
            .control()
            .wait_state(WAIT, "the final state", |s| s.settings == fin)
            .await
            .unwrap();
        versions.insert(s.version);
        let seen: Vec<u64> = v.control().states().iter().map(|s| s.version).collect();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "versions only grow: {seen:?}"
        );
    }
    assert_eq!(versions.len(), 1, "one version everywhere: {versions:?}");
    // Nothing is still on its way that would change it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for v in [&a, &b, &watcher] {
        assert_eq!(v.control().last_state().unwrap().settings, fin);
    }
    for v in [a, b, watcher] {
        v.close().await;
    }
    server.shutdown().await;
}
