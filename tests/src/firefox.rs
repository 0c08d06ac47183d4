//! A real headless Firefox ESR, driven through geckodriver with the same [`Browser`] API as
//! Chromium and WebKitGTK.
//!
//! [`Browser::launch_firefox`] starts geckodriver on a free loopback port (its BiDi WebSocket
//! on another free port, so parallel tests never meet on geckodriver's default 9222) and
//! opens one session: Firefox with `-headless` and a fresh profile in the [`Browser`]'s
//! scratch directory, holding the preferences a live-video test page needs ([`default_prefs`]):
//!
//! - video may autoplay without a click, muted or not;
//! - nothing phones home: no updates, telemetry, studies, captive-portal or connectivity
//!   probes, Safe Browsing, remote settings, add-on or plugin (GMP) downloads, DoH, OCSP,
//!   new-tab feeds, speculative connections. A test machine may send traffic only to loopback
//!   and to network namespaces the test made;
//! - WebRTC host candidates are real addresses, not mDNS `.local` names, and loopback is a
//!   candidate too, so an SFU on loopback or in the test namespace is reachable.
//!
//! Firefox gets its environment from geckodriver (on the desktop geckodriver ignores
//! `moz:firefoxOptions.env`), so the launch sets it there: the headless screen size, `HOME`
//! and the XDG folders in the scratch directory, and `MOZ_DISABLE_NONLOCAL_CONNECTIONS=1`,
//! the guard Mozilla's own test harness uses. With it Firefox refuses, by crashing loudly
//! (its message lands in [`Browser::driver_log`]), any connection to an address that is not
//! loopback, private (10/8, 172.16/12, 192.168/16) or shared (100.64/10, the test
//! topology's "internet"); and only with it does a release build obey
//! `services.settings.server`: without it, Firefox keeps looking up
//! firefox.settings.services.mozilla.com whatever the preferences say.
//!
//! Dropping the [`Browser`] ends the session, then kills geckodriver's process group (Firefox
//! and its content processes are in it; its crash helper, in a group of its own, exits with
//! Firefox) and deletes the profile.
//!
//! Needs Debian's `firefox-esr` (`$FIREFOX`, default `/usr/bin/firefox-esr`) and geckodriver,
//! which Debian does not package: `cargo install geckodriver` (needs a registry, so before
//! entering the test namespace). `$GECKODRIVER` names it, else it is looked up on `PATH`,
//! then in `$CARGO_HOME/bin` and `~/.cargo/bin`. Starting takes a few seconds (4 to 7 s to
//! a ready session on a 2-core machine).
//!
//! Debian's Firefox has no H.264 for WebRTC: Mozilla ships it as the OpenH264 plugin that
//! Firefox downloads (Debian leaves it out, and these preferences would not fetch it). Its
//! WebRTC has VP8, VP9 and AV1, so a camera reaches it over VP8.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail};
use serde_json::{json, Map, Value};

use crate::browser::{scratch_dir, Browser, DriverLaunch};

#[derive(Debug, Clone)]
pub struct FirefoxOptions {
    /// `$GECKODRIVER`, else `geckodriver` on `PATH`, in `$CARGO_HOME/bin` or `~/.cargo/bin`.
    pub geckodriver: PathBuf,
    /// `$FIREFOX`, else `/usr/bin/firefox-esr`.
    pub firefox: PathBuf,
    /// Window (headless screen) size in CSS pixels.
    pub window: (u32, u32),
    /// Command-line arguments added to `-headless -profile DIR`.
    pub extra_args: Vec<String>,
    /// Preferences added to (or overriding) [`default_prefs`].
    pub extra_prefs: Vec<(String, Value)>,
}

impl Default for FirefoxOptions {
    fn default() -> Self {
        let env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        FirefoxOptions {
            geckodriver: env("GECKODRIVER").unwrap_or_else(find_geckodriver),
            firefox: env("FIREFOX").unwrap_or_else(|| "/usr/bin/firefox-esr".into()),
            window: (1280, 800),
            extra_args: Vec::new(),
            extra_prefs: Vec::new(),
        }
    }
}

/// `geckodriver` on `PATH`, else in cargo's bin folder (where `cargo install` puts it); when
/// nowhere, the bare name, for an error message that says what is missing.
fn find_geckodriver() -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let home_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo"));
    path_dirs
        .into_iter()
        .chain(cargo_home.map(|c| c.join("bin")))
        .chain(home_cargo.map(|c| c.join("bin")))
        .map(|dir| dir.join("geckodriver"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("geckodriver"))
}

