//! The web client in a real headless Firefox ESR (geckodriver), the browser whose Debian build
//! has no H.264 for WebRTC:
//!
//! - Firefox ESR's WebRTC receiver offers VP8 and not H.264: why the SFU and the publisher
//!   need VP8 for Firefox viewers.
//! - The demo's test-pattern camera plays in Firefox over VP8: the page connects, subscribes
//!   and decodes frames whose inbound codec is `video/VP8`, and its stats panel says VP8.
//!
//! Needs Debian's `firefox-esr` and geckodriver (`cargo install geckodriver`; `$GECKODRIVER`
//! names it when it is not on PATH or in `~/.cargo/bin`). The playing test needs the test
//! network namespace like the Chromium tests (it skips, loudly, outside it):
//! `scripts/netns cargo test --release --offline -p sightline-tests --test browser_firefox`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use sightline_tests::browser::{netns_or_skip, Browser};
use sightline_tests::firefox::FirefoxOptions;
use sightline_tests::page::{on_page, page_camera, page_server, PLAY_TIMEOUT};
use tokio::sync::Mutex;

/// One Firefox at a time: the tests share two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Start Firefox (blocking, so off the async runtime when there is one) and say how long it
/// took: from nothing to a session ready for commands.
fn launch() -> anyhow::Result<Browser> {
    let started = Instant::now();
    let browser = Browser::launch_firefox(FirefoxOptions::default())?;
    eprintln!("Firefox session ready in {:.2?}", started.elapsed());
    Ok(browser)
}

/// A page on loopback, from a listener of our own: answers every request with `html`
/// until dropped.
struct LoopbackPage {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl LoopbackPage {
    fn serve(html: &'static str) -> anyhow::Result<LoopbackPage> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = answer(conn, html);
                }
            }
        });
        Ok(LoopbackPage { addr, stop })
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for LoopbackPage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Read one request (its head is enough: these are GETs) and send `html`.
fn answer(mut conn: TcpStream, html: &str) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{html}",
        html.len()
    )
}

const CAPABILITIES_PAGE: &str = "<!doctype html><meta charset=utf-8>\
    <link rel=icon href=\"data:,\"><title>codecs</title><p id=p>codecs</p>";

/// What this browser's WebRTC can receive and send, by MIME type.
const VIDEO_CAPABILITIES: &str = r#"
    const types = (caps) => caps ? [...new Set(caps.codecs.map((c) => c.mimeType))] : null;
    return {
      userAgent: navigator.userAgent,
      title: document.title,
      receive: types(RTCRtpReceiver.getCapabilities('video')),
      send: types(RTCRtpSender.getCapabilities('video')),
    };
"#;

fn mime_types(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn firefox_esr_offers_vp8_but_not_h264() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let page = LoopbackPage::serve(CAPABILITIES_PAGE)?;
    let browser = launch()?;
    browser.goto(&page.url())?;
    let caps = browser.execute(VIDEO_CAPABILITIES, &[])?;
    eprintln!("Firefox video codecs: {caps:#}");
    ensure!(caps["title"] == "codecs", "the page did not load: {caps}");
    ensure!(
        caps["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Firefox/")),
        "not Firefox: {caps}"
    );
    let receive = mime_types(&caps["receive"]);
    ensure!(
        receive.iter().any(|m| m == "video/vp8"),
        "Firefox cannot receive VP8 over WebRTC: {caps}"
    );
    if receive.iter().any(|m| m == "video/h264") {
        // Not a quiet failure: it would mean Firefox ESR could play today's H.264 SFU
        // without VP8, and the reason for VP8 written here is wrong.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** Firefox ESR DOES offer H.264 for WebRTC here: {caps}\n"
        );
        bail!("Firefox ESR offers H.264 for WebRTC (expected VP8 only): {caps}");
    }
    Ok(())
}

/// Remember the page's peer connection: the page samples `pc.getStats()` once a second
/// (stats.js), so wrapping the method catches it without changing the page.
const TAP_PEER_CONNECTION: &str = r#"
    if (window.__testTap) return;
    window.__testTap = true;
    const getStats = RTCPeerConnection.prototype.getStats;
    RTCPeerConnection.prototype.getStats = function (...args) {
      window.__testPc = this;
      return getStats.apply(this, args);
    };
"#;

