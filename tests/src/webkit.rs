//! A real WebKitGTK (Debian's MiniBrowser), driven through WebKitWebDriver with the same
//! [`Browser`] API as Chromium. WebKitGTK has no RTCPeerConnection but has MSE, so it is the
//! browser that proves the page's MSE fallback.
//!
//! MiniBrowser has no headless mode: [`Browser::launch_webkit`] starts a private Xvfb (it
//! picks a free display itself, `-displayfd`), WebKitWebDriver on a free loopback port with
//! `DISPLAY` pointing there, and a session whose `webkitgtk:browserOptions` name MiniBrowser
//! with `--automation`. Dropping the [`Browser`] ends the session, the driver's process group
//! and the Xvfb.
//!
//! Needs Debian's `webkit2gtk-driver` (brings MiniBrowser) and `xvfb`; to decode H.264 in
//! MSE, GStreamer's `gstreamer1.0-libav` (avdec_h264) and `gstreamer1.0-plugins-good`/`-bad`
//! (qtdemux, h264parse). `scripts/setup --test` installs them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;

use crate::browser::{scratch_dir, Browser, DriverLaunch};

#[derive(Debug, Clone)]
pub struct WebKitOptions {
    /// `$WEBKIT_DRIVER`, else `/usr/bin/WebKitWebDriver`.
    pub driver: PathBuf,
    /// `$MINIBROWSER`, else Debian's `/usr/lib/<multiarch>/webkit2gtk-4.1/MiniBrowser`.
    pub minibrowser: PathBuf,
    /// `$XVFB`, else `/usr/bin/Xvfb`.
    pub xvfb: PathBuf,
    /// Screen (and window) size.
    pub window: (u32, u32),
}

impl Default for WebKitOptions {
    fn default() -> Self {
        let env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        let minibrowser = env("MINIBROWSER").unwrap_or_else(|| {
            let candidates = [
                "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.0/MiniBrowser",
                "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.0/MiniBrowser",
                "/usr/libexec/webkit2gtk-4.1/MiniBrowser",
            ];
            candidates
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from(candidates[0]))
        });
        WebKitOptions {
            driver: env("WEBKIT_DRIVER").unwrap_or_else(|| "/usr/bin/WebKitWebDriver".into()),
            minibrowser,
            xvfb: env("XVFB").unwrap_or_else(|| "/usr/bin/Xvfb".into()),
            window: (1280, 800),
        }
    }
}

/// Start Xvfb on a display it picks itself; returns it and the display's number.
fn start_xvfb(xvfb: &PathBuf, (w, h): (u32, u32)) -> anyhow::Result<(Child, u32)> {
    let mut child = Command::new(xvfb)
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-noreset",
            "-screen",
            "0",
        ])
        .arg(format!("{w}x{h}x24"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", xvfb.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) => match line.trim().parse() {
            Ok(display) => Ok((child, display)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("Xvfb said {line:?} instead of its display number")
            }
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Xvfb named no display within 15 s")
        }
    }
}

impl Browser {
    /// WebKitGTK's MiniBrowser under a private Xvfb; see the module docs.
    pub fn launch_webkit(opts: WebKitOptions) -> anyhow::Result<Browser> {
        for (bin, package) in [
            (&opts.driver, "webkit2gtk-driver"),
            (&opts.minibrowser, "webkit2gtk-driver (libwebkit2gtk-4.1-0)"),
            (&opts.xvfb, "xvfb"),
        ] {
            if !bin.exists() {
                bail!(
                    "{} not found: install Debian's `{package}` (scripts/setup --test)",
                    bin.display()
                );
            }
        }
        let scratch = scratch_dir()?;
        let (xvfb, display) = start_xvfb(&opts.xvfb, opts.window)?;
        let mut command = Command::new(&opts.driver);
        command
            .env("DISPLAY", format!(":{display}"))
            // Software GL under Xvfb; no accessibility bus, no portals to wait for.
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("NO_AT_BRIDGE", "1")
            .env("GTK_A11Y", "none")
            .env("WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS", "1")
            .env("XDG_RUNTIME_DIR", &scratch)
            .env("HOME", &scratch)
            .arg("--host=127.0.0.1");
        let caps = json!({
            "webkitgtk:browserOptions": {
                "binary": opts.minibrowser,
                "args": ["--automation"],
            },
        });
        Browser::start(DriverLaunch {
            command,
            port_arg: |port| format!("--port={port}"),
            name: "WebKitWebDriver",
            capabilities: caps,
            helpers: vec![xvfb],
            scratch,
        })
        .map_err(|e| anyhow!("launching WebKitGTK: {e:#}"))
    }
}
