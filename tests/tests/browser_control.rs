//! The web control room in a real headless Chromium.
//!
//! - The page's own modules, in the browser that runs them: the control-protocol parser reads
//!   what the Rust protocol crate writes and refuses malformed messages; the barcode reader
//!   reads a stamp the publisher's `barcode::burn` wrote and rejects damaged strips; the
//!   settings panel builds the right control for every kind of capability and puts an error
//!   next to the control it is about. (No WebRTC: runs anywhere Chromium does.)
//! - With a live camera (inside the test network namespace): the `control` data channel
//!   opens and the SFU's welcome says a loopback viewer may control; the stats panel shows a
//!   live fps, RTT, decode time and the barcode's glass-to-glass latency; pause and resume
//!   stop and restart this viewer's video; the page fits a 375 px phone screen. Presets are
//!   saved, renamed and deleted from the page (built-in ones cannot be), and Disconnect
//!   tears the viewer down at the server until Connect.
//! - With tokens on the server: a `view` token is view-only (panel disabled, pause still
//!   allowed), a `control` token controls, no token or a forged one is refused.
//! - Ignored until the publisher opens its control channel: the panel appears from the
//!   capabilities and a resolution change reaches `videoWidth` without a reload.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use base64::Engine as _;
use serde_json::{json, Value};
use sightline_protocol::control::{
    ApplyMode, CameraSettings, Capabilities, Capability, ControlError, ControlErrorCode,
    ControlMessage, ControlPath, MotionEvent, MotionPhase, RateLimitInfo, Response, ScheduleEntry,
    StateUpdate, StreamStatus, Welcome,
};
use sightline_publisher::barcode::{self, Stamp};
use sightline_publisher::image::I420Frame;
use sightline_publisher::NamedSource;
use sightline_signaling::auth::Role;
use sightline_tests::browser::{netns_or_skip, Browser};
use sightline_tests::harness::{TestPublisher, TestServer, LOOPBACK};
use sightline_tests::page::{chromium, on_page, page_camera, page_server, CHANGE_RESOLUTION};

/// What the page must do within this time: a cold Chromium on a loaded 2-core machine is slow.
const TIMEOUT: Duration = Duration::from_secs(25);

/// Run a page script that calls `arguments[arguments.length - 1]` with its result; a thrown
/// error comes back as `{thrown}` and fails the test with the page's stack.
fn run_async(browser: &Browser, body: &str, args: &[Value]) -> anyhow::Result<Value> {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         const args = Array.from(arguments).slice(0, -1);
         (async (args) => {{ {body} }})(args)
           .then(done, (e) => done({{ thrown: String((e && e.stack) || e) }}));"
    );
    let v = browser.execute_async(&script, args)?;
    if let Some(t) = v.get("thrown") {
        bail!("page script threw: {t}");
    }
    Ok(v)
}

fn frames(browser: &Browser) -> anyhow::Result<u64> {
    Ok(browser
        .execute(
            "return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames;",
            &[],
        )?
        .as_u64()
        .unwrap_or(0))
}

fn wait_decoding(browser: &Browser, width: u64, height: u64) -> anyhow::Result<()> {
    browser
        .wait_for(
            &format!(
                "const v = document.querySelector('video');
                 return v.videoWidth === {width} && v.videoHeight === {height}
                     && v.getVideoPlaybackQuality().totalVideoFrames > 5;"
            ),
            TIMEOUT,
        )
        .with_context(|| format!("video never played at {width}x{height}"))?;
    Ok(())
}

fn control(browser: &Browser) -> anyhow::Result<Value> {
    browser.execute("return window.sightline.control;", &[])
}

// ---- the page's modules, checked in the browser -------------------------------------------

