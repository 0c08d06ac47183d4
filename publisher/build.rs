//! Compiles the VP8 shim (`src/vp8/shim.c`) over the system's libvpx, only with the `vp8`
//! feature and only for Linux, and then sets `cfg(sightline_vp8)`, which the code tests. So
//! the default build has VP8 on Linux, and a build for another system (or with
//! `--no-default-features`) needs neither libvpx nor a C compiler.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(sightline_vp8)");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if std::env::var_os("CARGO_FEATURE_VP8").is_none() || !linux {
        return;
    }
    println!("cargo:rustc-cfg=sightline_vp8");
    println!("cargo:rerun-if-changed=src/vp8/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // pkg-config knows where a non-standard libvpx lives; without it (or without a .pc file)
    // the system's default paths and plain `-lvpx` are tried.
    let cflags = pkg_config(&["--cflags", "vpx"]);
    let libs = pkg_config(&["--libs", "vpx"]);

    let mut build = cc::Build::new();
    build.file("src/vp8/shim.c").warnings(true);
    for flag in cflags.iter().flatten() {
        if let Some(dir) = flag.strip_prefix("-I") {
            build.include(dir);
        } else {
            build.flag(flag);
        }
    }
    build.compile("sightline_vp8_shim");

    // After the shim's own link line, so the static shim finds libvpx's symbols.
    match libs {
        Some(libs) => {
            for flag in libs {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={dir}");
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib={lib}");
                }
            }
        }
        None => println!("cargo:rustc-link-lib=vpx"),
    }
}

/// The words `pkg-config ARGS` prints, or `None` if it is missing or knows no libvpx.
fn pkg_config(args: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("pkg-config").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.split_whitespace().map(str::to_owned).collect())
}
