//! A real coturn for tests, started through `turn-config/run-coturn` (the script users run),
//! so the template and the script are what the tests check.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use sightline_signaling::ice::IceConfig;

use crate::temp::TempPath;

pub struct Coturn {
    child: Child,
    pub ip: IpAddr,
    pub port: u16,
    /// The secret coturn checks credentials against.
    pub secret: String,
    _secret_file: TempPath,
    /// Everything coturn printed so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Coturn {
    /// coturn on `ip` (listening and relaying), letting peers reach only `sfu_ip` among
    /// private addresses, checking credentials against `secret`.
    pub async fn start(ip: IpAddr, sfu_ip: IpAddr, secret: &str) -> anyhow::Result<Self> {
        let script = repo_root().join("turn-config/run-coturn");
        let secret_file = TempPath::file("turn-secret", secret.as_bytes())?;
        let port = free_port(ip)?;
        // A relay range of its own, clear of other tests' ports.
        let min = 40_000 + (port % 200) * 100;
        let mut child = Command::new(&script)
            .args(["--secret-file".as_ref(), secret_file.path().as_os_str()])
            .args([
                "--sfu-ip",
                &sfu_ip.to_string(),
                "--listen-ip",
                &ip.to_string(),
            ])
            .args([
                "--port",
                &port.to_string(),
                "--tls-port",
                &(port + 1).to_string(),
            ])
            .args([
                "--min-port",
                &min.to_string(),
                "--max-port",
                &(min + 99).to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().context("stdout")?)
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().context("stderr")?),
        ] {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line);
                }
            });
        }
        // Ready once its TCP listener takes connections (it opens UDP and TCP together).
        let listening = async {
            while tokio::net::TcpStream::connect((ip, port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(15), listening)
            .await
            .is_err()
        {
            terminate(&mut child);
            bail!("coturn did not start: {}", log.lock().unwrap().join("\n"));
        }
        Ok(Coturn {
            child,
            ip,
            port,
            secret: secret.to_owned(),
            _secret_file: secret_file,
            log,
        })
    }

    /// Servers handing out this coturn as the only ICE server, over `transport` (`udp` or
    /// `tcp`), with credentials signed with its secret.
    pub fn ice_config(&self, transport: &str) -> IceConfig {
        IceConfig {
            stun_urls: Vec::new(),
            turn_urls: vec![format!(
                "turn:{}?transport={transport}",
                std::net::SocketAddr::new(self.ip, self.port)
            )],
            turn_secret: Some(self.secret.as_bytes().to_vec()),
            turn_ttl: Duration::from_secs(3600),
        }
    }

    /// coturn's STUN service (it answers binding requests on its TURN port).
    pub fn stun_url(&self) -> String {
        format!("stun:{}", std::net::SocketAddr::new(self.ip, self.port))
    }

    /// What coturn printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Stop coturn whichever way the test ends. The script must get SIGTERM, which it passes on
/// to coturn before removing the configuration (it holds the secret): the SIGKILL of
/// `kill_on_drop` alone would kill the script and leave coturn running, orphaned.
impl Drop for Coturn {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// SIGTERM to the script, then wait (up to 5 s) for it to have stopped coturn.
fn terminate(script: &mut Child) {
    let Some(pid) = script.id() else { return };
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline && matches!(script.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}
