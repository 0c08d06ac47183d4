//! `sightline`: the server binary. Signaling (HTTP + WebSocket) and the SFU (one UDP port) in
//! one process; with `--demo`, also a built-in test-pattern camera publishing to itself.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use sightline_config::Layers;
use sightline_publisher::PublisherConfig;
use sightline_sfu::SfuConfig;
use sightline_signaling::auth::{parse_ttl, AuthMode, Role, Scope, TokenKeys};
use sightline_signaling::ice::IceConfig;
use sightline_signaling::server::tls::TlsFiles;
use sightline_signaling::server::{self, ServerConfig, WebClient};

/// Sightline: live camera video to browsers through a WebRTC SFU.
///
/// Serves the web viewer at http://HTTP/ (https:// with --tls-cert), signaling at /ws, the
/// camera list at /api/cameras, camera control at /api/cameras/ID/control, and forwards
/// media on one UDP port. Publishers (`sightline-publisher`) connect out to it; viewers open
/// the web page.
///
/// Without --auth-secret-file the server listens on loopback only and every client may do
/// everything. To serve other machines, turn tokens on (--auth-secret-file, then `sightline
/// token` makes tokens) or, on a trusted LAN only, pass --insecure. Log detail is set by
/// RUST_LOG (e.g. RUST_LOG=debug).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// TOML file of settings. A key is a setting's variable name without `SIGHTLINE_`, in
    /// lower case with `-` for `_` (`udp-port = 8090`, `turn-urls = ["turn:…"]`). The
    /// environment overrides it, and flags override both. `--print-config` prints one.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the settings in force (the file, the environment and the flags merged) as TOML,
    /// and exit.
    #[arg(long)]
    print_config: bool,

    #[command(flatten)]
    settings: Settings,
}