/// Messages as the Rust protocol crate writes them, for the page's parser.
fn rust_control_messages() -> Vec<String> {
    let welcome = ControlMessage::Welcome(Welcome {
        viewer: "peer-7".into(),
        camera: "cam".into(),
        may_control: true,
        rate_limit: RateLimitInfo {
            per_second: 10.0,
            burst: 20,
        },
    });
    let mut caps = Capabilities::default();
    caps.set(
        "bitrate",
        Capability::Int {
            min: 100_000,
            max: 8_000_000,
            step: 1000,
            apply: ApplyMode::Live,
        },
    )
    .set(
        "ai_confidence",
        Capability::Float {
            min: 0.0,
            max: 1.0,
            apply: ApplyMode::Live,
        },
    )
    .set_on(
        "auto_exposure",
        Capability::Bool {
            apply: ApplyMode::Live,
        },
        ControlPath::Hardware,
    )
    .set(
        "fps",
        Capability::Enum {
            choices: vec!["15".into(), "30".into()],
            apply: ApplyMode::Live,
        },
    )
    .set(
        "camera_name",
        Capability::Text {
            max_len: 64,
            apply: ApplyMode::Live,
        },
    )
    .set(
        "width",
        Capability::Int {
            min: 160,
            max: 1920,
            step: 16,
            apply: ApplyMode::Keyframe,
        },
    )
    .set(
        "camera_index",
        Capability::Unsupported {
            reason: Some("the test pattern has no cameras".into()),
        },
    );
    let state = ControlMessage::State(StateUpdate {
        version: 12,
        settings: CameraSettings {
            bitrate: Some(1_500_000),
            fps: Some(30),
            width: Some(640),
            ..CameraSettings::default()
        },
        status: StreamStatus {
            streaming: true,
            preset: Some("balanced".into()),
            presets: vec!["low_bandwidth".into(), "balanced".into(), "hd".into()],
            source: Some("test-pattern".into()),
            sources: vec!["porch".into(), "garden".into()],
            source_name: Some("garden".into()),
            schedule: vec![ScheduleEntry {
                at: "20:00".into(),
                preset: "hd".into(),
            }],
        },
        by: Some("peer-3".into()),
        changed: vec!["bitrate".into()],
        timestamp: 17,
    });
    let refused = ControlMessage::from(Response::refused(
        Some("w9".into()),
        ControlError::field(
            ControlErrorCode::InvalidValue,
            "bitrate",
            "50000000 is outside 100000..=8000000",
        ),
    ));
    vec![
        welcome.to_json(),
        ControlMessage::Capabilities(caps).to_json(),
        state.to_json(),
        refused.to_json(),
        ControlMessage::Motion(MotionEvent {
            phase: MotionPhase::Start,
            region: [32, 48, 64, 40],
            score: 0.625,
            ts: 1_700_000_000_123,
        })
        .to_json(),
    ]
}

