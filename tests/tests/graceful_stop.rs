//! SIGTERM (what systemd and `docker stop` send) stops the real `sightline` binary
//! gracefully: every signaling session is told `server_stopping` before its socket closes,
//! the process exits 0 within seconds, and nothing panics on the way.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sightline_protocol::wire::ServerMessage;
use sightline_tests::child::{free_tcp_port, free_udp_port, workspace_binary, ChildGuard};
use sightline_tests::harness::{get_json, wait_until};
use sightline_tests::{HeadlessViewer, SignalClient, ViewerConfig, ViewerEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_every_session_server_stopping_then_exits_cleanly() {
    let (http, udp) = (free_tcp_port().unwrap(), free_udp_port().unwrap());
    let exe = workspace_binary("sightline").unwrap();
    let child = Command::new(&exe)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--udp-port", &udp.to_string(), "--media-ip", "127.0.0.1"])
        .args(["--demo", "--demo-width", "320", "--demo-height", "240"])
        .env("RUST_LOG", "info")
        // The log (stdout) is read after exit: a few dozen lines, well within a pipe.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = ChildGuard(child);
    let base = format!("http://127.0.0.1:{http}");
    wait_until(Duration::from_secs(20), "demo camera online", async || {
        let cams = get_json(format!("{base}/api/cameras")).await.ok()?;
        (cams.as_array()?.iter().any(|c| c["state"] == "online")).then_some(())
    })
    .await
    .unwrap();

    let ws = format!("ws://127.0.0.1:{http}/ws");
    let (mut session, _) = SignalClient::connect_hello(&ws, Duration::from_secs(5))
        .await
        .unwrap();
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(&ws, "demo"))
        .await
        .unwrap();
    viewer.next_frame(Duration::from_secs(20)).await.unwrap();

    let stopped = Instant::now();
    let pid = server.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    session
        .recv_until(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::ServerStopping).then_some(())
        })
        .await
        .expect("server_stopping before the socket closes");
    let lost = loop {
        match viewer.next_event(Duration::from_secs(10)).await.unwrap() {
            ViewerEvent::Disconnected { reason, .. } => break reason,
            _ => continue,
        }
    };
    println!("viewer: {lost}");

    let exit = wait_until(Duration::from_secs(15), "the server exits", async || {
        server.0.try_wait().ok().flatten()
    })
    .await
    .unwrap();
    println!("exited {exit} {:?} after SIGTERM", stopped.elapsed());
    let mut log = String::new();
    server
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(exit.success(), "exit status {exit}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("SIGTERM"),
        "the log says why it stopped:\n{log}"
    );
    viewer.close().await;
}
