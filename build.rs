//! Records the rustc version, the locked versions of the crates that decide numerical
//! results, and the git commit the binary is built from (with a dirty flag), so every run
//! folder can say exactly what produced it.

use std::process::Command;

const TRACKED: &[&str] = &[
    "hound",
    "symphonia",
    "rubato",
    "realfft",
    "rustfft",
    "yaml_serde",
    "safetensors",
    "rand_chacha",
    "candle-core",
    "candle-nn",
    "polars",
    "hf-hub",
];

/// `git <args>` in the package folder, trimmed, if it succeeds.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
    // The commit moves with HEAD and the branch refs; the dirty flag with the sources.
    for watched in [".git/HEAD", ".git/refs/heads", "src", "Cargo.toml"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    // Result files are outputs, not sources: they do not make a build dirty.
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)results",
    ])
    .map_or(String::new(), |s| (!s.is_empty()).to_string());
    println!("cargo:rustc-env=SLICER_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SLICER_BUILD_DIRTY={dirty}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned());
    println!("cargo:rustc-env=SLICER_RUSTC_VERSION={rustc_version}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name: Option<String> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if TRACKED.contains(&n.as_str()) {
                versions.push(format!("{n}={}", v.trim_matches('"')));
            }
        }
    }
    println!(
        "cargo:rustc-env=SLICER_DEPENDENCY_VERSIONS={}",
        versions.join(",")
    );
}
