//! The page's MSE fallback (web-client/mse.js over `/api/cameras/{id}/mse`) in real browsers:
//!
//! - WebKitGTK (no RTCPeerConnection, has MSE) plays the test-pattern camera with no
//!   `?mode`: the page picks MSE by itself, and the <video> really decodes frames.
//! - Chromium with `?mode=mse` plays over MSE in the same one <video id="video"> WebRTC
//!   uses; the barcode's glass-to-glass latency and the time to the first frame are printed.
//! - Chromium without `?mode` still plays over WebRTC (and does not fall back); Chromium
//!   whose WebRTC cannot connect falls back to MSE after 8 s by itself.
//! - A `control` token over MSE: the control panel changes the resolution, and the MSE
//!   player follows the new init segment without a reload.
//! - The camera goes away and comes back: MSE video resumes by itself.
//!
//! Needs Debian's `chromium` + `chromium-driver`, `webkit2gtk-driver` + `xvfb` and GStreamer's
//! H.264 decoder (`scripts/setup --test`), inside the test network namespace (Chromium's
//! WebRTC ignores loopback): `scripts/netns cargo test --release --offline -p sightline-tests
//! --test browser_mse`. Outside it the tests print SKIPPED and pass.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use sightline_publisher::barcode;
use sightline_signaling::auth::Role;
use sightline_tests::browser::{netns_or_skip, Browser};
use sightline_tests::harness;
use sightline_tests::page::{
    chromium, keeps_playing, on_page, page_camera, page_server, webkit, CHANGE_RESOLUTION,
};
use sightline_tests::webkit::WebKitOptions;
use tokio::sync::{Mutex, MutexGuard};

/// Every wait: generous, a cold browser on a loaded 2-core machine is slow (and the server
/// may have to wait for the camera's next keyframe).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Frames the <video> must have decoded before we call it playing.
const MIN_FRAMES: u64 = 30;

/// One browser at a time: the tests share two cores, and the latency figures should not
/// measure a neighbour's load.
/// (An async mutex: the guard is held across awaits, and each test has its own runtime.)
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Count the frames the page's <video> shows, with requestVideoFrameCallback: WebKitGTK's
/// getVideoPlaybackQuality() starts counting again after a SourceBuffer remove(), so its
/// counter alone cannot prove frames keep coming. Installed once per page.
const COUNT_FRAMES: &str = r#"
    const v = document.getElementById('video');
    if (!v || window.__shown !== undefined) return;
    window.__shown = 0;
    const each = () => { window.__shown++; v.requestVideoFrameCallback(each); };
    v.requestVideoFrameCallback(each);
"#;

/// The page's <video> and what the page says about its path.
const PAGE_STATE: &str = r#"
    const videos = document.querySelectorAll('video');
    const v = document.getElementById('video');
    const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    const s = window.sightline;
    let bufferedS = 0;
    for (let i = 0; v && i < v.buffered.length; i++) bufferedS += v.buffered.end(i) - v.buffered.start(i);
    return {
      videos: videos.length, sameElement: videos[0] === v,
      frames: window.__shown ?? null, decoded: q ? q.totalVideoFrames : null,
      dropped: q ? q.droppedVideoFrames : null,
      width: v ? v.videoWidth : null, height: v ? v.videoHeight : null,
      paused: v ? v.paused : null, time: v ? v.currentTime : null,
      src: v ? v.currentSrc || v.src : null, srcObject: v ? !!v.srcObject : null,
      bufferedS,
      path: s ? s.path : null, hasWebRTC: s ? s.hasWebRTC : null, fellBack: s ? s.fellBack : null,
      mseState: s ? s.mseState : null, pcState: s ? s.pcState : null,
      stats: s ? s.stats : null,
      shownPath: document.querySelector('[data-stat="path"]').textContent,
    };
"#;

fn page_state(b: &Browser) -> anyhow::Result<Value> {
    b.execute(PAGE_STATE, &[])
}

