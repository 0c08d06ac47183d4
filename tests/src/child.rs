//! Other processes under a test: the workspace's own binaries, killed when the test is done.

use std::path::PathBuf;
use std::process::Child;

use anyhow::{bail, Context};

/// A child process killed (and reaped) on drop, also when the test fails.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of a binary of this workspace built beside the running one: tests run from
/// `target/<profile>/deps`, bench binaries from `target/<profile>`.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the running binary has no folder")?;
    for candidate in [dir.join(name), dir.join("..").join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} not built beside {}: run `cargo build --release --workspace` first",
        dir.display()
    )
}

/// A loopback TCP port free right now (for a child server to bind).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A loopback UDP port free right now.
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
