//! A real headless Chromium, driven through chromedriver's W3C WebDriver API with the
//! `fantoccini` client.
//!
//! [`Browser::launch`] starts chromedriver on a free loopback port and opens one session with a
//! fresh profile; dropping the [`Browser`] ends the session, kills chromedriver (and anything
//! left in its process group) and deletes the profile. The same [`Browser`] API drives
//! WebKitGTK too ([`Browser::launch_webkit`], in `webkit.rs`).
//!
//! Chromium never uses loopback for ICE, so a page that plays WebRTC needs another local
//! address: tests run inside a private network namespace holding [`NETNS_IP`] and skip,
//! loudly, when [`netns_ip`] says they are not there.

use std::fs;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The address the test network namespace gives this machine (the veth end `v0`).
pub const NETNS_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1));

/// Chromium flags for a quiet, deterministic headless run: nothing phones home, no first-run
/// UI, and muted video may autoplay without a click.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--autoplay-policy=no-user-gesture-required",
];

/// `Some(NETNS_IP)` when this process runs inside the test network namespace, i.e. the
/// address is assigned to a local interface (binding to it succeeds). `SIGHTLINE_NETNS=1`
/// says the runner meant to put us there: then a missing address is an error, not a skip.
pub fn netns_ip() -> anyhow::Result<Option<IpAddr>> {
    let present = UdpSocket::bind((NETNS_IP, 0)).is_ok();
    let promised = std::env::var("SIGHTLINE_NETNS").is_ok_and(|v| v == "1");
    match (present, promised) {
        (true, _) => Ok(Some(NETNS_IP)),
        (false, true) => bail!("SIGHTLINE_NETNS=1 but {NETNS_IP} is not a local address"),
        (false, false) => Ok(None),
    }
}

/// Where tests put screenshots: `$SIGHTLINE_ARTIFACTS`, else `target/artifacts`.
/// `Some(ip)` inside the test namespace; otherwise says loudly why the browser test `test`
/// does nothing (Chromium does not use loopback for ICE).
pub fn netns_or_skip(test: &str) -> Option<IpAddr> {
    let ip = netns_ip().expect("network namespace check");
    if ip.is_none() {
        // Straight to the stderr handle: the test harness captures `eprintln!`, and a skip
        // must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED {test}: not inside the test network namespace (no 10.77.0.1).\n\
             *** Chromium does not use loopback for ICE; run the suite with scripts/test, or\n\
             *** scripts/netns cargo test --release -p sightline-tests --offline\n"
        );
    }
    ip
}

pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("SIGHTLINE_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts"),
    }
}

#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// `$CHROMIUM`, else `/usr/bin/chromium`.
    pub chromium: PathBuf,
    /// `$CHROMEDRIVER`, else `/usr/bin/chromedriver`.
    pub chromedriver: PathBuf,
    /// Initial window size in CSS pixels.
    pub window: (u32, u32),
    /// Flags added to [`CHROMIUM_ARGS`].
    pub extra_args: Vec<String>,
    /// A named network namespace (`ip netns`) to run the browser in, e.g. a
    /// [`crate::topology`] site; the driver stays here and talks to it over a pipe.
    pub netns: Option<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        let from_env = |var: &str, default: &str| {
            std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        BrowserOptions {
            chromium: from_env("CHROMIUM", "/usr/bin/chromium"),
            chromedriver: from_env("CHROMEDRIVER", "/usr/bin/chromedriver"),
            window: (1280, 800),
            extra_args: Vec::new(),
            netns: None,
        }
    }
}

/// One chromedriver process with one browser session. Blocking: call it from a plain thread
/// or `tokio::task::spawn_blocking`, never from inside an async task.
pub struct Browser {
    driver: Child,
    /// The WebDriver session; `None` only while it is being created.
    session: Option<Client>,
    /// fantoccini is async and a `Browser` is blocking, so each command runs to completion
    /// on this small runtime of its own. `None` only once dropped.
    rt: Option<tokio::runtime::Runtime>,
    /// Chromium profile and chromedriver log; removed on drop.
    scratch: PathBuf,
    /// Processes the browser needs besides its driver (WebKit's Xvfb), ended after it.
    helpers: Vec<Child>,
}

/// How to start one WebDriver server and which session to ask it for.
pub(crate) struct DriverLaunch {
    /// The driver command, without its port (`port_arg` is added).
    pub command: Command,
    pub port_arg: fn(u16) -> String,
    pub name: &'static str,
    /// The capabilities every session must match (`alwaysMatch`).
    pub capabilities: Value,
    /// Started before the driver, ended after it.
    pub helpers: Vec<Child>,
    pub scratch: PathBuf,
}