/// Wait until the <video> has shown MIN_FRAMES frames (counted from now) at
/// `width`×`height`, then check that it keeps playing (`page::keeps_playing`, which lets
/// one short pause pass).
fn assert_playing(b: &Browser, width: u64, height: u64) -> anyhow::Result<Value> {
    b.execute(COUNT_FRAMES, &[])?;
    let from = page_state(b)?["frames"].as_u64().unwrap_or(0);
    b.wait_for(
        &format!(
            "const v = document.getElementById('video');
             return v.videoWidth === {width} && v.videoHeight === {height}
                 && window.__shown >= {from} + {MIN_FRAMES};"
        ),
        TIMEOUT,
    )
    .with_context(|| {
        format!("the <video> never decoded {MIN_FRAMES} frames at {width}x{height}")
    })?;
    let last = keeps_playing(|| page_state(b).map(|s| playback(&s)))
        .with_context(|| format!("log: {}", recent_log(b)))?;
    ensure!(
        last["width"].as_u64() == Some(width) && last["height"].as_u64() == Some(height),
        "video is not {width}x{height}: {last}"
    );
    Ok(last)
}

/// What a stall report needs of one page state (`frames` is the count of frames shown): the
/// playhead, the buffer and the player's own figures (the whole page state is too long to
/// read in a CI log).
fn playback(s: &Value) -> Value {
    let st = &s["stats"];
    serde_json::json!({
        "frames": s["frames"], "decoded": s["decoded"], "dropped": s["dropped"],
        "width": s["width"], "height": s["height"],
        "time": s["time"], "bufferedS": s["bufferedS"], "paused": s["paused"],
        "aheadMs": st["bufferedAheadMs"], "fragments": st["fragments"],
        "fragmentsDropped": st["fragmentsDropped"], "jumps": st["liveJumps"],
        "rate": st["playbackRate"], "kbps": st["kbps"],
    })
}

