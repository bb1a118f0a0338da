//! The `experiment` binary: resolved-spec printing, errors before any work, and a smoke run.

use std::path::Path;
use std::process::Command;

fn experiment(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn print_config_shows_resolved_defaults_and_overrides() {
    let (ok, stdout, _) = experiment(&[
        "experiments/slicer.yaml",
        "--print-config",
        "--set",
        "frontend.n_mels=80",
    ]);
    assert!(ok);
    assert!(
        stdout.contains("n_mels: 80")
            && stdout.contains("hop_length: 160")
            && stdout.contains("pad_mode: reflect"),
        "{stdout}"
    );
}

#[test]
fn a_bad_spec_fails_before_any_work_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        format!(
            "output: {{root: {}}}\ndata:\n  pretrain: {{type: synthetic}}\n  windowseconds: 1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = experiment(&[spec.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.yaml:4")
            && stderr.contains("windowseconds")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "no run folder is created for a bad spec"
    );
    let (ok, _, stderr) = experiment(&["experiments/slicer.yaml", "--set", "probe.epoch=3"]);
    assert!(!ok && stderr.contains("no key `probe.epoch`"), "{stderr}");
    let (ok, _, stderr) = experiment(&["experiments/nope.yaml"]);
    assert!(
        !ok && stderr.contains("nope.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn smoke_run_writes_a_run_folder_and_names_the_missing_stages() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("output.root={}", dir.path().display());
    let (ok, stdout, stderr) = experiment(&["experiments/smoke.yaml", "--set", &root]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("| vowels |") && stdout.contains("| environment |"),
        "{stdout}"
    );
    assert!(stdout.contains("pre-training: 6 steps"), "{stdout}");
    assert!(
        stdout.contains("stages not built yet") && stdout.contains("embed"),
        "{stdout}"
    );
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    for file in [
        "spec.yaml",
        "run.json",
        "norm_stats.json",
        "features.json",
        "floor.json",
        "metrics.parquet",
    ] {
        assert!(Path::new(&runs[0]).join(file).is_file(), "{file} missing");
    }
    let (ok, _, stderr) =
        experiment(&["experiments/smoke.yaml", "--set", &root, "--stage", "embed"]);
    assert!(!ok && stderr.contains("not built yet"), "{stderr}");
}