const MODULE_CHECKS: &str = r#"
    const [messages, stripB64, width, strip] = args;
    const ctl = await import('/control.js');
    const bc = await import('/barcode.js');
    const cp = await import('/controlpanel.js');

    // Control messages from Rust, and malformed ones.
    const parsed = messages.map((m) => ctl.parseControlMessage(m));
    const malformed = ['nope', '[]', '{}', '{"v":2,"type":"state"}', '{"v":1,"type":7}',
      '{"v":1,"type":"dance"}', '{"v":1,"type":"state","settings":{}}',
      '{"v":1,"type":"welcome","viewer":"p","camera":"c","may_control":"yes"}',
      '{"v":1,"type":"response","success":false,"message":"x"}',
      '{"v":1,"type":"capabilities","settings":[]}', 'x'.repeat(20000),
      '{"v":1,"type":"motion","phase":"maybe","region":[0,0,1,1],"score":0.5}',
      '{"v":1,"type":"motion","phase":"start","region":[0,0,1],"score":0.5}',
      '{"v":1,"type":"motion","phase":"end","region":[0,0,1,1],"score":2}']
      .map((m) => ctl.parseControlMessage(m).error || null);
    const binary = ctl.parseControlMessage(new ArrayBuffer(4)).error || null;

    // The barcode: luma from Rust, as the RGB the browser would decode it to.
    const y = Uint8Array.from(atob(stripB64), (c) => c.charCodeAt(0));
    const rgbaOf = (luma) => {
      const out = new Uint8ClampedArray(luma.length * 4);
      luma.forEach((l, i) => {
        const full = Math.round(((l - 16) * 255) / 219);
        out[i * 4] = out[i * 4 + 1] = out[i * 4 + 2] = full;
        out[i * 4 + 3] = 255;
      });
      return out;
    };
    const rgba = rgbaOf(y);
    const stamp = bc.readStamp(rgba, width, strip);
    const flipped = Uint8Array.from(y);
    // Invert the block of bit 5 (first row): the CRC must catch it.
    for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) {
      const i = r * width + 5 * 16 + c;
      flipped[i] = flipped[i] > 128 ? 16 : 235;
    }
    const grey = new Uint8Array(y.length).fill(128);
    const black = new Uint8Array(y.length).fill(16);
    const noisy = Uint8Array.from(y, (v, i) => ((i * 7919) % 251 > 125 ? 235 : 16));
    const damaged = {
      flipped: bc.readStamp(rgbaOf(flipped), width, strip),
      grey: bc.readStamp(rgbaOf(grey), width, strip),
      black: bc.readStamp(rgbaOf(black), width, strip),
      noisy: bc.readStamp(rgbaOf(noisy), width, strip),
      narrow: bc.readStamp(rgba, 8, strip),
      short: bc.readStamp(rgba.subarray(0, rgba.length / 2), width, strip),
      tooLow: bc.readStamp(rgba, width, strip - 1),
      badWidth: bc.readStamp(rgba, 12.5, strip),
      none: bc.readStamp(null, width, strip),
    };

    // The settings panel built from the Rust capabilities.
    const caps = parsed[1].message.settings;
    const edits = [];
    const host = document.createElement('div');
    document.body.append(host);
    const panel = new cp.SettingsPanel(host, { onEdit: (n, v, a) => edits.push([n, v, a]) });
    panel.setCapabilities(caps);
    panel.setSettings({ bitrate: 1500000, fps: 30, width: 640, camera_name: 'Porch', auto_exposure: true });
    panel.setEnabled(true);
    const rows = {};
    for (const row of host.querySelectorAll('[data-setting]')) {
      const input = row.querySelector('.setting-input');
      rows[row.dataset.setting] = {
        kind: row.dataset.kind, tag: input.tagName.toLowerCase(), type: input.type || null,
        disabled: input.disabled, hint: row.querySelector('.hint').textContent,
        min: input.min || null, max: input.max || null, step: input.step || null,
        value: input.type === 'checkbox' ? input.checked : input.value,
        reason: row.querySelector('.reason') ? row.querySelector('.reason').textContent : null,
        options: input.tagName === 'SELECT' ? [...input.options].map((o) => o.value) : null,
      };
    }
    const change = (name, set) => {
      const input = host.querySelector(`[data-setting="${name}"] .setting-input`);
      set(input);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new Event('change', { bubbles: true }));
    };
    change('bitrate', (i) => { i.value = '2500000'; });
    change('fps', (i) => { i.value = '15'; });
    change('auto_exposure', (i) => { i.checked = false; });
    const shown = panel.showError('bitrate', 'bitrate: 50000000 is outside 100000..=8000000');
    const missing = panel.showError('zoom', 'nope');
    const errorText = host.querySelector('[data-setting="bitrate"] .field-error');
    const result = {
      parsed, malformed, binary, stamp, damaged, rows, edits, shown, missing,
      errorShown: { text: errorText.textContent, hidden: errorText.hidden },
      order: [...host.querySelectorAll('[data-setting]')].map((r) => r.dataset.setting),
    };
    host.remove();
    return result;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_modules_parse_control_messages_read_barcodes_and_build_the_panel(
) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = format!("{}/", server.http_url());

    // A real stamp burned by the publisher's code into a 640-wide frame.
    let width = 640usize;
    let stamp = Stamp {
        frame: 123_456,
        capture_us: barcode::now_us(),
        tag: barcode::tag_for("cam"),
    };
    let mut frame = I420Frame::black(width as u32, 360);
    barcode::burn(&mut frame, &stamp);
    let strip = barcode::strip_height(width);
    let strip_b64 = base64::engine::general_purpose::STANDARD.encode(&frame.y[..strip * width]);
    let messages: Vec<Value> = rust_control_messages()
        .into_iter()
        .map(Value::from)
        .collect();

    let browser = chromium().await?;
    let r = on_page(&browser, "control-modules-failure.png", move |b| {
        b.goto(&url)?;
        b.wait_for("return !!window.sightline;", TIMEOUT)?;
        run_async(
            b,
            MODULE_CHECKS,
            &[
                Value::from(messages),
                Value::from(strip_b64),
                Value::from(width),
                Value::from(strip),
            ],
        )
    })
    .await?;
    server.shutdown().await;

    // Parsing what Rust writes.
    let p = &r["parsed"];
    for (i, m) in p.as_array().unwrap().iter().enumerate() {
        ensure!(m["error"].is_null(), "message {i} refused: {m}");
    }
    let welcome = &p[0]["message"];
    assert_eq!(
        (
            &welcome["viewer"],
            &welcome["camera"],
            &welcome["may_control"]
        ),
        (&json!("peer-7"), &json!("cam"), &json!(true))
    );
    assert_eq!(welcome["rate_limit"]["per_second"].as_f64(), Some(10.0));
    assert_eq!(welcome["rate_limit"]["burst"], 20);
    let caps = &p[1]["message"]["settings"];
    assert_eq!(
        caps["bitrate"],
        json!({"type":"int","min":100000,"max":8000000,"step":1000,"apply":"live"})
    );
    assert_eq!(caps["ai_confidence"]["type"], "float");
    assert_eq!(caps["fps"]["choices"], json!(["15", "30"]));
    assert_eq!(caps["camera_name"]["max_len"], 64);
    assert_eq!(caps["width"]["apply"], "keyframe");
    assert_eq!(
        caps["camera_index"],
        json!({"type":"unsupported","reason":"the test pattern has no cameras","apply":null})
    );
    let state = &p[2]["message"];
    assert_eq!(state["by"], "peer-3");
    assert_eq!(state["version"], 12);
    assert_eq!(state["changed"], json!(["bitrate"]));
    assert_eq!(state["settings"]["bitrate"], 1_500_000);
    assert_eq!(state["status"]["preset"], "balanced");
    assert_eq!(state["status"]["presets"].as_array().map(Vec::len), Some(3));
    assert_eq!(state["status"]["sources"], json!(["porch", "garden"]));
    assert_eq!(state["status"]["source_name"], "garden");
    assert_eq!(
        state["status"]["schedule"],
        json!([{"at": "20:00", "preset": "hd"}])
    );
    let refused = &p[3]["message"];
    assert_eq!(refused["request_id"], "w9");
    assert_eq!(refused["success"], false);
    assert_eq!(refused["error"]["field"], "bitrate");
    assert_eq!(refused["error"]["code"], "invalid_value");
    let motion = &p[4]["message"];
    assert_eq!(
        motion,
        &json!({"type":"motion","phase":"start","region":[32,48,64,40],"score":0.625,"ts":1_700_000_000_123u64})
    );

    // Malformed messages: every one refused with a reason.
    for (i, e) in r["malformed"].as_array().unwrap().iter().enumerate() {
        ensure!(
            e.as_str().is_some_and(|s| !s.is_empty()),
            "malformed message {i} accepted"
        );
    }
    ensure!(r["binary"].is_string(), "binary message accepted");

    // The barcode, read by the page as the publisher wrote it.
    assert_eq!(r["stamp"]["frame"], stamp.frame);
    assert_eq!(r["stamp"]["captureUs"].as_u64(), Some(stamp.capture_us));
    assert_eq!(r["stamp"]["tag"], stamp.tag);
    for (case, v) in r["damaged"].as_object().unwrap() {
        ensure!(v.is_null(), "damaged strip `{case}` read as {v}");
    }

    // The panel: one row per capability, in the protocol's order, the right control each.
    assert_eq!(
        r["order"],
        json!([
            "width",
            "fps",
            "bitrate",
            "ai_confidence",
            "camera_name",
            "camera_index",
            "auto_exposure"
        ])
    );
    let rows = &r["rows"];
    assert_eq!(rows["bitrate"]["type"], "range");
    assert_eq!(
        (
            &rows["bitrate"]["min"],
            &rows["bitrate"]["max"],
            &rows["bitrate"]["step"]
        ),
        (&json!("100000"), &json!("8000000"), &json!("1000"))
    );
    assert_eq!(rows["bitrate"]["hint"], "applies live");
    assert_eq!(rows["width"]["hint"], "brief keyframe");
    assert_eq!(rows["width"]["value"], "640");
    assert_eq!(rows["ai_confidence"]["type"], "range");
    assert_eq!(rows["auto_exposure"]["type"], "checkbox");
    assert_eq!(
        rows["auto_exposure"]["hint"],
        "applies live · on the camera"
    );
    assert_eq!(
        p[1]["message"]["settings"]["auto_exposure"]["path"],
        "hardware"
    );
    assert_eq!(rows["auto_exposure"]["value"], true);
    assert_eq!(rows["fps"]["tag"], "select");
    assert_eq!(rows["fps"]["options"], json!(["15", "30"]));
    assert_eq!(rows["fps"]["value"], "30");
    assert_eq!(rows["camera_name"]["type"], "text");
    assert_eq!(rows["camera_name"]["value"], "Porch");
    assert_eq!(rows["camera_index"]["disabled"], true);
    assert_eq!(
        rows["camera_index"]["reason"],
        "the test pattern has no cameras"
    );
    for name in ["bitrate", "fps", "auto_exposure", "width", "camera_name"] {
        assert_eq!(rows[name]["disabled"], false, "{name}");
    }
    // Edits come out typed for the wire: numbers for numeric choices, booleans for toggles.
    assert_eq!(
        r["edits"],
        json!([
            ["bitrate", 2_500_000, "live"],
            ["fps", 15, "live"],
            ["auto_exposure", false, "live"]
        ])
    );
    assert_eq!(r["shown"], true);
    assert_eq!(r["missing"], false);
    assert_eq!(
        r["errorShown"],
        json!({"text": "bitrate: 50000000 is outside 100000..=8000000", "hidden": false})
    );
    Ok(())
}