/// The page's last activity-log lines.
fn recent_log(b: &Browser) -> String {
    b.execute("return window.sightline.log.slice(-8).join(' | ');", &[])
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// The page is on the MSE path and shows it.
fn assert_mse_path(b: &Browser) -> anyhow::Result<Value> {
    b.wait_for(
        "return window.sightline && window.sightline.path === 'mse';",
        TIMEOUT,
    )
    .context("the page never chose MSE")?;
    // The MediaSource is attached when the server's first init segment comes.
    b.wait_for(
        "return document.getElementById('video').currentSrc.startsWith('blob:');",
        TIMEOUT,
    )
    .context("no MediaSource on the <video>")?;
    let s = page_state(b)?;
    ensure!(
        s["shownPath"] == "mse",
        "stats panel shows path {}",
        s["shownPath"]
    );
    ensure!(
        s["videos"] == 1 && s["sameElement"] == true,
        "not one <video id=video>: {s}"
    );
    ensure!(
        s["srcObject"] == false && s["src"].as_str().is_some_and(|u| u.starts_with("blob:")),
        "the <video> does not play a MediaSource: {s}"
    );
    Ok(s)
}

/// The page's raw barcode latency readings over the next `secs` seconds: (p50, p95, count).
fn latency_over(b: &Browser, secs: u64) -> anyhow::Result<(f64, f64, usize)> {
    let before = b.execute("return window.sightline.latencyReadings.length;", &[])?;
    std::thread::sleep(Duration::from_secs(secs));
    let readings = b.execute("return window.sightline.latencyReadings;", &[])?;
    let start = before.as_u64().unwrap_or(0) as usize;
    let mut ms: Vec<f64> = readings
        .as_array()
        .map(|a| a.iter().skip(start).filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    ensure!(!ms.is_empty(), "no latency readings in {secs} s");
    ms.sort_by(f64::total_cmp);
    Ok((percentile(&ms, 0.5), percentile(&ms, 0.95), ms.len()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn webkit_session_runs_scripts_and_has_mse_but_no_webrtc() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let browser = Browser::launch_webkit(WebKitOptions::default())?;
    browser.goto("data:text/html,<title>t</title><p id=p>hello</p>")?;
    let text = browser.execute(
        "return document.getElementById('p').textContent + arguments[0];",
        &[Value::from("!")],
    )?;
    assert_eq!(text, "hello!");
    let features = browser.execute(
        "return { rtc: typeof RTCPeerConnection,
                  mse: !!(window.MediaSource || window.ManagedMediaSource),
                  h264: (window.MediaSource || window.ManagedMediaSource)
                      .isTypeSupported('video/mp4; codecs=\"avc1.42e01f\"') };",
        &[],
    )?;
    // The premise of the MSE fallback test: if WebKitGTK gains WebRTC, that test no longer
    // proves the fallback and must pick another browser.
    assert_eq!(features["rtc"], "undefined", "{features}");
    assert_eq!(features["mse"], true, "{features}");
    assert_eq!(
        features["h264"], true,
        "no H.264 for MSE (GStreamer's libav?): {features}"
    );
    let png = browser.screenshot()?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    Ok(())
}

/// (a) WebKitGTK has no RTCPeerConnection: the page, opened without `?mode`, plays over MSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webkit_plays_the_camera_through_the_mse_fallback() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("webkit_plays_the_camera_through_the_mse_fallback") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = webkit().await?;
    let result = on_page(&browser, "mse-webkit-failure.png", move |b| {
        b.goto(&url)?;
        let s = assert_mse_path(b)?;
        ensure!(s["hasWebRTC"] == false, "WebKitGTK with WebRTC? {s}");
        assert_playing(b, 640, 360)?;
        let s = page_state(b)?;
        let log = b.execute("return window.sightline.log.join('\\n');", &[])?;
        ensure!(
            log.as_str()
                .is_some_and(|l| l.contains("over MSE (no WebRTC in this browser)")),
            "the activity log does not say why MSE: {log}"
        );
        b.save_screenshot("mse-webkit.png")?;
        b.wait_for("return window.sightline.stats.barcodeSeen;", TIMEOUT)
            .context("no barcode read off the MSE video in WebKitGTK")?;
        let (p50, p95, n) = latency_over(b, 5)?;
        eprintln!(
            "MSE in WebKitGTK (Xvfb, software): glass-to-glass p50 {p50:.0} ms, p95 {p95:.0} ms \
             ({n} readings); first frame {} ms after opening the MSE socket; {s}",
            s["stats"]["firstFrameMs"]
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// (b) Chromium with `?mode=mse`: MSE in the one <video>, live; prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_over_mse_when_asked_and_stays_live() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("chromium_plays_over_mse_when_asked_and_stays_live") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    server
        .wait_camera_online("cam", harness::CAMERA_ONLINE_TIMEOUT)
        .await?;
    let url = format!("{}/?mode=mse", server.http_url());
    let browser = chromium().await?;
    let tag = barcode::tag_for("cam");
    let result = on_page(&browser, "mse-chromium-failure.png", move |b| {
        b.goto(&url)?;
        assert_mse_path(b)?;
        assert_playing(b, 640, 360)?;
        let s = page_state(b)?;
        ensure!(s["pcState"].is_null(), "a peer connection in MSE mode: {s}");
        // The stats panel: MSE figures.
        b.wait_for(
            "const s = window.sightline.stats;
             return s.bufferedAheadMs != null && s.bytesReceived > 0 && s.framesDecoded > 0
                 && s.fps > 0 && s.firstFrameMs != null
                 && document.querySelector('[data-stat=\"buffer\"]').textContent.endsWith(' ms');",
            TIMEOUT,
        )
        .context("no MSE figures in the stats")?;

        // Latency from the barcode, read off the MSE video: collect ~10 s of readings.
        b.wait_for(
            &format!(
                "const s = window.sightline.stats;
                 return s.barcodeSeen && s.barcodeTag === {tag} && s.latencyMs != null;"
            ),
            TIMEOUT,
        )
        .context("no glass-to-glass latency from the barcode over MSE")?;
        let before = b.execute("return window.sightline.latencyReadings.length;", &[])?;
        std::thread::sleep(Duration::from_secs(10));
        let readings = b.execute("return window.sightline.latencyReadings;", &[])?;
        let stats = b.execute("return window.sightline.stats;", &[])?;
        let state = page_state(b)?;
        let start = before.as_u64().unwrap_or(0) as usize;
        let mut ms: Vec<f64> = readings
            .as_array()
            .map(|a| a.iter().skip(start).filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        ensure!(ms.len() >= 10, "only {} latency readings in 10 s", ms.len());
        ms.sort_by(f64::total_cmp);
        let (p50, p95) = (percentile(&ms, 0.5), percentile(&ms, 0.95));
        eprintln!(
            "MSE in Chromium: glass-to-glass p50 {p50:.0} ms, p95 {p95:.0} ms ({} readings); \
             first frame {} ms after opening the MSE socket, {} ms after page load; \
             buffered ahead {} ms, {} live-edge jumps, {} frames decoded, {} dropped, {} bytes",
            ms.len(),
            stats["firstFrameMs"],
            stats["firstFrameSinceLoadMs"],
            stats["bufferedAheadMs"],
            stats["liveJumps"],
            stats["framesDecoded"],
            state["dropped"],
            stats["bytesReceived"],
        );
        ensure!(
            (0.0..10_000.0).contains(&p50),
            "same-machine latency {p50} ms is not believable"
        );
        // Live, not a growing buffer: little ahead of the playhead, little kept behind it.
        ensure!(
            stats["bufferedAheadMs"].as_u64().is_some_and(|a| a < 1000),
            "too much buffered ahead: {stats}"
        );
        ensure!(
            state["bufferedS"].as_f64().is_some_and(|s| s < 10.0),
            "played video is not trimmed: {state}"
        );
        b.save_screenshot("mse-chromium.png")?;
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// (c) Chromium without `?mode`: WebRTC as before, and no fallback once frames play.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_without_mode_still_plays_over_webrtc() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("chromium_without_mode_still_plays_over_webrtc") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;
    let result = on_page(&browser, "mse-webrtc-failure.png", move |b| {
        b.goto(&url)?;
        assert_playing(b, 640, 360)?;
        let s = page_state(b)?;
        ensure!(
            s["path"] == "webrtc" && s["shownPath"] == "webrtc" && s["srcObject"] == true,
            "not WebRTC: {s}"
        );
        // Past the fallback deadline: still WebRTC. (The WebRTC latency meanwhile, to compare.)
        b.wait_for("return window.sightline.stats.barcodeSeen;", TIMEOUT)?;
        let (p50, p95, n) = latency_over(b, 9)?;
        eprintln!(
            "WebRTC in Chromium: glass-to-glass p50 {p50:.0} ms, p95 {p95:.0} ms ({n} readings)"
        );
        let s = page_state(b)?;
        ensure!(
            s["path"] == "webrtc" && s["fellBack"] == false && s["mseState"].is_null(),
            "fell back although WebRTC played: {s}"
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// A peer connection that never learns the SFU's address (no candidates in the answer, none
/// trickled): it never connects, as on a network that blocks UDP.
const NO_REMOTE_CANDIDATES: &str = r#"
    const Real = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Real {
      setRemoteDescription(d) {
        const sdp = d.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate')).join('\r\n');
        return super.setRemoteDescription({ type: d.type, sdp });
      }
      addIceCandidate() { return Promise.resolve(); }
    };
"#;

/// (e) Chromium whose WebRTC cannot connect: no frame within 8 s, so the page falls back to
/// MSE by itself and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_falls_back_to_mse_when_webrtc_shows_nothing() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("chromium_falls_back_to_mse_when_webrtc_shows_nothing") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;
    let result = on_page(&browser, "mse-fallback-failure.png", move |b| {
        b.add_init_script(NO_REMOTE_CANDIDATES)?;
        b.goto(&url)?;
        b.wait_for(
            "return window.sightline && window.sightline.path === 'webrtc';",
            TIMEOUT,
        )
        .context("the page did not try WebRTC first")?;
        b.wait_for(
            "return window.sightline.path === 'mse' && window.sightline.fellBack;",
            TIMEOUT,
        )
        .context("no fallback to MSE")?;
        assert_mse_path(b)?;
        assert_playing(b, 640, 360)?;
        let log = b.execute("return window.sightline.log.join('\\n');", &[])?;
        ensure!(
            log.as_str().is_some_and(
                |l| l.contains("switching to MSE") && l.contains("over MSE (WebRTC fallback)")
            ),
            "the activity log does not tell of the fallback: {log}"
        );
        let s = page_state(b)?;
        ensure!(
            s["pcState"].is_null(),
            "the peer connection is still there: {s}"
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// (d) A `control` token over MSE: the panel works on the MSE socket (pause is not offered
/// there), and a resolution change reaches the <video> through a new init segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_panel_works_over_mse_with_a_control_token() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("control_panel_works_over_mse_with_a_control_token") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, true).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let token = server.token(Role::Control, "cam").unwrap();
    let url = format!("{}/?mode=mse&token={token}", server.http_url());
    let browser = chromium().await?;
    let result = on_page(&browser, "mse-control-failure.png", move |b| {
        b.goto(&url)?;
        assert_mse_path(b)?;
        assert_playing(b, 640, 360)?;
        b.wait_for(
            "const c = window.sightline.control;
             return c.channel === 'open' && c.mayControl === true
                 && c.capabilities.includes('width') && c.settings !== null
                 && document.querySelectorAll('#control [data-setting]').length
                      === c.capabilities.length;",
            TIMEOUT,
        )
        .context("no control panel over the MSE socket")?;
        let ui = b.execute(
            "const p = document.querySelector('#control button[data-action=\"pause\"]');
             return { hidden: p.hidden, disabled: p.disabled,
                      pauseAllowed: window.sightline.control.pauseAllowed,
                      badge: document.getElementById('ctl-state').textContent };",
            &[],
        )?;
        ensure!(
            ui["hidden"] == true && ui["disabled"] == true && ui["pauseAllowed"] == false,
            "pause offered over MSE: {ui}"
        );
        ensure!(ui["badge"] == "control: yes", "{ui}");

        b.execute("window.__noReload = 42;", &[])?;
        let target = b.execute(CHANGE_RESOLUTION, &[])?;
        ensure!(target.get("error").is_none(), "{target}");
        let (w, h) = (
            target["width"].as_u64().unwrap_or(0),
            target["height"].as_u64().unwrap_or(0),
        );
        b.wait_for(
            "const r = window.sightline.control.lastResponse;
             return r && r.command === 'update_settings' && (r.success || r.error);",
            TIMEOUT,
        )?;
        let c = b.execute("return window.sightline.control;", &[])?;
        ensure!(
            c["lastResponse"]["success"] == true,
            "resolution change refused over MSE: {}",
            c["lastResponse"]
        );
        let frames_before = page_state(b)?["frames"].as_u64().unwrap_or(0);
        assert_playing(b, w, h).context("the MSE video never changed size")?;
        let s = page_state(b)?;
        ensure!(
            s["frames"].as_u64() > Some(frames_before) && s["path"] == "mse",
            "{s}"
        );
        let mark = b.execute("return window.__noReload;", &[])?;
        ensure!(mark == 42, "the page reloaded");
        b.save_screenshot("mse-control.png")?;
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// (f) Over MSE the camera goes away and comes back (a new publisher: new encoder, new
/// timestamps): the page's MSE player reconnects or carries on by itself, and new frames
/// play in the same <video> without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mse_video_comes_back_after_the_camera_restarts() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("mse_video_comes_back_after_the_camera_restarts") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/?mode=mse", server.http_url());
    let browser = chromium().await?;
    on_page(&browser, "mse-restart-start-failure.png", move |b| {
        b.goto(&url)?;
        assert_mse_path(b)?;
        assert_playing(b, 640, 360)?;
        b.execute("window.__noReload = 42;", &[])?;
        Ok(())
    })
    .await?;
    cam.stop().await;
    server
        .wait_camera_offline("cam", harness::CAMERA_ONLINE_TIMEOUT)
        .await?;
    let stalled = on_page(&browser, "mse-restart-gone-failure.png", |b| {
        std::thread::sleep(Duration::from_secs(2));
        let a = page_state(b)?["frames"].as_u64().unwrap_or(0);
        std::thread::sleep(Duration::from_secs(1));
        let z = page_state(b)?["frames"].as_u64().unwrap_or(0);
        ensure!(
            a == z,
            "frames kept coming with the camera gone ({a} → {z})"
        );
        Ok(z)
    })
    .await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let result = on_page(&browser, "mse-restart-back-failure.png", move |b| {
        b.wait_for(
            &format!("return window.__shown > {stalled} + {MIN_FRAMES};"),
            TIMEOUT,
        )
        .context("no new frames over MSE after the camera came back")?;
        assert_playing(b, 640, 360)?;
        let s = page_state(b)?;
        ensure!(s["path"] == "mse", "{s}");
        let mark = b.execute("return window.__noReload;", &[])?;
        ensure!(mark == 42, "the page reloaded");
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

#[test]
fn percentiles_pick_the_right_reading() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), 51.0);
    assert_eq!(percentile(&v, 0.95), 95.0);
    assert_eq!(percentile(&[7.0], 0.95), 7.0);
}

/// (g) A page whose main thread was busy for most of a second (a phone doing something else,
/// a long script) gets the frames that queued up meanwhile all at once, so it is behind the
/// live edge. It catches up and keeps showing frames: it must not stall, however far into
/// the camera's keyframe interval (10 s here) that happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_page_catches_up_and_keeps_playing() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("a_busy_page_catches_up_and_keeps_playing") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/?mode=mse", server.http_url());
    let browser = chromium().await?;
    let result = on_page(&browser, "mse-busy-failure.png", move |b| {
        b.goto(&url)?;
        assert_mse_path(b)?;
        assert_playing(b, 640, 360)?;
        // Four rounds 3 s apart: the last lands late in the keyframe interval, where a jump
        // to the live edge has the most to decode.
        let mut resumed_ms = Vec::new();
        for round in 1..=4 {
            b.execute(
                "const until = performance.now() + 800; while (performance.now() < until) {}",
                &[],
            )?;
            let after = page_state(b)?;
            let mut waited = 0;
            while page_state(b)?["frames"].as_u64() <= after["frames"].as_u64().map(|f| f + 3) {
                ensure!(
                    waited < 3000,
                    "round {round}: no frame shown for 3 s after a busy 0.8 s: {}; log: {}",
                    playback(&page_state(b)?),
                    recent_log(b)
                );
                std::thread::sleep(Duration::from_millis(100));
                waited += 100;
            }
            resumed_ms.push(waited);
            std::thread::sleep(Duration::from_secs(2));
        }
        let s = page_state(b)?;
        eprintln!(
            "MSE after a busy 0.8 s, frames again within (ms, 100 ms steps): {resumed_ms:?}; \
             {} live-edge jumps",
            s["stats"]["liveJumps"]
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}