/// The server's settings: the flags below, each also read from the `SIGHTLINE_*` variable
/// named in `--help` and from the `--config` file's key of the same name.
#[derive(Debug, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Settings {
    /// HTTP(S) address for the web viewer, the API and WebSocket signaling. Anything but
    /// loopback needs --auth-secret-file (or --insecure).
    #[arg(long, env = "SIGHTLINE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,

    /// Certificate chain (PEM) to serve HTTPS and WSS on --http; needs --tls-key. Re-read
    /// when the file changes or on SIGHUP, so a renewed certificate needs no restart.
    #[arg(long, env = "SIGHTLINE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// Private key (PEM) for --tls-cert.
    #[arg(long, env = "SIGHTLINE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// File holding the secret that signs tokens (at least 16 bytes; e.g. `head -c 32
    /// /dev/urandom | base64 > secret`). Turns authentication on: every publisher, viewer
    /// and API call then needs a token from `sightline token`.
    #[arg(long, env = "SIGHTLINE_AUTH_SECRET_FILE")]
    auth_secret_file: Option<PathBuf>,

    /// Serve a non-loopback address WITHOUT authentication: anyone who reaches it may watch,
    /// control and publish. Only for a trusted LAN.
    #[arg(long, env = "SIGHTLINE_INSECURE", conflicts_with = "auth_secret_file")]
    insecure: bool,

    /// A web origin (e.g. https://dash.example.com) whose pages may call the API; repeat
    /// for several. None by default.
    #[arg(
        long = "cors-origin",
        env = "SIGHTLINE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,

    /// Serve GET /metrics (Prometheus) without a token even when tokens are on, for a
    /// scraper on a private network. Without it, a scraper sends a token of any role.
    #[arg(long, env = "SIGHTLINE_METRICS_OPEN")]
    metrics_open: bool,

    /// A TURN server clients may relay through, e.g. `turn:turn.example.org:3478?transport=udp`,
    /// `turn:…:3478?transport=tcp`, `turns:…:5349?transport=tcp`; repeat for several. Each
    /// session gets credentials of its own, minted with --turn-secret-file (see turn-config/).
    #[arg(long = "turn-url", env = "SIGHTLINE_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,

    /// File holding coturn's `static-auth-secret` (its `use-auth-secret` mode), which TURN
    /// credentials are signed with.
    #[arg(long, env = "SIGHTLINE_TURN_SECRET_FILE")]
    turn_secret_file: Option<PathBuf>,

    /// How long TURN credentials last; sessions get fresh ones halfway through.
    #[arg(long, env = "SIGHTLINE_TURN_TTL", default_value = "1h", value_parser = parse_ttl)]
    #[serde(serialize_with = "ttl_text", deserialize_with = "ttl_from_text")]
    turn_ttl: Duration,

    /// Forget a camera this long after its publisher went away (e.g. 90s, 15m, 24h, 7d): it
    /// leaves the camera list, and comes back when its publisher does. 0 keeps every camera
    /// until DELETE /api/cameras/ID removes it.
    #[arg(long, env = "SIGHTLINE_FORGET_AFTER", default_value = "24h", value_parser = parse_forget_after)]
    #[serde(
        serialize_with = "ttl_text",
        deserialize_with = "forget_after_from_text"
    )]
    forget_after: Duration,

    /// A STUN server clients use to learn their public address, e.g.
    /// `stun:turn.example.org:3478`; repeat for several.
    #[arg(long = "stun-url", env = "SIGHTLINE_STUN_URLS", value_delimiter = ',')]
    stun_urls: Vec<String>,

    /// UDP port for all WebRTC media (every publisher and viewer shares it).
    #[arg(long, env = "SIGHTLINE_UDP_PORT", default_value_t = 8090)]
    udp_port: u16,

    /// TCP port for ICE over TCP, for viewers whose network lets no UDP out (offered
    /// alongside UDP, at lower priority). Default: the number of --udp-port.
    #[arg(long, env = "SIGHTLINE_TCP_PORT", conflicts_with = "no_ice_tcp")]
    tcp_port: Option<u16>,

    /// Offer media over UDP only (no ICE-TCP listener).
    #[arg(long, env = "SIGHTLINE_NO_ICE_TCP")]
    no_ice_tcp: bool,

    /// Local IP address to receive media on and advertise to peers; repeat for several.
    /// Default: every local IPv4 address, loopback included.
    #[arg(long = "media-ip", env = "SIGHTLINE_MEDIA_IPS", value_delimiter = ',')]
    media_ips: Vec<IpAddr>,

    /// Public address to advertise too, when the server sits behind a 1:1 NAT (cloud VMs).
    #[arg(long, env = "SIGHTLINE_PUBLIC_IP")]
    public_ip: Option<IpAddr>,

    /// Threads that send each frame to its viewers, sharing them out (most of the media
    /// work with many viewers). 0: one per core. 1: all media on one thread.
    #[arg(long, env = "SIGHTLINE_MEDIA_THREADS", default_value_t = 0)]
    media_threads: usize,

    /// Serve the web client from this folder instead of the copy built into the binary
    /// (for working on the page: an edit shows on reload, without a rebuild).
    #[arg(long, env = "SIGHTLINE_WEB_ROOT")]
    web_root: Option<PathBuf>,

    /// Also run a built-in test-pattern camera (id `demo`) that publishes to this server.
    #[arg(long, env = "SIGHTLINE_DEMO")]
    demo: bool,

    /// Width of the demo camera's picture, in pixels.
    #[arg(long, env = "SIGHTLINE_DEMO_WIDTH", default_value_t = 1280)]
    demo_width: u32,
    /// Height of the demo camera's picture, in pixels.
    #[arg(long, env = "SIGHTLINE_DEMO_HEIGHT", default_value_t = 720)]
    demo_height: u32,
    /// Frame rate of the demo camera.
    #[arg(long, env = "SIGHTLINE_DEMO_FPS", default_value_t = 30)]
    demo_fps: u32,
}