/// Preferences of every session (geckodriver writes them to the profile's `user.js`, on top
/// of its own recommended ones); [`FirefoxOptions::extra_prefs`] add to or override them.
pub fn default_prefs() -> Map<String, Value> {
    // Several objects: one would exceed `json!`'s recursion limit.
    let groups = [
        // Live video plays without a gesture, muted or not.
        json!({
            "media.autoplay.default": 0,
            "media.autoplay.blocking_policy": 0,
            "media.autoplay.block-webaudio": false
        }),
        // WebRTC: real host addresses (no mDNS names), loopback allowed, no default STUN.
        json!({
            "media.peerconnection.ice.obfuscate_host_addresses": false,
            "media.peerconnection.ice.loopback": true,
            "media.peerconnection.default_iceservers": "[]"
        }),
        // Quiet start: no first-run, welcome or default-browser pages, no session restore.
        json!({
            "browser.shell.checkDefaultBrowser": false,
            "browser.startup.page": 0,
            "browser.startup.homepage": "about:blank",
            "browser.startup.homepage_override.mstone": "ignore",
            "browser.startup.firstrunSkipsHomepage": true,
            "startup.homepage_welcome_url": "about:blank",
            "startup.homepage_welcome_url.additional": "",
            "browser.aboutwelcome.enabled": false,
            "trailhead.firstrun.didSeeAboutWelcome": true,
            "browser.sessionstore.resume_from_crash": false,
            "toolkit.startup.max_resumed_crashes": -1,
            "browser.tabs.warnOnClose": false
        }),
        // Updates (Firefox, add-ons, search engines, system add-ons, plugins).
        json!({
            "app.update.disabledForTesting": true,
            "app.update.auto": false,
            "app.update.checkInstallTime": false,
            "extensions.update.enabled": false,
            "extensions.update.autoUpdateDefault": false,
            "extensions.getAddons.cache.enabled": false,
            "extensions.systemAddon.update.enabled": false,
            "extensions.systemAddon.update.url": "",
            "extensions.blocklist.enabled": false,
            "extensions.pocket.enabled": false,
            "browser.search.update": false,
            "media.gmp-manager.updateEnabled": false,
            "media.gmp-manager.url": "",
            "media.gmp-gmpopenh264.autoupdate": false,
            "media.gmp-widevinecdm.enabled": false,
            "media.eme.enabled": false
        }),
        // Telemetry, studies, crash and health reports.
        json!({
            "toolkit.telemetry.enabled": false,
            "toolkit.telemetry.unified": false,
            "toolkit.telemetry.archive.enabled": false,
            "toolkit.telemetry.server": "",
            "toolkit.telemetry.reportingpolicy.firstRun": false,
            "datareporting.healthreport.uploadEnabled": false,
            "datareporting.policy.dataSubmissionEnabled": false,
            "datareporting.policy.dataSubmissionPolicyBypassNotification": true,
            "app.normandy.enabled": false,
            "app.normandy.api_url": "",
            "app.shield.optoutstudies.enabled": false,
            "browser.ping-centre.telemetry": false,
            "browser.crashReports.unsubmittedCheck.enabled": false,
            "breakpad.reportURL": ""
        }),
        // Network probes and background fetches.
        json!({
            "network.captive-portal-service.enabled": false,
            "captivedetect.canonicalURL": "",
            "network.connectivity-service.enabled": false,
            "network.trr.mode": 5,
            "doh-rollout.disable-heuristics": true,
            "network.dns.disablePrefetch": true,
            "network.prefetch-next": false,
            "network.predictor.enabled": false,
            "network.http.speculative-parallel-limit": 0,
            "browser.urlbar.speculativeConnect.enabled": false,
            "browser.urlbar.suggest.quicksuggest.sponsored": false,
            "browser.urlbar.suggest.quicksuggest.nonsponsored": false
        }),
        // Safe Browsing, remote settings, accounts, region, new-tab feeds.
        json!({
            "browser.safebrowsing.malware.enabled": false,
            "browser.safebrowsing.phishing.enabled": false,
            "browser.safebrowsing.blockedURIs.enabled": false,
            "browser.safebrowsing.downloads.enabled": false,
            "browser.safebrowsing.downloads.remote.enabled": false,
            "browser.safebrowsing.provider.mozilla.updateURL": "",
            "browser.safebrowsing.provider.mozilla.gethashURL": "",
            "browser.safebrowsing.provider.google.updateURL": "",
            "browser.safebrowsing.provider.google4.updateURL": "",
            "services.settings.server": "data:,#remote-settings-dummy/v1",
            "security.remote_settings.crlite_filters.enabled": false,
            "security.remote_settings.intermediates.enabled": false,
            "security.OCSP.enabled": 0,
            "identity.fxaccounts.enabled": false,
            "browser.region.network.url": "",
            "browser.region.update.enabled": false,
            "geo.provider.network.url": "",
            "browser.newtabpage.enabled": false,
            "browser.newtabpage.activity-stream.feeds.system.topstories": false,
            "browser.newtabpage.activity-stream.feeds.section.topstories": false,
            "browser.newtabpage.activity-stream.feeds.topsites": false,
            "browser.newtabpage.activity-stream.feeds.telemetry": false,
            "browser.newtabpage.activity-stream.telemetry": false,
            "browser.newtabpage.activity-stream.default.sites": "",
            "browser.topsites.contile.enabled": false,
            "browser.discovery.enabled": false,
            "messaging-system.rsexperimentloader.enabled": false,
            "browser.contentblocking.report.lockwise.enabled": false,
            "browser.translations.enable": false,
            "browser.ml.enable": false
        }),
    ];
    let mut prefs = Map::new();
    for group in groups {
        if let Value::Object(map) = group {
            prefs.extend(map);
        }
    }
    prefs
}

