//! Shared steps of the camera-control tests: a viewer with a control channel, commands that
//! must succeed, and waiting for frames of a given size.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use sightline_protocol::control::{ControlErrorCode, Response};
use sightline_tests::{DecodedFrame, HeadlessViewer, TestServer, ViewerConfig};

/// Longest wait for a reply, a broadcast or the first frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A viewer of `camera` with a control channel (and `token`, if given), once the SFU has
/// welcomed it and the publisher's state reached it (its control channel is up).
pub async fn control_viewer(
    server: &TestServer,
    camera: &str,
    token: Option<String>,
) -> HeadlessViewer {
    let mut config = ViewerConfig::new(server.ws_url(), camera);
    config.control = true;
    config.token = token;
    let viewer = HeadlessViewer::connect(config).await.unwrap();
    viewer.wait_welcome(WAIT).await.unwrap();
    viewer
        .control()
        .wait_state(WAIT, "the publisher's first state", |_| true)
        .await
        .unwrap();
    viewer
}

/// Send `command`; it must succeed.
pub async fn ok(viewer: &HeadlessViewer, command: Value) -> Response {
    let r = viewer
        .control_request(command.clone(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e:#}"));
    assert!(r.success, "{command} was refused: {r:?}");
    assert!(r.error.is_none(), "{r:?}");
    r
}

/// `update_settings` with `settings`; it must succeed.
pub async fn set(viewer: &HeadlessViewer, settings: Value) -> Response {
    ok(
        viewer,
        json!({"type": "update_settings", "settings": settings}),
    )
    .await
}

/// `get_status`, retried while the camera's publisher is away (`unavailable`: restarting,
/// or its control channel not open yet), until `timeout`.
pub async fn status_when_available(viewer: &HeadlessViewer, timeout: Duration) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = viewer
            .control_request(json!({"type": "get_status"}), WAIT)
            .await
            .unwrap();
        if r.success {
            return r;
        }
        let code = r.error.as_ref().map(|e| e.code);
        assert_eq!(code, Some(ControlErrorCode::Unavailable), "{r:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "publisher's control channel still unavailable after {timeout:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Read frames until `n` in a row are `width`×`height` with readable barcodes; returns them.
pub async fn frames_of_size(
    viewer: &mut HeadlessViewer,
    (width, height): (u32, u32),
    n: usize,
    timeout: Duration,
) -> Vec<DecodedFrame> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut run = Vec::new();
    while run.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = viewer.next_frame(left).await.unwrap_or_else(|e| {
            panic!(
                "waiting for {n} frames of {width}x{height} (have {}): {e:#}",
                run.len()
            )
        });
        if (f.width, f.height) == (width, height) && f.stamp.is_some() {
            run.push(f);
        } else {
            run.clear();
        }
    }
    run
}

/// Median interval between the capture times of consecutive frames, in ms.
pub fn median_capture_interval_ms(frames: &[DecodedFrame]) -> f64 {
    let mut d: Vec<f64> = frames
        .windows(2)
        .filter_map(|p| {
            let (a, b) = (p[0].stamp?, p[1].stamp?);
            Some(b.capture_us.saturating_sub(a.capture_us) as f64 / 1000.0)
        })
        .collect();
    assert!(!d.is_empty(), "need two stamped frames");
    d.sort_by(|a, b| a.total_cmp(b));
    d[d.len() / 2]
}
