//! The experiment layer as library calls: the stages of a spec without the binary.

use std::path::Path;

use slicer::experiment::{Experiment, Stage};
use slicer::progress::Silent;
use slicer::spec::LoadedSpec;

fn smoke(root: &Path, extra: &[&str]) -> LoadedSpec {
    let mut overrides = vec![format!("output.root={}", root.display())];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    LoadedSpec::load(&path, &overrides).unwrap()
}

/// The floor stage runs in-process and reports the scores it wrote; probing a pre-trained
/// encoder in a new run is refused before any folder is made.
#[test]
fn stages_run_in_process_and_report_their_scores() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = smoke(dir.path(), &[]);
    let err = Stage::Probe.check(&loaded.spec, false).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");

    let experiment = Experiment::create(&loaded, &Silent).unwrap();
    let report = experiment.run(Stage::Floor, &Silent).unwrap();
    assert!(!report.scores.is_empty());
    assert!(report
        .scores
        .iter()
        .all(|row| row.encoder == "bag_of_frames"));
    let run = experiment.run_dir();
    assert!(run.is_scored() && run.file("norm_stats.json").is_file());
    let text = report.to_string();
    assert!(
        text.contains("this run, test accuracy %") && text.contains("run folder: "),
        "{text}"
    );
}

/// Pre-training, probes and the LAPE table in-process; resuming the finished run and
/// probing again gives the same scores.
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn a_whole_run_in_process_and_its_resumed_probe_agree() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = smoke(dir.path(), &["probe.protocols=[logistic]"]);
    let experiment = Experiment::create(&loaded, &Silent).unwrap();
    let report = experiment.run(Stage::All, &Silent).unwrap();
    assert!(report.paragraphs[0].starts_with("pre-training (slicer): 6 steps"));
    assert!(dir.path().join("lape_table.md").is_file());
    let resumed = Experiment::resume(&loaded, &experiment.run_dir().path).unwrap();
    let again = resumed.run(Stage::Probe, &Silent).unwrap();
    let key = |r: &slicer::results::ScoreRow| {
        (
            r.encoder.clone(),
            r.task.clone(),
            r.protocol.clone(),
            r.seed,
            r.metric.clone(),
            r.value,
        )
    };
    let mut first: Vec<_> = report.scores.iter().map(key).collect();
    let mut second: Vec<_> = again.scores.iter().map(key).collect();
    first.sort_by(|a, b| a.partial_cmp(b).unwrap());
    second.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(first, second);
}