impl Browser {
    pub fn launch(opts: BrowserOptions) -> anyhow::Result<Browser> {
        for bin in [&opts.chromium, &opts.chromedriver] {
            if !bin.exists() {
                bail!(
                    "{} not found: install Debian's `chromium` and `chromium-driver`",
                    bin.display()
                );
            }
        }
        let scratch = scratch_dir()?;
        let profile = scratch.join("profile");
        fs::create_dir_all(&profile)?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", opts.window.0, opts.window.1));
        args.extend(opts.extra_args);
        let binary = match &opts.netns {
            None => opts.chromium.clone(),
            Some(ns) => {
                // DevTools over the inherited pipe: a TCP port inside the namespace would be
                // out of the driver's reach.
                args.push("--remote-debugging-pipe".into());
                netns_wrapper(&scratch, ns, &opts.chromium)?
            }
        };
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": args,
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let mut command = Command::new(&opts.chromedriver);
        command.arg("--allowed-ips=127.0.0.1");
        Browser::start(DriverLaunch {
            command,
            port_arg: |port| format!("--port={port}"),
            name: "chromedriver",
            capabilities: caps,
            helpers: Vec::new(),
            scratch,
        })
    }

    /// Start a WebDriver server on a free loopback port and open one session on it.
    pub(crate) fn start(launch: DriverLaunch) -> anyhow::Result<Browser> {
        let DriverLaunch {
            mut command,
            port_arg,
            name,
            capabilities,
            helpers,
            scratch,
        } = launch;
        let port = free_port()?;
        let log = fs::File::create(scratch.join("driver.log"))?;
        let spawned = command
            .arg(port_arg(port))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so Drop can also end any browser left behind.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"));
        let driver = match spawned {
            Ok(d) => d,
            Err(e) => {
                for mut h in helpers {
                    let _ = h.kill();
                    let _ = h.wait();
                }
                return Err(e);
            }
        };
        // From here on Drop cleans up, also when the session cannot be created.
        let mut browser = Browser {
            driver,
            session: None,
            rt: Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            ),
            scratch,
            helpers,
        };
        browser.wait_listening(port, name)?;
        let Value::Object(capabilities) = capabilities else {
            bail!("{name}: capabilities must be a JSON object");
        };
        let base = format!("http://127.0.0.1:{port}");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = browser
            .run("new session", async {
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&base)
                    .await
            })
            .with_context(|| format!("{name}: {}", browser.driver_log()))?;
        browser.session = Some(client);
        Ok(browser)
    }

    /// Wait until the driver accepts connections on `port`, or says why it cannot.
    fn wait_listening(&mut self, port: u16, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.driver.try_wait()? {
                bail!("{name} exited ({status}): {}", self.driver_log());
            }
            if Instant::now() > deadline {
                bail!("{name} not listening after 15 s: {}", self.driver_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The driver's own log (startup errors, crashed browser...).
    pub fn driver_log(&self) -> String {
        fs::read_to_string(self.scratch.join("driver.log")).unwrap_or_default()
    }

    /// Run one WebDriver exchange to completion (see [`bounded`]).
    fn run<T, E>(&self, what: &str, work: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let rt = self.rt.as_ref().ok_or_else(|| anyhow!("browser closed"))?;
        bounded(rt, what, work)
    }

    fn client(&self) -> anyhow::Result<&Client> {
        self.session
            .as_ref()
            .ok_or_else(|| anyhow!("no WebDriver session"))
    }

    /// A command the client has no method for (a vendor extension), posted to the session.
    fn post(&self, path: &'static str, body: Value) -> anyhow::Result<Value> {
        let client = self.client()?;
        self.run(path, client.issue_cmd(SessionPost { path, body }))
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        let client = self.client()?;
        self.run(&format!("opening {url}"), client.goto(url))
    }

    /// Run `script` as the body of a function (`arguments[i]` are `args`); returns its result.
    pub fn execute(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        let client = self.client()?;
        self.run("executing a script", client.execute(script, args.to_vec()))
    }

    /// Like [`Browser::execute`], but the script calls `arguments[arguments.length - 1]`
    /// with its result (it may await first).
    pub fn execute_async(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        let client = self.client()?;
        self.run(
            "executing an async script",
            client.execute_async(script, args.to_vec()),
        )
    }

    /// Click the first element matching the CSS `selector` the way a person would: WebDriver's
    /// element click scrolls it into view and sends real (trusted) pointer events to its
    /// centre, which counts as a user gesture (play(), full screen). Fails when another
    /// element covers it.
    pub fn click(&self, selector: &str) -> anyhow::Result<()> {
        let client = self.client()?;
        self.run(&format!("clicking `{selector}`"), async {
            client.find(Locator::Css(selector)).await?.click().await
        })
    }

    /// Focus the first element matching `selector` and type `keys` into it as real key
    /// events; WebDriver's special keys are private-use characters (Enter is `\u{E007}`).
    pub fn send_keys(&self, selector: &str, keys: &str) -> anyhow::Result<()> {
        let client = self.client()?;
        self.run(&format!("typing into `{selector}`"), async {
            client
                .find(Locator::Css(selector))
                .await?
                .send_keys(keys)
                .await
        })
    }

    /// Poll `script` (a function body) every 200 ms until it returns something truthy;
    /// returns that value, or an error saying what it last returned.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(script, &[])?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited {timeout:?} for `{script}`; last result: {v}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Emulate a device screen (CSS pixels) the way DevTools' device mode does.
    pub fn set_viewport(&self, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
        self.post(
            "goog/cdp/execute",
            json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {
                    "width": width, "height": height,
                    "deviceScaleFactor": 1, "mobile": mobile,
                },
            }),
        )?;
        Ok(())
    }

    /// Run `source` in every new document before its own scripts (Chromium only, through
    /// DevTools): to give a page a broken or missing browser feature.
    pub fn add_init_script(&self, source: &str) -> anyhow::Result<()> {
        self.post(
            "goog/cdp/execute",
            json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": source },
            }),
        )?;
        Ok(())
    }

    /// PNG of the viewport.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let client = self.client()?;
        self.run("taking a screenshot", client.screenshot())
    }

    /// Save a screenshot as `name` under [`artifacts_dir`]; returns the path.
    pub fn save_screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = artifacts_dir();
        fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        fs::File::create(&path)?.write_all(&self.screenshot()?)?;
        Ok(path)
    }

    /// The page's console messages since the last call (needs `goog:loggingPrefs`).
    /// The page must fit a phone screen: nothing wider than a `width`-px viewport.
    pub fn assert_fits_width(&self, width: u32) -> anyhow::Result<()> {
        let w = self.execute(
            "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);",
            &[],
        )?;
        anyhow::ensure!(
            w.as_u64() <= Some(u64::from(width)),
            "page is {w} px wide in a {width} px viewport"
        );
        Ok(())
    }

    pub fn console_log(&self) -> anyhow::Result<Vec<String>> {
        let v = self.post("se/log", json!({ "type": "browser" }))?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let (Some(client), Some(rt)) = (self.session.take(), self.rt.take()) {
            // Ends the browser; a failure here is covered by the group kill below. The last
            // owner may drop us inside an async task, where tokio refuses to block on (or
            // drop) a runtime, so the session ends on a thread of its own.
            std::thread::scope(|s| {
                s.spawn(move || {
                    let _ = bounded(&rt, "ending the session", client.close());
                });
            });
        }
        // chromedriver leads its own process group; Chromium and its helpers are in it too
        // unless they moved away. Kill the group by id, then reap chromedriver.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        for h in &mut self.helpers {
            let _ = h.kill();
            let _ = h.wait();
        }
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

