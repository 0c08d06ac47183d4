//! The systemd units in `packaging/`: `systemd-analyze verify` finds nothing to say about
//! them (unknown keys and bad values are printed, not failed, so any output fails here),
//! and every flag their `ExecStart` passes is one the binary has.

use std::path::PathBuf;
use std::process::Command;

use sightline_tests::child::workspace_binary;

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// The unit's text with `/usr/local/bin/X` pointing at the built binary (verify checks
/// that `ExecStart` exists and is executable).
fn unit_with_built_binaries(name: &str) -> String {
    let text = std::fs::read_to_string(packaging().join(name)).unwrap();
    let bin = workspace_binary("sightline").unwrap();
    text.replace(
        "/usr/local/bin/",
        &format!("{}/", bin.parent().unwrap().display()),
    )
}

/// The `--flags` of the unit's `ExecStart` (continuation lines included).
fn exec_flags(unit: &str) -> Vec<String> {
    let start = unit.find("ExecStart=").expect("an ExecStart");
    let mut command = String::new();
    for line in unit[start..].lines() {
        command.push_str(line.trim_end_matches('\\'));
        if !line.ends_with('\\') {
            break;
        }
    }
    command
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn units_verify_cleanly_and_pass_only_real_flags() {
    let dir = sightline_tests::temp::TempPath::dir("units").unwrap();
    let mut paths = Vec::new();
    for (file, instance, binary) in [
        ("sightline.service", "sightline.service", "sightline"),
        (
            "sightline-publisher@.service",
            "sightline-publisher@front-door.service",
            "sightline-publisher",
        ),
    ] {
        let unit = unit_with_built_binaries(file);
        let help = Command::new(workspace_binary(binary).unwrap())
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        let flags = exec_flags(&unit);
        assert!(flags.len() >= 2, "{file}: {flags:?}");
        for flag in flags {
            assert!(
                help.contains(&flag),
                "{file} passes {flag}, which {binary} lacks"
            );
        }
        let path = dir.path().join(instance);
        std::fs::write(&path, unit).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
