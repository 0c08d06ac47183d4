//! The Sightline page under a browser test, shared by every browser test file: a server
//! whose media address the browser can use and a camera for it, browsers started off the
//! async runtime, blocking page work whose failure carries what the page knew, and scripts
//! that use the page as a person would.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use sightline_signaling::server::ServerConfig;

use crate::browser::{Browser, BrowserOptions};
use crate::harness::{self, TestPublisher, TestServer};
use crate::webkit::WebKitOptions;

/// A server with the web client, HTTP on `http_ip` and media on `media_ip` (Chromium does
/// not use loopback for ICE), with tokens or without.
pub async fn page_server(
    http_ip: IpAddr,
    media_ip: IpAddr,
    tokens: bool,
) -> anyhow::Result<TestServer> {
    let mut config = page_server_config(http_ip, media_ip)?;
    if tokens {
        config = harness::with_tokens(config);
    }
    TestServer::start_with(config).await
}

/// The config [`page_server`] starts from, for tests that change more.
pub fn page_server_config(http_ip: IpAddr, media_ip: IpAddr) -> anyhow::Result<ServerConfig> {
    let mut config = harness::loopback_server_config();
    config.http_addr = SocketAddr::new(http_ip, 0);
    config.sfu.bind_ips = vec![media_ip];
    Ok(config)
}

/// A test-pattern camera `id` of `width`×`height` on `server` (with a token when it has
/// tokens).
pub fn page_camera(server: &TestServer, id: &str, width: u32, height: u32) -> TestPublisher {
    let mut config = server.publisher_config(id);
    config.width = width;
    config.height = height;
    TestPublisher::start(config)
}

/// What the page must show within this time after loading: generous, a cold Chromium on a
/// loaded 2-core machine is slow.
pub const PLAY_TIMEOUT: Duration = Duration::from_secs(20);

/// Playback figures of the page's <video>.
const VIDEO_STATE: &str = r#"
    const v = document.querySelector('video');
    const q = v.getVideoPlaybackQuality();
    return { frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
             width: v.videoWidth, height: v.videoHeight, paused: v.paused,
             time: v.currentTime };
"#;

pub fn video_state(browser: &Browser) -> anyhow::Result<Value> {
    browser.execute(VIDEO_STATE, &[])
}

/// Wait until the video decodes frames of `width`×`height`, then check that it keeps
/// playing (see [`keeps_playing`]).
pub fn assert_decoding(browser: &Browser, width: u64, height: u64) -> anyhow::Result<()> {
    let check = format!(
        "const v = document.querySelector('video');
         return v.videoWidth === {width} && v.videoHeight === {height}
             && v.getVideoPlaybackQuality().totalVideoFrames > 0;"
    );
    browser
        .wait_for(&check, PLAY_TIMEOUT)
        .with_context(|| format!("video never played at {width}x{height}"))?;
    let last = keeps_playing(|| video_state(browser))?;
    ensure!(
        last["width"].as_u64() == Some(width) && last["height"].as_u64() == Some(height),
        "video is not {width}x{height}: {last}"
    );
    Ok(())
}

/// Seconds of progress [`keeps_playing`] wants to see.
const PLAYING_SECONDS: usize = 3;
/// The longest pause in frames [`keeps_playing`] lets pass, once, in seconds.
const LONGEST_STALL: usize = 3;

/// Sample a playing video once a second (`sample` gives a `"frames"` count that grows while
/// pictures come, and `"paused"`) until it has shown frames in [`PLAYING_SECONDS`] seconds,
/// and return the last sample. One pause of up to [`LONGEST_STALL`] seconds is let pass and
/// printed with its samples: on this 2-core machine, with Chromium decoding in software
/// beside the server and the publisher, the MSE path has paused for one or two seconds in
/// about one full suite run in three, never alone (see BENCHMARKS.md, "The MSE fallback").
/// A longer pause, a second one, or a paused video fails.
pub fn keeps_playing(mut sample: impl FnMut() -> anyhow::Result<Value>) -> anyhow::Result<Value> {
    let mut last = sample()?;
    let mut seen = vec![last.clone()];
    let (mut moving, mut flat, mut stalls) = (0, 0, 0);
    while moving < PLAYING_SECONDS {
        std::thread::sleep(Duration::from_secs(1));
        let now = sample()?;
        seen.push(now.clone());
        ensure!(
            !now["paused"].as_bool().unwrap_or(true),
            "video paused: {now}"
        );
        if now["frames"].as_u64() > last["frames"].as_u64() {
            if flat > 0 {
                eprintln!(
                    "note: the video showed no frame for {flat} s, then went on: {}",
                    Value::from(seen.clone())
                );
            }
            moving += 1;
            flat = 0;
        } else {
            flat += 1;
            if flat == 1 {
                stalls += 1;
            }
            ensure!(
                stalls <= 1 && flat <= LONGEST_STALL,
                "no frame shown for {flat} s (pause {stalls}); each second: {}",
                Value::from(seen.clone())
            );
        }
        last = now;
    }
    Ok(last)
}