fn free_port() -> anyhow::Result<u16> {
    // Tiny race (the port is free again until chromedriver binds it); fine for tests.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A script that starts `chromium` inside network namespace `ns`, for chromedriver's
/// `binary`: its arguments, and the DevTools pipe on fds 3 and 4, pass straight through.
fn netns_wrapper(scratch: &Path, ns: &str, chromium: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.join("chromium-in-netns");
    let script = format!(
        "#!/bin/sh\nexec ip netns exec '{ns}' '{}' \"$@\"\n",
        chromium.display()
    );
    fs::write(&path, script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

pub(crate) fn scratch_dir() -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sightline-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// How long one WebDriver command may take (a page load, a long async script).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `work` to completion on `rt`, or fail after [`COMMAND_TIMEOUT`]: a browser that hangs
/// fails the test instead of stalling it.
fn bounded<T, E>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    work: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    // The timer is made inside the runtime: it needs its clock.
    match rt.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, work).await }) {
        Ok(done) => done.with_context(|| what.to_owned()),
        Err(_) => bail!("{what}: no answer from the browser in {COMMAND_TIMEOUT:?}"),
    }
}

/// `POST /session/{id}/{path}` with a JSON body: the vendor commands (`goog/cdp/execute`,
/// `se/log`) fantoccini has no method for.
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