/// `turn-ttl` in a file: `"1h"`, or seconds.
fn ttl_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    sightline_config::text_or_number(d, parse_ttl)
}

/// `--forget-after`: a duration, or 0 for never.
fn parse_forget_after(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        _ => parse_ttl(s),
    }
}

/// `forget-after` in a file: `"24h"`, or seconds (0: never).
fn forget_after_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    sightline_config::text_or_number(d, parse_forget_after)
}

fn ttl_text<S: serde::Serializer>(ttl: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}s", ttl.as_secs()))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a signed token (alone on stdout, for scripts) for a publisher, viewer or API
    /// client of a server started with the same --auth-secret-file.
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The server's secret file (its --auth-secret-file).
    #[arg(long, env = "SIGHTLINE_AUTH_SECRET_FILE")]
    secret_file: PathBuf,
    /// view (watch), control (watch and control) or publish (send a camera's video).
    #[arg(long)]
    role: Role,
    /// Camera id the token covers; repeat or separate with commas for several; `*` for all.
    #[arg(long = "camera", value_delimiter = ',', required = true)]
    cameras: Vec<String>,
    /// How long the token is valid: e.g. 90s, 15m, 24h, 30d.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Duration,
    /// Who holds it (shown in the server's logs). A publisher reconnecting with a token of
    /// the same name takes its live camera over at once.
    #[arg(long)]
    name: Option<String>,
}

fn print_token(args: TokenArgs) -> anyhow::Result<()> {
    let keys = TokenKeys::from_file(&args.secret_file).map_err(anyhow::Error::msg)?;
    let scope = Scope::from_ids(&args.cameras).map_err(anyhow::Error::msg)?;
    println!("{}", keys.issue_for(args.role, scope, args.ttl, args.name));
    Ok(())
}

/// What clap's `conflicts_with` and `requires` check among flags and variables, checked again
/// once the file's values are in.
fn check_combinations(s: &Settings) -> anyhow::Result<()> {
    if s.insecure && s.auth_secret_file.is_some() {
        anyhow::bail!("insecure and auth-secret-file exclude each other: pick one");
    }
    if s.tls_cert.is_some() != s.tls_key.is_some() {
        anyhow::bail!("tls-cert and tls-key go together: give both or neither");
    }
    if s.tcp_port.is_some() && s.no_ice_tcp {
        anyhow::bail!("tcp-port and no-ice-tcp exclude each other: pick one");
    }
    Ok(())
}

/// Refuse to serve strangers without authentication: exposing cameras must be a decision.
fn auth_mode(args: &Settings) -> anyhow::Result<AuthMode> {
    if let Some(file) = &args.auth_secret_file {
        let keys = TokenKeys::from_file(file).map_err(anyhow::Error::msg)?;
        return Ok(AuthMode::Tokens(Box::new(keys)));
    }
    if args.insecure {
        tracing::warn!(
            http = %args.http,
            "--insecure: no authentication; anyone who can reach this server may watch, \
             control and publish cameras"
        );
        return Ok(AuthMode::Insecure);
    }
    if !args.http.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve {} without authentication: anyone who can reach it could \
             watch, control and publish cameras. Pass --auth-secret-file FILE to require \
             tokens (make them with `sightline token`), or --insecure for a trusted LAN",
            args.http
        );
    }
    Ok(AuthMode::LoopbackOnly)
}

/// STUN and TURN for clients, with the TURN secret read from its file.
fn ice_config(args: &Settings) -> anyhow::Result<IceConfig> {
    let turn_secret = match &args.turn_secret_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading --turn-secret-file {}", file.display()))?;
            let secret = text.trim();
            if secret.is_empty() {
                anyhow::bail!("--turn-secret-file {} is empty", file.display());
            }
            Some(secret.as_bytes().to_vec())
        }
        None => None,
    };
    let ice = IceConfig {
        stun_urls: args.stun_urls.clone(),
        turn_urls: args.turn_urls.clone(),
        turn_secret,
        turn_ttl: args.turn_ttl,
    };
    ice.validate().map_err(anyhow::Error::msg)?;
    Ok(ice)
}

