//! Records the rustc version and the locked versions of the crates that decide numerical
//! results, so every run folder can say exactly what produced it.

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

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
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
