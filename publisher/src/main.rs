//! `sightline-publisher`: publish video sources to a Sightline server over WebRTC.

use std::path::PathBuf;

use clap::Parser;
use sightline_config::Layers;
use sightline_publisher::settings::{self, Settings};
use tracing::Instrument;

// No `Debug`: the settings hold the token.
#[derive(Parser)]
#[command(name = "sightline-publisher", version, about)]
/// Publish a camera (or a synthetic test pattern) to a Sightline server. Connects out only,
/// and reconnects by itself whenever the server or the network goes away. A config file may
/// list several cameras, all published by this one process. A camera the server removes
/// (DELETE /api/cameras/ID) stops; once every camera has, the publisher exits with status 3,
/// which its systemd unit does not restart.
struct Args {
    /// TOML file of settings. A key is a setting's variable name without `SIGHTLINE_`, in
    /// lower case with `-` for `_` (`camera-id = "porch"`, `bitrate = "1M"`). `[[camera]]`
    /// tables publish several cameras, each table's keys over the top level's. The
    /// environment overrides the file, and flags override both. `--print-config` prints one.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the settings in force (the file, the environment and the flags merged) as TOML,
    /// the token and passwords shown as ***, and exit.
    #[arg(long)]
    print_config: bool,
    /// Print every V4L2 camera with its formats (for --source v4l2:...) and exit.
    #[arg(long)]
    list_cameras: bool,
    #[command(flatten)]
    settings: Settings,
}

/// The exit status once the server removed every camera: a supervisor should not restart the
/// publisher (`RestartPreventExitStatus=3` in packaging/sightline-publisher@.service).
const REMOVED_EXIT_STATUS: i32 = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (args, layers) = Layers::parse::<Args>(|args| args.config.clone())?;
    if args.list_cameras {
        let cameras = sightline_publisher::source::v4l2::list_cameras()?;
        print!(
            "{}",
            sightline_publisher::source::v4l2::format_listing(&cameras)
        );
        return Ok(());
    }
    let cameras = settings::cameras(&layers)?;
    let mut configs = Vec::with_capacity(cameras.len());
    for camera in &cameras {
        let config = camera.clone().into_config()?;
        // Every camera's mistakes before any camera starts (or settings are printed).
        sightline_publisher::config::check(&config)
            .map_err(|e| e.context(format!("camera {}", config.camera_id)))?;
        configs.push(config);
    }
    if args.print_config {
        print!("{}", settings::print(&cameras)?);
        return Ok(());
    }
    let several = configs.len() > 1;
    let runs = configs.into_iter().map(|config| {
        // With several cameras, every line says whose it is.
        let span = match several {
            true => tracing::info_span!("camera", id = %config.camera_id),
            false => tracing::Span::none(),
        };
        sightline_publisher::run(config).instrument(span)
    });
    tokio::select! {
        r = futures_util::future::try_join_all(runs) => {
            r?;
            // Every camera's run ended without an error: the server removed them all.
            tracing::info!("every camera was removed by the server; exiting");
            std::process::exit(REMOVED_EXIT_STATUS);
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; exiting");
            Ok(())
        }
    }
}
