//! `GET /metrics`, `/healthz` and `/readyz`: the exposition passes Prometheus's own checker
//! (`promtool check metrics`, Debian's `prometheus` package), its values move when viewers
//! come and go, and with tokens on it needs one unless the server runs `--metrics-open`.

use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use sightline_signaling::auth::Role;
use sightline_tests::harness::{loopback_server_config, wait_until, with_tokens};
use sightline_tests::raw_http::{request, RawResponse};
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};
use tokio::io::AsyncWriteExt;

const CAMERA: &str = "cam-metrics";

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    request(stream, "GET", path, headers, "").await.unwrap()
}

/// Scrape `/metrics` (with `token`) and have promtool check it; the text when it passes.
async fn scrape(server: &TestServer, token: Option<&str>) -> String {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<_> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let resp = get(server, "/metrics", &headers).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        resp.headers
    );
    promtool_check(&resp.body).await;
    resp.body
}

/// `promtool check metrics` on `text`: it parses the exposition and lints it (names, help
/// text, counters' `_total`, units).
async fn promtool_check(text: &str) {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup --test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}): {}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn cam(name: &str) -> String {
    format!("sightline_{name}{{camera=\"{CAMERA}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_move_when_viewers_come_and_go() {
    let server = TestServer::start().await.unwrap();
    assert_eq!(get(&server, "/healthz", &[]).await.status, 200);
    let ready = get(&server, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{ready:?}");

    let _publisher = server.start_camera(CAMERA).await.unwrap();
    let before = scrape(&server, None).await;
    assert_eq!(value(&before, &cam("camera_publisher_up")), 1.0);
    assert_eq!(
        value(&before, "sightline_time_to_first_frame_seconds_count"),
        0.0
    );

    let viewers = join_all((0..2).map(|_| {
        let mut config = ViewerConfig::new(server.ws_url(), CAMERA);
        config.decode = false;
        HeadlessViewer::connect(config)
    }))
    .await;
    let mut viewers: Vec<_> = viewers.into_iter().map(Result::unwrap).collect();
    for v in &mut viewers {
        for _ in 0..10 {
            v.next_frame(Duration::from_secs(20)).await.unwrap();
        }
    }
    let status = get(&server, &format!("/api/cameras/{CAMERA}/status"), &[]).await;
    assert_eq!(status.status, 200, "{status:?}");
    let watching = scrape(&server, None).await;
    assert_eq!(
        value(
            &watching,
            "sightline_control_commands_total{command=\"get_status\",result=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(value(&watching, &cam("camera_viewers")), 2.0);
    assert_eq!(value(&watching, "sightline_sfu_viewers"), 2.0);
    assert_eq!(
        value(&watching, "sightline_time_to_first_frame_seconds_count"),
        2.0
    );
    assert!(value(&watching, &cam("camera_frames_forwarded_total")) >= 20.0);
    assert!(value(&watching, &cam("camera_keyframes_forwarded_total")) >= 2.0);
    assert!(value(&watching, &cam("camera_ingest_frames_total")) >= 10.0);
    assert!(
        value(&watching, &cam("camera_bytes_sent_total"))
            > value(&watching, &cam("camera_packets_sent_total")) * 12.0,
        "bytes include every packet's header"
    );
    assert!(value(&watching, "sightline_signaling_sessions") >= 3.0);
    assert!(value(&watching, "sightline_process_resident_memory_bytes") > 1e6);
    assert!(value(&watching, "sightline_process_cpu_seconds_total") > 0.0);

    // Prometheus itself asks for OpenMetrics.
    let om = get(
        &server,
        "/metrics",
        &[("Accept", "application/openmetrics-text")],
    )
    .await;
    assert!(
        om.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{om:?}"
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);

    let sent = value(&watching, &cam("camera_packets_sent_total"));
    join_all(viewers.into_iter().map(|v| v.close())).await;
    let left = wait_until(Duration::from_secs(15), "viewers gone", async || {
        let text = scrape(&server, None).await;
        (value(&text, &cam("camera_viewers")) == 0.0).then_some(text)
    })
    .await
    .unwrap();
    assert!(
        value(&left, &cam("camera_packets_sent_total")) >= sent,
        "a counter never goes back when viewers leave"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_metrics_need_one_unless_open() {
    let server = TestServer::start_with(with_tokens(loopback_server_config()))
        .await
        .unwrap();
    let refused = get(&server, "/metrics", &[]).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(get(&server, "/healthz", &[]).await.status, 200, "no token");
    assert_eq!(get(&server, "/readyz", &[]).await.status, 200, "no token");
    let view = server.token(Role::View, CAMERA).unwrap();
    let text = scrape(&server, Some(&view)).await;
    assert!(
        value(
            &text,
            "sightline_auth_refusals_total{code=\"unauthorized\"}"
        ) >= 1.0,
        "the refusal above is counted"
    );
    server.shutdown().await;

    let mut config = with_tokens(loopback_server_config());
    config.metrics_open = true;
    let open = TestServer::start_with(config).await.unwrap();
    scrape(&open, None).await;
    assert_eq!(
        get(&open, "/api/stats", &[]).await.status,
        401,
        "only /metrics"
    );
    open.shutdown().await;
}
