//! The Raspberry Pi build: the aarch64 publisher (`scripts/cross aarch64`, which
//! `scripts/test` runs first), run under qemu-user, publishes its test pattern to the x86
//! server in this test, and a viewer decodes its frames in order. The emulated speed says
//! nothing about a real Pi; what this proves is that the cross-built binary starts, encodes,
//! negotiates and sends what a native one does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use sightline_tests::child::ChildGuard;
use sightline_tests::sequence::in_order_from_keyframe;
use sightline_tests::{HeadlessViewer, TestServer, ViewerConfig};

const TRIPLE: &str = "aarch64-unknown-linux-gnu";

/// The cross-built publisher, beside the running test's own target folder.
fn aarch64_publisher() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/deps/this-test → target/
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not under target/<profile>/deps")?;
    let path = target.join(TRIPLE).join("release/sightline-publisher");
    if !path.is_file() {
        bail!(
            "{} is missing: run `scripts/cross aarch64` first (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// Debian's qemu-user (`qemu-user-static` names it `-static`; `qemu-user` does not).
fn qemu() -> anyhow::Result<&'static str> {
    for name in ["qemu-aarch64-static", "qemu-aarch64"] {
        if Command::new(name).arg("--version").output().is_ok() {
            return Ok(name);
        }
    }
    bail!("qemu-aarch64 not found: `scripts/setup --test` installs qemu-user-static")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_publisher_under_qemu_is_decoded_by_a_viewer() {
    let publisher = aarch64_publisher().unwrap();
    let server = TestServer::start().await.unwrap();
    let camera = "pi";
    // It is an aarch64 binary: run directly it fails with "Exec format error" (unless
    // binfmt_misc hands it to qemu, which a container may not have).
    let file = std::fs::read(&publisher).unwrap();
    assert_eq!(&file[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([file[18], file[19]]),
        183,
        "e_machine: EM_AARCH64"
    );
    drop(file);

    let child = Command::new(qemu().unwrap())
        .arg(&publisher)
        .args(["--server", &server.ws_url(), "--camera-id", camera])
        .args([
            "--no-state",
            "--width",
            "320",
            "--height",
            "240",
            "--fps",
            "10",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    // Emulation makes start-up (TLS roots, the encoder) several times slower than native.
    let online = server.wait_camera_online(camera, Duration::from_secs(60));
    tokio::pin!(online);
    loop {
        tokio::select! {
            r = &mut online => {
                r.unwrap();
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(exit) = child.0.try_wait().unwrap() {
                    panic!("the aarch64 publisher exited ({exit}); its errors are above");
                }
            }
        }
    }
    let mut viewer = HeadlessViewer::connect(ViewerConfig::new(server.ws_url(), camera))
        .await
        .unwrap();
    let frames = in_order_from_keyframe(&mut viewer, camera, 20)
        .await
        .unwrap();
    let first = &frames[0];
    assert_eq!((first.width, first.height), (320, 240));
}
