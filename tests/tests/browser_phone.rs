//! The page on a phone, in a real headless Chromium with a 390×844 mobile viewport:
//!
//! - Every control a thumb may hit (buttons, inputs, selects, labels, anything with a pointer
//!   cursor) is at least 44×44 CSS px, the camera list, the control panel, presets and
//!   settings included; the fullscreen button puts the video's container in full screen and
//!   takes it out again, by click and by keyboard.
//! - A browser that refuses to start the video without a gesture (iOS Low Power Mode, some
//!   WebViews: play() rejects with NotAllowedError): the page shows "Tap to play", the video
//!   stays still, and one real tap on the button starts it, over WebRTC and over MSE.
//!
//! Needs Debian's `chromium` + `chromium-driver` and the test network namespace (Chromium's
//! WebRTC ignores loopback): `scripts/netns cargo test --release --offline -p
//! sightline-tests --test browser_phone`. Outside it the tests print SKIPPED and pass.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use sightline_tests::browser::{netns_or_skip, Browser};
use sightline_tests::harness::LOOPBACK;
use sightline_tests::page::{
    assert_decoding, chromium, on_page, page_camera, page_server, video_state, PLAY_TIMEOUT,
};
use tokio::sync::{Mutex, MutexGuard};

/// An iPhone 12-15 screen in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
/// Apple's and WCAG 2.5.5's smallest comfortable touch target, CSS px.
const MIN_TARGET: f64 = 44.0;

/// One browser at a time: the tests share two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Every visible element a person can hit, with its size: form controls, labels of
/// controls, links, ARIA buttons and anything whose own cursor says "click me" (not the
/// children of something already counted). Returns `{count, offenders, ids}`.
const HIT_AREAS: &str = r#"
    const MIN = arguments[0];
    const controls = 'button, input, select, textarea, a[href], label[for], summary, '
      + '[role="button"], [role="switch"], [tabindex]:not([tabindex="-1"])';
    const name = (el) => el.tagName.toLowerCase()
      + (el.id ? `#${el.id}` : '')
      + (el.type ? `[type=${el.type}]` : '')
      + (el.dataset.action ? `[data-action=${el.dataset.action}]` : '')
      + (el.dataset.id ? `[data-id=${el.dataset.id}]` : '')
      + ` "${(el.getAttribute('aria-label') || el.textContent || el.value || '').trim().slice(0, 30)}"`;
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
    };
    const hits = new Set([...document.querySelectorAll(controls)].filter(visible));
    for (const el of document.body.querySelectorAll('*')) {
      if (hits.has(el) || !visible(el) || getComputedStyle(el).cursor !== 'pointer') continue;
      if (el.parentElement && getComputedStyle(el.parentElement).cursor === 'pointer') continue;
      hits.add(el);
    }
    const offenders = [];
    for (const el of hits) {
      const r = el.getBoundingClientRect();
      // A rounding hair below 44 (43.99) is 44 on screen.
      if (r.width < MIN - 0.05 || r.height < MIN - 0.05) {
        offenders.push(`${name(el)}: ${r.width.toFixed(1)}×${r.height.toFixed(1)}`);
      }
    }
    return { count: hits.size, offenders, ids: [...hits].map(name) };
"#;

/// The test camera's settings have no switch (its on/off settings are unsupported): add a
/// panel with settings of each kind (slider, switch, choice, text, unsupported), built by the
/// page's own module where the page puts its panel.
const ADD_SETTINGS: &str = r#"
    const done = arguments[arguments.length - 1];
    import('/controlpanel.js').then(({ SettingsPanel }) => {
      const box = document.createElement('div');
      box.className = 'settings';
      box.id = 'test-settings';
      document.querySelector('#control .apply-bar').before(box);
      const panel = new SettingsPanel(box);
      panel.setCapabilities({
        bitrate: { type: 'int', min: 100000, max: 8000000, step: 1000, apply: 'live' },
        auto_exposure: { type: 'bool', apply: 'live' },
        fps: { type: 'enum', choices: ['15', '30'], apply: 'keyframe' },
        camera_name: { type: 'string', max_len: 32, apply: 'live' },
        exposure_time: { type: 'unsupported', reason: 'not on this camera' },
      });
      panel.setSettings({ bitrate: 2000000, auto_exposure: true, fps: 30, camera_name: 'cam' });
      panel.setEnabled(true);
      done(box.querySelectorAll('.setting-input').length);
    }, (e) => done(`import failed: ${e}`));
"#;

