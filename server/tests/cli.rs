//! The `sightline` binary as a user runs it: secure by default (a public address without
//! authentication is refused, naming the way out), `--insecure` as the explicit opt-out,
//! `sightline token` printing a token alone, and `--demo` with tokens and TLS on.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sightline_signaling::auth::{Role, TokenKeys};
use sightline_tests::pki::TestPki;
use sightline_tests::temp::TempPath;

const BIN: &str = env!("CARGO_BIN_EXE_sightline");
const SECRET: &[u8] = b"the cli test secret, 32 bytes...";

fn sightline(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("SIGHTLINE_AUTH_SECRET_FILE")
        .env("RUST_LOG", "warn");
    c
}

/// Start the server and wait for the line saying where to open it. Its output (the log
/// included) is kept.
struct Running {
    child: Child,
    url: String,
    output: Arc<Mutex<String>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Self::start_with_log(args, "warn")
    }

    /// Start with `RUST_LOG=level`.
    fn start_with_log(args: &[&str], level: &str) -> Running {
        let mut child = sightline(args)
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = |pipe: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<String>| {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(rest) = line.trim().strip_prefix("Sightline is running. Open ") {
                        let _ = tx.send(rest.trim_end_matches(" in a browser.").to_owned());
                    }
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        };
        keep(Box::new(child.stdout.take().unwrap()), tx.clone());
        keep(Box::new(child.stderr.take().unwrap()), tx);
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server printed its URL");
        Running { child, url, output }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTPS (trusting `pki`, as `localhost`) with a bearer token.
async fn https_get(
    addr: &str,
    pki: &TestPki,
    path: &str,
    token: &str,
) -> sightline_tests::raw_http::RawResponse {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let auth = format!("Bearer {token}");
    sightline_tests::raw_http::request(tls, "GET", path, &[("Authorization", &auth)], "")
        .await
        .unwrap()
}

#[test]
fn a_public_address_without_authentication_is_refused() {
    let out = sightline(&["--http", "0.0.0.0:0", "--udp-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--auth-secret-file") && err.contains("--insecure"),
        "{err}"
    );
    // Explicitly insecure, it starts.
    let running = Running::start(&["--http", "0.0.0.0:0", "--udp-port", "0", "--insecure"]);
    assert!(
        running.url.starts_with("http://127.0.0.1:"),
        "{}",
        running.url
    );
}

#[test]
fn bad_turn_options_are_explained_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("sightline-cli-turn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.secret");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    let good = dir.join("good.secret");
    std::fs::write(&good, "a-turn-secret-of-some-length\n").unwrap();
    let good = good.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--turn-url", "turn:t.example:3478"],
            "--turn-secret-file",
        ),
        (
            vec!["--turn-url", "http://t.example", "--turn-secret-file", good],
            "turn: or turns:",
        ),
        (vec!["--stun-url", "turn:t.example"], "stun:"),
        (
            vec![
                "--turn-url",
                "turn:t.example:3478",
                "--turn-secret-file",
                empty,
            ],
            "is empty",
        ),
        (
            vec![
                "--turn-url",
                "turn:t.example:3478",
                "--turn-secret-file",
                "/no/such/file",
            ],
            "--turn-secret-file",
        ),
        (vec!["--turn-ttl", "soon"], "--turn-ttl"),
    ] {
        let mut all = vec!["--http", "127.0.0.1:0", "--udp-port", "0"];
        all.extend(args.iter().copied());
        let out = sightline(&all).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_prints_a_token_alone_and_refuses_bad_input() {
    let secret = TempPath::file("secret", SECRET).unwrap();
    let file = secret.path().to_str().unwrap();
    let out = sightline(&[
        "token",
        "--secret-file",
        file,
        "--role",
        "control",
        "--camera",
        "a,b",
        "--ttl",
        "1h",
        "--name",
        "kiosk",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let claims = TokenKeys::new(SECRET)
        .unwrap()
        .verify(stdout.trim())
        .unwrap();
    assert_eq!(claims.role, Role::Control);
    assert!(claims.cameras.contains("b") && !claims.cameras.contains("c"));
    assert_eq!(claims.sub.as_deref(), Some("kiosk"));
    assert_eq!(stdout.lines().count(), 1, "the token alone: {stdout:?}");

    let short = TempPath::file("short-secret", b"short").unwrap();
    for (args, why) in [
        (vec!["--role", "admin", "--camera", "a"], "unknown role"),
        (
            vec!["--role", "view", "--camera", "a", "--ttl", "5y"],
            "bad duration",
        ),
        (vec!["--role", "view", "--camera", "bad id"], "camera"),
    ] {
        let mut all = vec!["token", "--secret-file", file];
        all.extend(args);
        let out = sightline(&all).output().unwrap();
        assert!(!out.status.success(), "{all:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{all:?}: {out:?}"
        );
    }
    let out = sightline(&[
        "token",
        "--secret-file",
        short.path().to_str().unwrap(),
        "--role",
        "view",
        "--camera",
        "a",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_with_tokens_and_tls() {
    let secret = TempPath::file("secret", SECRET).unwrap();
    let pki = TestPki::new("CLI test CA", &["localhost", "127.0.0.1"]).unwrap();
    let (cert, key) = (pki.cert_path(), pki.key_path());
    let mut running = Running::start_with_log(
        &[
            "--http",
            "127.0.0.1:0",
            "--udp-port",
            "0",
            "--media-ip",
            "127.0.0.1",
            "--auth-secret-file",
            secret.path().to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--demo",
            "--demo-width",
            "320",
            "--demo-height",
            "240",
        ],
        "debug",
    );
    // The page URL carries a control token for the demo camera.
    let (base, token) = running
        .url
        .split_once("/?token=")
        .expect("a token in the URL");
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let claims = TokenKeys::new(SECRET).unwrap().verify(token).unwrap();
    assert_eq!(claims.role, Role::Control);

    // The built-in camera got its own credential and is online, over HTTPS.
    let addr = base.trim_start_matches("https://").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = https_get(&addr, &pki, "/api/cameras", token).await;
        assert_eq!(r.status, 200, "{r:?}");
        if r.json().unwrap()[0]["state"] == "online" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo camera never came online: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A refused attempt is logged with its reason, and no log line holds a token or the
    // secret (the demo's own tokens and a wrong one).
    let wrong = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoidmlldyJ9.c2VjcmV0LWd1ZXNz";
    let r = https_get(&addr, &pki, "/api/stats", wrong).await;
    assert_eq!(r.status, 401, "{r:?}");
    let _ = running.child.kill();
    let _ = running.child.wait();
    // The output readers finish once the process's pipes close.
    std::thread::sleep(Duration::from_millis(200));
    // The URL printed for the person who started the demo carries its token on purpose.
    let text: String = running
        .output
        .lock()
        .unwrap()
        .lines()
        .filter(|l| !l.contains("Sightline is running. Open"))
        .collect();
    assert!(text.contains("authentication refused"), "{text}");
    for secret in [token, wrong] {
        // A token's claims and signature (its header is the same for every token).
        for part in secret.split('.').skip(1).filter(|p| p.len() > 8) {
            assert!(!text.contains(part), "the log shows a token: {part}");
        }
    }
    assert!(
        !text.contains(std::str::from_utf8(SECRET).unwrap()),
        "the log shows the secret"
    );
}

/// ICE-TCP is on by default, on the UDP port's number; `--no-ice-tcp` turns it off, and
/// asking for both is an error.
#[test]
fn media_takes_tcp_on_the_udp_port_unless_turned_off() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_arg = port.to_string();
    let media = ["--media-ip", "127.0.0.1", "--udp-port", port_arg.as_str()];
    let mut args = vec!["--http", "127.0.0.1:0"];
    args.extend(media);
    let running = Running::start(&args);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "TCP on the media port"
    );
    drop(running);

    args.push("--no-ice-tcp");
    let running = Running::start(&args);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no TCP listener with --no-ice-tcp"
    );
    drop(running);

    args.extend(["--tcp-port", "9"]);
    let out = sightline(&args).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--no-ice-tcp") && err.contains("--tcp-port"),
        "{err}"
    );
}