impl Browser {
    /// Headless Firefox ESR through geckodriver; see the module docs.
    pub fn launch_firefox(opts: FirefoxOptions) -> anyhow::Result<Browser> {
        if !opts.firefox.is_file() {
            bail!(
                "{} not found: install Debian's `firefox-esr`, or set $FIREFOX",
                opts.firefox.display()
            );
        }
        if !opts.geckodriver.is_file() {
            bail!(
                "{} not found: `cargo install geckodriver` (looked for on PATH, in \
                 $CARGO_HOME/bin and ~/.cargo/bin), or set $GECKODRIVER",
                opts.geckodriver.display()
            );
        }
        let scratch = scratch_dir()?;
        let profile = scratch.join("profile");
        std::fs::create_dir_all(&profile)?;
        let mut args: Vec<String> = vec!["-headless".into(), "-profile".into()];
        args.push(profile.display().to_string());
        args.extend(opts.extra_args);
        let mut prefs = default_prefs();
        prefs.extend(opts.extra_prefs);
        let caps = json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": opts.firefox,
                "args": args,
                "prefs": prefs,
                "log": { "level": "info" },
            },
        });
        // Any free port: geckodriver's default (9222) would collide between parallel tests.
        let websocket_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (w, h) = opts.window;
        let mut command = Command::new(&opts.geckodriver);
        // Firefox inherits geckodriver's environment (`moz:firefoxOptions.env` only counts on
        // Android).
        command
            .env("MOZ_HEADLESS_WIDTH", w.to_string())
            .env("MOZ_HEADLESS_HEIGHT", h.to_string())
            // Firefox's own guard, the one Mozilla's test harness uses: a connection to
            // anything but loopback or a private or shared (CGNAT) address crashes it, loudly.
            // It also makes a release build obey `services.settings.server`, which it
            // otherwise ignores (and keeps resolving firefox.settings.services.mozilla.com).
            .env("MOZ_DISABLE_NONLOCAL_CONNECTIONS", "1")
            .env("MOZ_DISABLE_AUTO_SAFE_MODE", "1")
            // Nothing of the user's: caches and config under the scratch folder.
            .env("HOME", &scratch)
            .env("XDG_CACHE_HOME", scratch.join("cache"))
            .env("XDG_CONFIG_HOME", scratch.join("config"))
            .env("TMPDIR", &scratch)
            .args(["--host", "127.0.0.1"])
            .args(["--websocket-port", &websocket_port.to_string()]);
        Browser::start(DriverLaunch {
            command,
            port_arg: |port| format!("--port={port}"),
            name: "geckodriver",
            capabilities: caps,
            helpers: Vec::new(),
            scratch,
        })
        .map_err(|e| anyhow!("launching Firefox: {e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefs_allow_autoplay_and_real_host_candidates() {
        let prefs = default_prefs();
        assert_eq!(prefs["media.autoplay.default"], 0);
        assert_eq!(prefs["media.autoplay.blocking_policy"], 0);
        assert_eq!(
            prefs["media.peerconnection.ice.obfuscate_host_addresses"],
            false
        );
        assert_eq!(prefs["network.connectivity-service.enabled"], false);
    }
}