/// The built-in camera's token: it lives as long as the process.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // `sightline token` takes its settings from its own flags, never from a config file.
    let (args, layers) =
        Layers::parse::<Args>(|args| args.config.clone().filter(|_| args.command.is_none()))?;
    if let Some(Command::Token(token)) = args.command {
        return print_token(token);
    }
    let settings: Settings = layers.resolve(&[])?;
    check_combinations(&settings)?;
    if args.print_config {
        // Nothing to redact: secrets live in files, and only their paths are settings.
        print!("{}", sightline_config::to_toml(&settings)?);
        return Ok(());
    }
    let args = settings;
    let auth = auth_mode(&args)?;
    let ice = ice_config(&args)?;

    let config = ServerConfig {
        http_addr: args.http,
        web_client: args.web_root.map_or(WebClient::Embedded, WebClient::Folder),
        sfu: SfuConfig {
            udp_port: args.udp_port,
            tcp_port: if args.no_ice_tcp {
                None
            } else {
                Some(args.tcp_port.unwrap_or(args.udp_port))
            },
            bind_ips: args.media_ips,
            public_ip: args.public_ip,
            media_threads: args.media_threads,
            ..SfuConfig::default()
        },
        auth: auth.clone(),
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        cors_origins: args.cors_origins,
        ice,
        plain_loopback: args.demo,
        metrics_open: args.metrics_open,
        forget_after: (!args.forget_after.is_zero()).then_some(args.forget_after),
    };
    let server = server::start(config).await.context("starting the server")?;

    if args.demo {
        // The demo camera reaches the server the way any publisher does: over signaling and
        // ICE, through loopback, with a token of its own when tokens are on.
        let ws = server.local_ws_url();
        let mut camera = PublisherConfig::new(ws, "demo");
        if let AuthMode::Tokens(keys) = &auth {
            camera.token = Some(keys.issue_for(
                Role::Publish,
                Scope::Only(vec!["demo".into()]),
                DEMO_TOKEN_TTL,
                Some("demo-camera".into()),
            ));
        }
        camera.name = "Test pattern".into();
        camera.width = args.demo_width;
        camera.height = args.demo_height;
        camera.fps = args.demo_fps;
        camera.keyframe_interval = Duration::from_secs(10);
        tokio::spawn(async move {
            match sightline_publisher::run(camera).await {
                Ok(()) => tracing::info!("demo camera removed; it is back on the next start"),
                Err(e) => tracing::error!(error = %e, "demo camera stopped"),
            }
        });
    }

    let mut url = server.http_url();
    if let (AuthMode::Tokens(keys), true) = (&auth, args.demo) {
        // The person who started the demo gets a page that can watch and control it.
        let token = keys.issue_for(
            Role::Control,
            Scope::Only(vec!["demo".into()]),
            Duration::from_secs(24 * 3600),
            Some("demo-viewer".into()),
        );
        url = format!("{url}/?token={token}");
    }
    println!();
    println!("  Sightline is running. Open {url} in a browser.");
    println!(
        "  Media on UDP {:?}. Press Ctrl-C to stop.",
        server.sfu.local_addrs()
    );
    println!();

    let signal = stop_signal().await;
    tracing::info!(
        signal,
        "shutting down: every session is told server_stopping"
    );
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Wait for Ctrl-C (SIGINT) or, on Unix, SIGTERM (what systemd and `docker stop` send);
/// returns which.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the server");
                tokio::signal::ctrl_c().await.ok();
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok();
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_reads_its_variable_and_file_key() {
        let misnamed = sightline_config::misnamed_settings::<super::Settings>();
        assert!(misnamed.is_empty(), "{misnamed:?}");
    }
}
