//! Both binaries read their settings from a TOML file (`--config`), `SIGHTLINE_*` variables
//! and flags, each overriding the one before; `--print-config` shows what is in force with
//! secrets hidden, and a file listing two cameras makes one publisher process publish both.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sightline_tests::child::{free_tcp_port, free_udp_port, workspace_binary, ChildGuard};
use sightline_tests::harness::{get_json, wait_until, TestServer};
use sightline_tests::temp::TempPath;

/// A workspace binary to run, without the `SIGHTLINE_*` variables this process may have.
fn command(binary: &str) -> Command {
    let mut command = Command::new(workspace_binary(binary).unwrap());
    for (key, _) in std::env::vars() {
        if key.starts_with("SIGHTLINE_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Run a binary with `args` and `env` to its end.
fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(binary);
    command.args(args).envs(env.iter().copied());
    command.output().unwrap()
}

/// Start a binary with a config file of `text` (kept while it runs).
fn start_with_config(binary: &str, text: &str) -> (TempPath, ChildGuard) {
    let file = TempPath::file("config.toml", text.as_bytes()).unwrap();
    let mut command = command(binary);
    command
        .args(["--config", file.path().to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let child = ChildGuard(command.spawn().unwrap());
    (file, child)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A failure's stderr: the process exited with an error and did not panic.
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn server_settings_come_from_the_file_then_the_environment_then_flags() {
    let file = TempPath::file(
        "server.toml",
        br#"
udp-port = 9100
public-ip = "203.0.113.7"
turn-ttl = "2h"
cors-origins = ["https://dash.example.com"]
demo-fps = 12
"#,
    )
    .unwrap();
    let config = file.path().to_str().unwrap();
    let printed = |args: &[&str], env: &[(&str, &str)]| {
        let args = [&["--config", config, "--print-config"], args].concat();
        stdout(&run("sightline", &args, env))
    };

    let from_file = printed(&[], &[]);
    for line in [
        "udp-port = 9100",
        "public-ip = \"203.0.113.7\"",
        "turn-ttl = \"7200s\"",
        "cors-origins = [\"https://dash.example.com\"]",
        "demo-fps = 12",
        // Defaults fill in what the file leaves out.
        "http = \"127.0.0.1:8080\"",
        "demo-width = 1280",
    ] {
        assert!(from_file.contains(line), "{line} not in:\n{from_file}");
    }
    let env = [("SIGHTLINE_UDP_PORT", "9200"), ("SIGHTLINE_DEMO_FPS", "20")];
    let from_env = printed(&[], &env);
    assert!(from_env.contains("udp-port = 9200"), "{from_env}");
    assert!(from_env.contains("demo-fps = 20"), "{from_env}");
    assert!(
        from_env.contains("public-ip = \"203.0.113.7\""),
        "{from_env}"
    );
    let from_flags = printed(&["--udp-port", "9300"], &env);
    assert!(from_flags.contains("udp-port = 9300"), "{from_flags}");
    assert!(from_flags.contains("demo-fps = 20"), "{from_flags}");

    // The printed settings are a config file that gives the same settings again.
    let again = TempPath::file("again.toml", from_flags.as_bytes()).unwrap();
    let args = ["--config", again.path().to_str().unwrap(), "--print-config"];
    assert_eq!(stdout(&run("sightline", &args, &[])), from_flags);
}

#[test]
fn bad_server_settings_are_refused_with_the_reason() {
    let secret = TempPath::file("secret", b"0123456789abcdef0123456789abcdef").unwrap();
    let secret = secret.path().to_str().unwrap();
    for (text, flags, expected) in [
        ("udp-prot = 1\n", vec![], "unknown field `udp-prot`"),
        (
            "udp-port = \"x\"\n",
            vec![],
            "`udp-port = \"x\"`: invalid type",
        ),
        ("turn-ttl = \"forever\"\n", vec![], "bad duration `forever`"),
        ("udp-port = \n", vec![], "TOML parse error"),
        // Exclusive settings from different layers.
        (
            "insecure = true\n",
            vec!["--auth-secret-file", secret],
            "insecure and auth-secret-file exclude each other",
        ),
        (
            "tls-cert = \"/x.pem\"\n",
            vec![],
            "tls-cert and tls-key go together",
        ),
    ] {
        let file = TempPath::file("bad.toml", text.as_bytes()).unwrap();
        let args = [&["--config", file.path().to_str().unwrap()], &flags[..]].concat();
        let err = failure(&run(
            "sightline",
            &[&args[..], &["--print-config"]].concat(),
            &[],
        ));
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    let err = failure(&run("sightline", &["--config", "/nonexistent.toml"], &[]));
    assert!(
        err.contains("reading config file /nonexistent.toml"),
        "{err}"
    );
    // Making a token needs no config file, even with one named in the environment.
    let token = [
        "token",
        "--secret-file",
        secret,
        "--role",
        "view",
        "--camera",
        "a",
    ];
    let env = [("SIGHTLINE_CONFIG", "/nonexistent.toml")];
    assert!(!stdout(&run("sightline", &token, &env)).trim().is_empty());
}

const TWO_CAMERAS: &str = r#"
server = "ws://127.0.0.1:SERVER_PORT/ws"
width = 320
height = 240
fps = 10
bitrate = "300k"
no-state = true

[[camera]]
camera-id = "porch"
name = "Porch"

[[camera]]
camera-id = "garage"
fps = 5
"#;

#[test]
fn publisher_settings_print_per_camera_with_secrets_hidden() {
    let text = TWO_CAMERAS.replace(
        "name = \"Porch\"",
        "name = \"Porch\"\nsource = \"rtsp://admin:hunter2@10.0.0.9/live\"",
    );
    let file = TempPath::file("cams.toml", text.as_bytes()).unwrap();
    let config = file.path().to_str().unwrap();
    let env = [
        ("SIGHTLINE_TOKEN", "hunter2-token"),
        ("SIGHTLINE_WIDTH", "640"),
    ];
    let out = run(
        "sightline-publisher",
        &["--config", config, "--print-config", "--height", "480"],
        &env,
    );
    let printed = stdout(&out);
    assert!(!printed.contains("hunter2"), "{printed}");
    let lines = |line: &str| printed.lines().filter(|l| *l == line).count();
    // The environment and flags beat every camera's table; the tables beat the top level.
    for (line, times) in [
        ("[[camera]]", 2),
        ("token = \"***\"", 2),
        ("source = \"rtsp://admin:***@10.0.0.9/live\"", 1),
        ("width = 640", 2),
        ("height = 480", 2),
        ("fps = 10", 1),
        ("fps = 5", 1),
        ("bitrate = 300000", 2),
    ] {
        assert_eq!(lines(line), times, "{line}:\n{printed}");
    }

    let err = failure(&run(
        "sightline-publisher",
        &["--config", config, "--source", "test-pattern"],
        &[],
    ));
    assert!(
        err.contains("--source (or SIGHTLINE_SOURCE) names one camera"),
        "{err}"
    );
    let err = failure(&run(
        "sightline-publisher",
        &["--config", config, "--print-config"],
        &[("SIGHTLINE_FPS", "0")],
    ));
    assert!(err.contains("fps 0 is outside 1 to 240"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_process_publishes_every_camera_of_its_file() {
    let server = TestServer::start().await.unwrap();
    let text = TWO_CAMERAS.replace("SERVER_PORT", &server.http_addr().port().to_string());
    let _publisher = start_with_config("sightline-publisher", &text);
    for (id, name) in [("porch", "Porch"), ("garage", "garage")] {
        let cam = server
            .wait_camera_online(id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(cam.name, name);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_where_its_file_says() {
    let (http, udp) = (free_tcp_port().unwrap(), free_udp_port().unwrap());
    let text =
        format!("http = \"127.0.0.1:{http}\"\nudp-port = {udp}\nmedia-ips = [\"127.0.0.1\"]\n");
    let _server = start_with_config("sightline", &text);
    let base = format!("http://127.0.0.1:{http}");
    wait_until(Duration::from_secs(20), "the server answers", async || {
        get_json(format!("{base}/api/cameras")).await.ok()
    })
    .await
    .unwrap();
}