fn fullscreen_state(b: &Browser) -> anyhow::Result<Value> {
    b.execute(
        "const f = document.fullscreenElement;
         return { element: f ? f.className : null, page: window.sightline.fullscreen,
                  label: document.getElementById('fullscreen').getAttribute('aria-label') };",
        &[],
    )
}

fn wait_fullscreen(b: &Browser, on: bool) -> anyhow::Result<()> {
    // The button's label follows on `fullscreenchange`, a moment after the element is set.
    let check = if on {
        "return document.fullscreenElement !== null && window.sightline.fullscreen
             && document.getElementById('fullscreen').dataset.active === 'true';"
    } else {
        "return document.fullscreenElement === null && !window.sightline.fullscreen
             && document.getElementById('fullscreen').dataset.active === 'false';"
    };
    b.wait_for(check, Duration::from_secs(5))
        .with_context(|| format!("full screen never turned {}", if on { "on" } else { "off" }))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_controls_are_44_px_and_fullscreen_toggles() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("phone_controls_are_44_px_and_fullscreen_toggles") else {
        return Ok(());
    };
    let _one = serial().await;
    // The page on loopback: a local viewer may control, so the panel is enabled.
    let server = page_server(LOOPBACK, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;

    let result = on_page(&browser, "phone-failure.png", move |b| {
        b.set_viewport(PHONE.0, PHONE.1, true)?;
        b.goto(&url)?;
        assert_decoding(b, 640, 360)?;
        // The control panel as it is with a camera: channel open, buttons enabled.
        b.wait_for(
            "return window.sightline.control.channel === 'open';",
            PLAY_TIMEOUT,
        )
        .context("control channel never opened")?;
        let rows = b.execute_async(ADD_SETTINGS, &[])?;
        ensure!(rows == 5, "settings rows not built: {rows}");
        std::thread::sleep(Duration::from_millis(300));
        b.assert_fits_width(PHONE.0)?;

        let hits = b.execute(HIT_AREAS, &[Value::from(MIN_TARGET)])?;
        let offenders = hits["offenders"].as_array().cloned().unwrap_or_default();
        ensure!(
            offenders.is_empty(),
            "{} of {} controls are smaller than {MIN_TARGET}×{MIN_TARGET} px on a {}×{} phone:\n  {}",
            offenders.len(),
            hits["count"],
            PHONE.0,
            PHONE.1,
            offenders
                .iter()
                .map(|o| o.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        // The check saw what it should: the camera list, the panel, presets, settings and
        // the fullscreen button.
        let ids = hits["ids"].to_string();
        for needle in [
            "[data-id=cam]",
            "button#fullscreen",
            "[data-action=pause]",
            "[data-action=restart_camera]",
            "[data-action=apply-preset]",
            "[data-action=save-preset]",
            "[type=select-one]",
            "[type=range]",
            "[type=checkbox]",
            "[type=text]",
            "label",
        ] {
            ensure!(ids.contains(needle), "no `{needle}` among the controls checked: {ids}");
        }
        b.save_screenshot("phone.png")?;

        // Full screen by click: the video's container, so the button stays on top.
        let shown = b.execute(
            "const f = document.getElementById('fullscreen');
             return !f.hidden && f.tagName === 'BUTTON' && f.tabIndex >= 0;",
            &[],
        )?;
        ensure!(shown == true, "no usable fullscreen button");
        ensure!(
            fullscreen_state(b)?["label"] == "Full screen",
            "{}",
            fullscreen_state(b)?
        );
        b.click("#fullscreen")?;
        wait_fullscreen(b, true)?;
        let state = fullscreen_state(b)?;
        ensure!(
            state["element"] == "screen" && state["label"] == "Exit full screen",
            "full screen is not the video's container: {state}"
        );
        b.save_screenshot("phone-fullscreen.png")?;
        b.click("#fullscreen")?;
        wait_fullscreen(b, false)?;
        ensure!(
            fullscreen_state(b)?["label"] == "Full screen",
            "{}",
            fullscreen_state(b)?
        );

        // And by keyboard: Enter on the focused button, both ways.
        b.send_keys("#fullscreen", "\u{E007}")?;
        wait_fullscreen(b, true).context("Enter on the fullscreen button")?;
        b.send_keys("#fullscreen", "\u{E007}")?;
        wait_fullscreen(b, false).context("Enter again")?;
        // Still playing after all that.
        assert_decoding(b, 640, 360)
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// Before the page's scripts: play() is refused with NotAllowedError, as iOS in Low Power
/// Mode or a gesture-requiring WebView does, until the page has seen a real (trusted) click
/// or touch. The `autoplay` attribute is refused the same way: a `play` that no gesture
/// allowed is paused at once. `window.__refusedPlays` counts the refusals.
const REFUSE_AUTOPLAY: &str = r#"
    (() => {
      let gesture = false;
      window.__refusedPlays = 0;
      const mark = (e) => { if (e.isTrusted) gesture = true; };
      addEventListener('pointerdown', mark, true);
      addEventListener('click', mark, true);
      const play = HTMLMediaElement.prototype.play;
      HTMLMediaElement.prototype.play = function () {
        if (gesture) return play.call(this);
        window.__refusedPlays++;
        return Promise.reject(new DOMException(
          'play() can only be initiated by a user gesture (test)', 'NotAllowedError'));
      };
      document.addEventListener('play', (e) => {
        if (!gesture) e.target.pause();
      }, true);
    })();
"#;

/// Load `url` in a browser that refuses autoplay: the page must offer "Tap to play" and keep
/// still; one tap must start the video.
fn tap_to_play(b: &Browser, url: &str, path: &str) -> anyhow::Result<()> {
    b.goto(url)?;
    b.wait_for(
        "const t = document.getElementById('tap-to-play');
         const r = t.getBoundingClientRect();
         return window.sightline.tapToPlay && !t.hidden && r.width >= 44 && r.height >= 44;",
        PLAY_TIMEOUT,
    )
    .context("no tap-to-play button")?;
    // The media is there (the browser has a picture to show), it just may not play.
    b.wait_for(
        "return document.querySelector('video').readyState >= 1;",
        PLAY_TIMEOUT,
    )
    .context("no media behind the tap-to-play button")?;
    let page_path = b.execute("return window.sightline.path;", &[])?;
    ensure!(page_path == path, "playing over {page_path}, not {path}");
    let refused = b.execute("return window.__refusedPlays;", &[])?;
    ensure!(
        refused.as_u64() > Some(0),
        "the page never called play(): {refused}"
    );
    b.save_screenshot(&format!("phone-tap-to-play-{path}.png"))?;

    // Refused means still: the clock stands while the button waits. A paused MSE video may
    // still decode a frame or two at its position as data comes in (seen once: 3 → 4), so
    // the frame count may creep, but not by the ~60 frames 2 s of playing would add.
    let before = video_state(b)?;
    std::thread::sleep(Duration::from_secs(2));
    let after = video_state(b)?;
    let frames = |s: &Value| s["frames"].as_u64().unwrap_or_default();
    ensure!(
        after["paused"] == true
            && after["time"] == before["time"]
            && frames(&after) <= frames(&before) + 2,
        "video plays with autoplay refused: {before} → {after}"
    );
    let log = b.execute("return window.sightline.log.join('\\n');", &[])?;
    ensure!(
        log.as_str()
            .is_some_and(|l| l.contains("NotAllowedError") && l.contains("Tap to play")),
        "the activity log does not say why the button shows:\n{}",
        log.as_str().unwrap_or_default()
    );

    // A real tap (trusted pointer events) starts it and the button goes.
    b.click("#tap-to-play")?;
    assert_decoding(b, 640, 360).context("after the tap")?;
    let state = b.execute(
        "return { page: window.sightline.tapToPlay,
                  hidden: document.getElementById('tap-to-play').hidden,
                  log: window.sightline.log.join('\\n') };",
        &[],
    )?;
    ensure!(
        state["page"] == false && state["hidden"] == true,
        "tap-to-play still shown after playing: {state}"
    );
    ensure!(
        state["log"]
            .as_str()
            .is_some_and(|l| l.contains("playing after a tap")),
        "the activity log does not tell of the tap: {state}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_autoplay_shows_tap_to_play_and_a_tap_plays() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("refused_autoplay_shows_tap_to_play_and_a_tap_plays") else {
        return Ok(());
    };
    let _one = serial().await;
    let server = page_server(ip, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let base = server.http_url();
    let browser = chromium().await?;

    let result = on_page(&browser, "phone-tap-failure.png", move |b| {
        b.set_viewport(PHONE.0, PHONE.1, true)?;
        b.add_init_script(REFUSE_AUTOPLAY)?;
        // Each page load is a new document: the refusal starts afresh, gesture forgotten.
        tap_to_play(b, &format!("{base}/"), "webrtc").context("WebRTC")?;
        tap_to_play(b, &format!("{base}/?mode=mse"), "mse").context("MSE")
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}