// ---- with a live camera -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_channel_opens_stats_are_live_and_pause_stops_this_viewer() -> anyhow::Result<()> {
    let Some(ip) =
        netns_or_skip("control_channel_opens_stats_are_live_and_pause_stops_this_viewer")
    else {
        return Ok(());
    };
    let server = page_server(LOOPBACK, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;
    let tag = barcode::tag_for("cam");

    let result = on_page(&browser, "control-failure.png", move |b| {
        b.goto(&url)?;
        wait_decoding(b, 640, 360)?;

        // The data channel opened and the SFU welcomed a loopback viewer as a controller.
        b.wait_for(
            "const c = window.sightline.control;
             return c.channel === 'open' && c.welcome !== null;",
            TIMEOUT,
        )
        .context("control channel never opened with a welcome")?;
        let c = control(b)?;
        ensure!(
            c["mayControl"] == true,
            "loopback viewer may not control: {c}"
        );
        ensure!(c["camera"] == "cam", "welcome names another camera: {c}");
        ensure!(
            c["viewer"].as_str().is_some_and(|v| !v.is_empty()),
            "no viewer id: {c}"
        );
        ensure!(
            c["rateLimit"]["per_second"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
            "no rate limit in the welcome: {c}"
        );
        let badge = b.execute(
            "return document.getElementById('ctl-state').textContent;",
            &[],
        )?;
        ensure!(badge == "control: yes", "control badge says {badge}");

        // Live statistics: the panel and window.sightline agree and move.
        b.wait_for(
            "const s = window.sightline.stats;
             const shown = parseInt(document.querySelector('[data-stat=\"fps\"]').textContent, 10);
             return s.fps > 0 && shown > 0 && s.packetsReceived > 0 && s.decodeMs != null
                 && s.rttMs != null && s.freezeCount != null;",
            TIMEOUT,
        )
        .context("stats panel never showed live figures")?;
        // The barcode is read off the picture: our camera's tag, frame numbers moving on.
        b.wait_for(
            &format!(
                "const s = window.sightline.stats;
                 return s.barcodeSeen && s.barcodeTag === {tag} && s.latencyMs != null;"
            ),
            TIMEOUT,
        )
        .context("no glass-to-glass latency from the barcode")?;
        let first = b.execute("return window.sightline.stats;", &[])?;
        std::thread::sleep(Duration::from_millis(1500));
        let later = b.execute("return window.sightline.stats;", &[])?;
        ensure!(
            later["barcodeFrame"].as_u64() > first["barcodeFrame"].as_u64()
                && later["latencySamples"].as_u64() > first["latencySamples"].as_u64(),
            "barcode readings stand still: {first} → {later}"
        );
        let latency = later["latencyMs"].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (0.0..10_000.0).contains(&latency),
            "same-machine latency {latency} ms is not believable"
        );
        let shown = b.execute(
            "return document.querySelector('[data-stat=\"latency\"]').textContent;",
            &[],
        )?;
        ensure!(
            shown.as_str().is_some_and(|s| s.ends_with(" ms")),
            "latency not shown: {shown}"
        );
        b.save_screenshot("control-desktop.png")?;

        // Pause: the SFU stops sending to this viewer alone; the frame counter stands still.
        b.execute(
            "document.querySelector('#control button[data-action=\"pause\"]').click();",
            &[],
        )?;
        b.wait_for(
            "const c = window.sightline.control;
             return c.paused && c.lastResponse && c.lastResponse.command === 'pause'
                 && c.lastResponse.success;",
            TIMEOUT,
        )
        .context("pause was not acknowledged")?;
        let overlay = b.execute(
            "return document.getElementById('overlay').textContent;",
            &[],
        )?;
        ensure!(
            overlay.as_str().is_some_and(|t| t.starts_with("Paused")),
            "overlay says {overlay}"
        );
        std::thread::sleep(Duration::from_millis(800));
        let a = frames(b)?;
        std::thread::sleep(Duration::from_millis(1500));
        let z = frames(b)?;
        ensure!(a == z, "video kept decoding while paused ({a} → {z})");

        // Play: video comes back (from a keyframe the SFU asks for).
        b.execute(
            "document.querySelector('#control button[data-action=\"pause\"]').click();",
            &[],
        )?;
        b.wait_for(
            &format!(
                "return !window.sightline.control.paused && document.querySelector('video')
                     .getVideoPlaybackQuality().totalVideoFrames > {z} + 10;"
            ),
            TIMEOUT,
        )
        .context("video did not come back after play")?;
        let log = b.execute("return window.sightline.log.join('\\n');", &[])?;
        let log = log.as_str().unwrap_or_default();
        for needle in [
            "control channel open",
            "may control cam",
            "pause:",
            "resume:",
        ] {
            ensure!(
                log.contains(needle),
                "activity log lacks `{needle}`:\n{log}"
            );
        }

        // A phone: nothing wider than 375 px.
        b.set_viewport(375, 812, true)?;
        std::thread::sleep(Duration::from_millis(500));
        b.assert_fits_width(375)?;
        b.save_screenshot("control-phone.png")?;
        // Scroll the control panel into view for a second picture.
        b.execute("document.getElementById('control').scrollIntoView();", &[])?;
        std::thread::sleep(Duration::from_millis(200));
        b.assert_fits_width(375)?;
        b.save_screenshot("control-phone-panel.png")?;
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

/// The page's saved presets, as the camera last said.
fn presets(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let v = browser.execute(
        "const s = window.sightline.control.status; return s ? s.presets : [];",
        &[],
    )?;
    Ok(serde_json::from_value(v)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_schedule_and_sources_from_the_page_and_disconnect_tears_down() -> anyhow::Result<()>
{
    let Some(ip) =
        netns_or_skip("presets_schedule_and_sources_from_the_page_and_disconnect_tears_down")
    else {
        return Ok(());
    };
    let server = page_server(LOOPBACK, ip, false).await?;
    // Two sources to pick from the page (both the test pattern: the switch is what counts).
    let mut config = server.publisher_config("cam").with_sources(vec![
        NamedSource::parse("first=test-pattern").map_err(anyhow::Error::msg)?,
        NamedSource::parse("second=test-pattern").map_err(anyhow::Error::msg)?,
    ]);
    (config.width, config.height) = (320, 240);
    let cam = TestPublisher::start(config);
    let url = format!("{}/", server.http_url());
    let cameras_url = format!("{}/api/cameras", server.http_url());
    let browser = chromium().await?;

    let result = on_page(&browser, "presets-failure.png", move |b| {
        b.goto(&url)?;
        wait_decoding(b, 320, 240)?;
        b.wait_for(
            "const c = window.sightline.control; return c.channel === 'open' && c.status !== null;",
            TIMEOUT,
        )
        .context("no camera state on the control channel")?;
        // Save, pick, rename: what a person does with the presets bar.
        let type_and_click = |name: &str, action: &str| {
            b.execute(
                "const root = document.getElementById('control');
                 root.querySelector('input[aria-label=\"New preset name\"]').value = arguments[0];
                 root.querySelector(`button[data-action=\"${arguments[1]}\"]`).click();",
                &[json!(name), json!(action)],
            )
        };
        let pick = |name: &str| {
            b.execute(
                "const s = document.querySelector('#control select[aria-label=\"Preset\"]');
                 s.value = arguments[0];
                 s.dispatchEvent(new Event('change'));
                 const root = document.getElementById('control');
                 return {
                   remove: root.querySelector('button[data-action=\"delete-preset\"]').disabled,
                   rename: root.querySelector('button[data-action=\"rename-preset\"]').disabled,
                 };",
                &[json!(name)],
            )
        };
        type_and_click("mine", "save-preset")?;
        b.wait_for(
            "return window.sightline.control.status.presets.includes('mine');",
            TIMEOUT,
        )
        .context("the saved preset never showed")?;
        let built_in = pick("balanced")?;
        ensure!(
            built_in == json!({"remove": true, "rename": true}),
            "a built-in preset may be deleted or renamed: {built_in}"
        );
        let saved = pick("mine")?;
        ensure!(
            saved == json!({"remove": false, "rename": false}),
            "a saved preset may not be deleted or renamed: {saved}"
        );
        type_and_click("yours", "rename-preset")?;
        b.wait_for(
            "const p = window.sightline.control.status.presets;
             return p.includes('yours') && !p.includes('mine');",
            TIMEOUT,
        )
        .with_context(|| format!("the rename never showed: {:?}", presets(b)))?;
        pick("yours")?;
        b.execute(
            "document.querySelector('#control button[data-action=\"delete-preset\"]').click();",
            &[],
        )?;
        b.wait_for(
            "return !window.sightline.control.status.presets.includes('yours');",
            TIMEOUT,
        )
        .with_context(|| format!("the delete never showed: {:?}", presets(b)))?;
        ensure!(
            presets(b)? == ["low_bandwidth", "balanced", "hd"],
            "{:?}",
            presets(b)?
        );

        // The schedule: an entry added with the form is listed, and removed with its button.
        b.execute(
            "const root = document.querySelector('#control .schedule');
             root.scrollIntoView();
             root.querySelector('input[type=\"time\"]').value = '21:30';
             root.querySelector('select').value = 'hd';
             root.querySelector('button[data-action=\"add-schedule-entry\"]').click();",
            &[],
        )?;
        b.wait_for(
            "const li = document.querySelector('#control .schedule-list li[data-at=\"21:30\"]');
             const s = window.sightline.control.status.schedule;
             return !!li && li.textContent.includes('HD') && s.length === 1 && s[0].preset === 'hd';",
            TIMEOUT,
        )
        .context("the schedule entry never showed")?;
        b.save_screenshot("control-schedule.png")?;
        b.execute(
            "document.querySelector('#control button[data-action=\"remove-schedule-entry\"]').click();",
            &[],
        )?;
        b.wait_for(
            "return window.sightline.control.status.schedule.length === 0
                 && !document.querySelector('#control .schedule-list li[data-at]');",
            TIMEOUT,
        )
        .context("the schedule entry was not removed")?;

        // Sources: the picker lists both; choosing the second switches to it, and the video
        // plays on.
        let picker = b.execute(
            "const s = document.querySelector('#control select[data-action=\"select-source\"]');
             const shown = !document.querySelector('#control .sources').hidden;
             const names = [...s.options].map((o) => o.value);
             s.value = 'second';
             s.dispatchEvent(new Event('change'));
             return { shown, names };",
            &[],
        )?;
        ensure!(
            picker == json!({"shown": true, "names": ["first", "second"]}),
            "source picker: {picker}"
        );
        b.wait_for(
            "return window.sightline.control.status.source_name === 'second'
                 && window.sightline.log.some((l) => l.includes('switched to source second'));",
            TIMEOUT,
        )
        .context("the page never showed the second source")?;
        let before = frames(b)?;
        b.wait_for(
            &format!("return document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames > {before} + 10;"),
            TIMEOUT,
        )
        .context("no video after switching sources")?;

        // Motion detection, ticked in the settings panel: the test pattern's bars scroll, so
        // motion starts at once; the page logs it and draws its box over the picture.
        b.execute(
            "const i = document.querySelector('#control [data-setting=\"ai_enabled\"] .setting-input');
             i.checked = true;
             i.dispatchEvent(new Event('input', { bubbles: true }));
             i.dispatchEvent(new Event('change', { bubbles: true }));",
            &[],
        )?;
        b.wait_for(
            "const box = document.getElementById('motion-box');
             return !box.hidden && box.offsetWidth > 0 && box.offsetHeight > 0
               && window.sightline.log.some((l) => l.includes('motion started'));",
            TIMEOUT,
        )
        .context("no motion box or log line after turning motion detection on")?;

        // Disconnect: media and server connection close, and the server lets go of us.
        let teardown =
            "document.querySelector('#control button[data-action=\"teardown\"]').click();";
        b.execute(teardown, &[])?;
        b.wait_for(
            "const s = window.sightline;
             return s.disconnected && s.wsState === 'disconnected' && s.pcState === null
                 && document.querySelector('#control button[data-action=\"teardown\"]')
                     .textContent === 'Connect';",
            TIMEOUT,
        )
        .context("Disconnect did not tear down")?;
        let viewers = || -> anyhow::Result<u64> {
            let body = ureq::get(&cameras_url)
                .call()?
                .body_mut()
                .read_to_string()?;
            let list: Value = serde_json::from_str(&body)?;
            list[0]["viewers"]
                .as_u64()
                .context("no viewer count in the list")
        };
        let deadline = std::time::Instant::now() + TIMEOUT;
        while viewers()? != 0 {
            ensure!(
                std::time::Instant::now() < deadline,
                "the server still counts the disconnected viewer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let overlay = b.execute(
            "return document.getElementById('overlay').textContent;",
            &[],
        )?;
        ensure!(
            overlay
                .as_str()
                .is_some_and(|t| t.starts_with("Disconnected")),
            "overlay says {overlay}"
        );
        // Connect: the same camera plays again (the stats are the new connection's).
        b.execute(teardown, &[])?;
        b.wait_for(
            "const s = window.sightline;
             return !s.disconnected && s.cameraId === 'cam' && s.stats.framesDecoded > 10;",
            TIMEOUT,
        )
        .context("video did not come back after Connect")?;
        ensure!(
            viewers()? == 1,
            "the server does not count the viewer again"
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_token_decides_who_may_control() -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("the_page_token_decides_who_may_control") else {
        return Ok(());
    };
    let server = page_server(LOOPBACK, ip, true).await?;
    let cam = page_camera(&server, "cam", 320, 240);
    let base = format!("{}/", server.http_url());
    let view = server.token(Role::View, "cam").unwrap();
    let controller = server.token(Role::Control, "cam").unwrap();
    let browser = chromium().await?;

    let result = on_page(&browser, "control-token-failure.png", move |b| {
        // A view token: view only. The panel says so and is disabled; pause is allowed.
        b.goto(&format!("{base}?token={view}"))?;
        b.wait_for(
            "const c = window.sightline.control;
             return c.channel === 'open' && c.welcome !== null;",
            TIMEOUT,
        )?;
        let c = control(b)?;
        ensure!(
            c["mayControl"] == false,
            "a view token but may control: {c}"
        );
        let ui = b.execute(
            "const root = document.getElementById('control');
             return {
               note: root.querySelector('.control-note').textContent,
               start: root.querySelector('button[data-action=\"start_stream\"]').disabled,
               stop: root.querySelector('button[data-action=\"stop_stream\"]').disabled,
               pause: root.querySelector('button[data-action=\"pause\"]').disabled,
               badge: document.getElementById('ctl-state').textContent,
             };",
            &[],
        )?;
        ensure!(
            ui["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("View only")),
            "{ui}"
        );
        ensure!(
            ui["start"] == true && ui["stop"] == true,
            "camera buttons enabled: {ui}"
        );
        ensure!(
            ui["pause"] == false,
            "pause disabled for a view-only viewer: {ui}"
        );
        ensure!(ui["badge"] == "control: view only", "{ui}");

        // A control token: control.
        b.goto(&format!("{base}?token={controller}"))?;
        b.wait_for(
            "const c = window.sightline.control;
             return c.channel === 'open' && c.mayControl === true;",
            TIMEOUT,
        )
        .context("a control token did not give control")?;

        // No token, then a forged one: the server refuses the connection, the page stops
        // retrying and says why.
        for (query, reason) in [("", "needs a token"), ("?token=a.b.c", "malformed token")] {
            b.goto(&format!("{base}{query}"))?;
            b.wait_for(
                "return window.sightline.log.some((l) => l.includes('unauthorized'));",
                TIMEOUT,
            )
            .with_context(|| format!("`{query}` was not refused"))?;
            let page = b.execute(
                "return { ws: window.sightline.wsState,
                          overlay: document.getElementById('overlay').textContent };",
                &[],
            )?;
            ensure!(page["ws"] == "refused", "{query}: {page}");
            ensure!(
                page["overlay"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("Not authorized") && o.contains(reason)),
                "{query}: {page}"
            );
            let c = control(b)?;
            ensure!(
                c["channel"] == "closed",
                "{query}: refused but a channel: {c}"
            );
        }
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}

// ---- needs the publisher control channel ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_panel_from_capabilities_changes_the_resolution_without_reload(
) -> anyhow::Result<()> {
    let Some(ip) = netns_or_skip("control_panel_from_capabilities_changes_the_resolution") else {
        return Ok(());
    };
    let server = page_server(LOOPBACK, ip, false).await?;
    let cam = page_camera(&server, "cam", 640, 360);
    let url = format!("{}/", server.http_url());
    let browser = chromium().await?;

    let result = on_page(&browser, "control-resolution-failure.png", move |b| {
        b.goto(&url)?;
        wait_decoding(b, 640, 360)?;
        // The panel appears from the capabilities: a row per setting, with its apply hint.
        b.wait_for(
            "const c = window.sightline.control;
             return c.capabilities.includes('width') && c.capabilities.includes('height')
                 && c.settings !== null
                 && document.querySelectorAll('#control [data-setting]').length
                      === c.capabilities.length;",
            TIMEOUT,
        )
        .context("no control panel from the capabilities")?;
        let hints = b.execute(
            "return [...document.querySelectorAll('#control [data-setting] .hint')]
                 .map((h) => h.textContent);",
            &[],
        )?;
        ensure!(
            hints
                .as_array()
                .is_some_and(|h| h.iter().any(|t| t == "applies live")),
            "no live setting among {hints}"
        );
        b.save_screenshot("control-panel.png")?;

        // Mark the document: a reload would lose the mark.
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
        let c = control(b)?;
        ensure!(
            c["lastResponse"]["success"] == true,
            "resolution change refused: {}",
            c["lastResponse"]
        );
        wait_decoding(b, w, h).context("the video never changed size")?;
        let mark = b.execute("return window.__noReload;", &[])?;
        ensure!(mark == 42, "the page reloaded");
        let c = control(b)?;
        ensure!(
            c["settings"]["width"] == w && c["settings"]["height"] == h,
            "state does not show {w}x{h}: {c}"
        );
        Ok(())
    })
    .await;
    cam.stop().await;
    server.shutdown().await;
    result
}
