//! The systemd units in `packaging/`: `systemd-analyze verify` finds nothing to say about
//! them (unknown keys and bad values are printed, not failed, so any output fails here),
//! and every flag their `ExecStart` passes is one the binary has. And the server binary
//! they install needs nothing beside it: the web client is built in.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sightline_tests::child::{free_tcp_port, free_udp_port, workspace_binary, ChildGuard};
use sightline_tests::harness::wait_until;
use sightline_tests::raw_http::{self, RawResponse};
use sightline_tests::temp::TempPath;

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// The unit's text with `/usr/local/bin/X` pointing at the built binary (verify checks
/// that `ExecStart` exists and is executable).
fn unit_with_built_binaries(name: &str) -> String {
    let text = std::fs::read_to_string(packaging().join(name)).unwrap();
    let bin = workspace_binary("sightline").unwrap();
    text.replace(
        "/usr/local/bin/",
        &format!("{}/", bin.parent().unwrap().display()),
    )
}

/// The `--flags` of the unit's `ExecStart` (continuation lines included).
fn exec_flags(unit: &str) -> Vec<String> {
    let start = unit.find("ExecStart=").expect("an ExecStart");
    let mut command = String::new();
    for line in unit[start..].lines() {
        command.push_str(line.trim_end_matches('\\'));
        if !line.ends_with('\\') {
            break;
        }
    }
    command
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn units_verify_cleanly_and_pass_only_real_flags() {
    let dir = TempPath::dir("units").unwrap();
    let mut paths = Vec::new();
    for (file, instance, binary) in [
        ("sightline.service", "sightline.service", "sightline"),
        (
            "sightline-publisher@.service",
            "sightline-publisher@front-door.service",
            "sightline-publisher",
        ),
    ] {
        let unit = unit_with_built_binaries(file);
        let help = Command::new(workspace_binary(binary).unwrap())
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        let flags = exec_flags(&unit);
        assert!(flags.len() >= 2, "{file}: {flags:?}");
        for flag in flags {
            assert!(
                help.contains(&flag),
                "{file} passes {flag}, which {binary} lacks"
            );
        }
        let path = dir.path().join(instance);
        std::fs::write(&path, unit).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// `sightline` copied to a folder of its own serves the page. The source tree's
/// `web-client/` is hidden under an empty tmpfs in a private mount namespace while it runs,
/// so a server that still read the page from disk would answer 404.
#[tokio::test]
async fn a_copied_server_binary_serves_its_page_with_nothing_beside_it() {
    let dir = TempPath::dir("copied-server").unwrap();
    let exe = dir.path().join("sightline");
    std::fs::copy(workspace_binary("sightline").unwrap(), &exe).unwrap();
    let web_client = packaging().join("../web-client").canonicalize().unwrap();
    let index = std::fs::read(web_client.join("index.html")).unwrap();
    let (http, udp) = (free_tcp_port().unwrap(), free_udp_port().unwrap());
    let script = r#"mount -t tmpfs empty "$1" && cd / && exec "$2" --http "127.0.0.1:$3" --udp-port "$4" --media-ip 127.0.0.1"#;
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&web_client)
        .arg(&exe)
        .args([http.to_string(), udp.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = ChildGuard(child);
    let get = async |path: &str| -> Option<RawResponse> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", http))
            .await
            .ok()?;
        raw_http::request(stream, "GET", path, &[], "").await.ok()
    };
    let page = wait_until(Duration::from_secs(20), "the page served", async || {
        if let Some(exit) = server.0.try_wait().unwrap() {
            panic!("the server exited at start: {exit}");
        }
        get("/").await
    })
    .await
    .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.bytes, index);
    let script = get("/app.js").await.unwrap();
    assert_eq!(script.status, 200);
    // ES modules load only with a JavaScript type.
    assert!(script
        .header("content-type")
        .unwrap()
        .contains("javascript"));
    assert_eq!(get("/no-such-file.js").await.unwrap().status, 404);
}