pub async fn chromium() -> anyhow::Result<Arc<Browser>> {
    chromium_with(BrowserOptions::default()).await
}

pub async fn chromium_with(options: BrowserOptions) -> anyhow::Result<Arc<Browser>> {
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || Browser::launch(options)).await??,
    ))
}

/// Chromium inside network namespace `ns` (a [`crate::topology`] site's host).
pub async fn chromium_in(ns: String) -> anyhow::Result<Arc<Browser>> {
    chromium_with(BrowserOptions {
        netns: Some(ns),
        ..BrowserOptions::default()
    })
    .await
}

pub async fn webkit() -> anyhow::Result<Arc<Browser>> {
    Ok(Arc::new(
        tokio::task::spawn_blocking(|| Browser::launch_webkit(WebKitOptions::default())).await??,
    ))
}

/// What the page knows, for a failure message: its `window.sightline` (activity log,
/// path, control, stats) and its <video>.
const PAGE_DUMP: &str = r#"
    const v = document.querySelector('video');
    const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
    const s = window.sightline;
    return {
      video: v ? { frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
                   width: v.videoWidth, height: v.videoHeight, paused: v.paused,
                   time: v.currentTime } : null,
      page: s ? { log: s.log, path: s.path, control: s.control, stats: s.stats }
              : 'no window.sightline',
    };
"#;

/// `err` with the page's state, its console and a screenshot saved as `shot`.
pub fn explain(browser: &Browser, err: anyhow::Error, shot: &str) -> anyhow::Error {
    let page = browser.execute(PAGE_DUMP, &[]).unwrap_or_default();
    let console = browser.console_log().unwrap_or_default();
    let shot = browser
        .save_screenshot(shot)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("(no screenshot: {e})"));
    anyhow::anyhow!(
        "{err:#}\n--- page state ---\n{page:#}\nconsole: {console:#?}\nscreenshot: {shot}"
    )
}

/// Run blocking browser work off the async runtime; a failure carries the page's state
/// ([`explain`]) and a screenshot named `shot`.
pub async fn on_page<T: Send + 'static>(
    browser: &Arc<Browser>,
    shot: &'static str,
    f: impl FnOnce(&Browser) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let b = browser.clone();
    tokio::task::spawn_blocking(move || f(&b).map_err(|e| explain(&b, e, shot))).await?
}

/// Pick a resolution the camera's capabilities allow that differs from the current one,
/// set it in the control panel's inputs the way a person would, and apply. Returns
/// `{width, height}` or `{error}`.
pub const CHANGE_RESOLUTION: &str = r#"
    const c = window.sightline.control;
    const caps = c.capabilityTypes;
    const allowed = (name, v) => {
      const cap = caps[name];
      if (!cap) return false;
      if (cap.type === 'int') return v >= cap.min && v <= cap.max && (v - cap.min) % (cap.step || 1) === 0;
      if (cap.type === 'enum') return cap.choices.includes(String(v));
      return false;
    };
    const v = document.getElementById('video');
    // Same shape first: the publisher offers sizes as pairs, each side listed alone.
    const target = [[320, 180], [480, 270], [160, 90], [640, 360], [1280, 720], [320, 240]]
      .find(([w, h]) => w !== v.videoWidth && allowed('width', w) && allowed('height', h));
    if (!target) return { error: `no other resolution allowed by ${JSON.stringify(caps)}` };
    for (const [name, value] of [['width', target[0]], ['height', target[1]]]) {
      const input = document.querySelector(`#control [data-setting="${name}"] .setting-input`);
      if (!input || input.disabled) return { error: `no enabled control for ${name}` };
      input.value = String(value);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new Event('change', { bubbles: true }));
    }
    const apply = document.getElementById('control-apply');
    if (apply && !apply.closest('[hidden]')) apply.click();
    return { width: target[0], height: target[1] };
"#;