/// The tapped connection's video inbound-rtp report and its codec, and the codecs the
/// server's answer named (`a=rtpmap`).
const INBOUND_VIDEO: &str = r#"
    const done = arguments[arguments.length - 1];
    const pc = window.__testPc;
    if (!pc) { done(null); return; }
    const answered = pc.remoteDescription
      ? pc.remoteDescription.sdp.split('\r\n').filter((l) => l.startsWith('a=rtpmap:'))
      : null;
    pc.getStats().then((report) => {
      const byId = new Map();
      let inbound = null;
      report.forEach((r) => {
        byId.set(r.id, r);
        if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'video') inbound = r;
      });
      const codec = inbound && inbound.codecId ? byId.get(inbound.codecId) : null;
      done({
        framesDecoded: inbound ? inbound.framesDecoded ?? null : null,
        width: inbound ? inbound.frameWidth ?? null : null,
        height: inbound ? inbound.frameHeight ?? null : null,
        mimeType: codec ? codec.mimeType : null,
        answered,
        connection: pc.connectionState,
      });
    }, (e) => done({ error: String(e) }));
"#;

/// The page's own view: signaling, path, peer connection and its stats.
const PAGE_STATUS: &str = r#"
    const s = window.sightline;
    if (!s) return null;
    const v = document.getElementById('video');
    return {
      ws: s.wsState, camera: s.cameraId, path: s.path, pc: s.pcState, ice: s.iceState,
      framesDecoded: s.stats.framesDecoded, width: s.stats.width, height: s.stats.height,
      codec: s.stats.codec,
      videoWidth: v ? v.videoWidth : null, videoHeight: v ? v.videoHeight : null,
      paused: v ? v.paused : null,
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_esr_plays_the_demo_over_vp8() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("firefox_esr_plays_the_demo_over_vp8") else {
        return Ok(());
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 320, 240);
    // WebRTC only: the MSE fallback (H.264 in MP4) must not stand in for a failed VP8.
    let url = format!("{}/?mode=webrtc", server.http_url());
    let browser = Arc::new(tokio::task::spawn_blocking(launch).await??);

    let result = on_page(&browser, "firefox-failure.png", move |b| {
        let opened = Instant::now();
        b.goto(&url)?;
        let status = || b.execute(PAGE_STATUS, &[]).unwrap_or_default();
        let diagnose = || {
            let inbound = b.execute_async(INBOUND_VIDEO, &[]).unwrap_or_default();
            format!(
                "{}; inbound video and the answer's codecs: {inbound}",
                status()
            )
        };
        b.wait_for(
            "return window.sightline && window.sightline.wsState === 'open';",
            PLAY_TIMEOUT,
        )
        .context("the page's signaling never opened")?;
        b.wait_for(
            "const s = window.sightline;
             return s.cameraId === 'cam' && s.path === 'webrtc' && s.pcState !== null;",
            PLAY_TIMEOUT,
        )
        .with_context(|| format!("the page never subscribed to the camera: {}", status()))?;
        b.execute(TAP_PEER_CONNECTION, &[])?;
        eprintln!(
            "Firefox: signaling open and subscribed {:.2?} after opening the page",
            opened.elapsed()
        );

        b.wait_for(
            "return window.sightline.pcState === 'connected';",
            PLAY_TIMEOUT,
        )
        .with_context(|| format!("the peer connection never connected: {}", diagnose()))?;
        let frames = |b: &Browser| -> u64 {
            b.execute(PAGE_STATUS, &[]).unwrap_or_default()["framesDecoded"]
                .as_u64()
                .unwrap_or(0)
        };
        b.wait_for(
            "const s = window.sightline.stats;
             return s.framesDecoded > 0 && s.width === 320 && s.height === 240;",
            PLAY_TIMEOUT,
        )
        .with_context(|| format!("no 320x240 frame decoded: {}", diagnose()))?;
        eprintln!(
            "Firefox: first decoded frames {:.2?} after opening the page",
            opened.elapsed()
        );
        // The page samples getStats once a second: each sample must show more frames.
        let mut last = frames(b);
        for second in 1..=3 {
            std::thread::sleep(Duration::from_millis(1100));
            let now = frames(b);
            ensure!(
                now > last,
                "decoding stalled in second {second}: {last} → {now} frames; {}",
                status()
            );
            last = now;
        }
        let inbound = b.execute_async(INBOUND_VIDEO, &[])?;
        eprintln!("Firefox inbound video: {inbound:#}");
        ensure!(
            inbound["mimeType"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case("video/VP8")),
            "the video Firefox decodes is not VP8: {inbound}"
        );
        let page = status();
        ensure!(page["paused"] == false, "video paused: {page}");
        ensure!(
            page["codec"] == "VP8",
            "the page's stats name another codec: {page}"
        );
        ensure!(
            page["videoWidth"] == 320 && page["videoHeight"] == 240,
            "the <video> is not 320x240: {page}"
        );
        b.save_screenshot("firefox-playing.png")?;
        Ok(())
    })
    .await;

    cam.stop().await;
    server.shutdown().await;
    result
}
