//! The experiment layer as library calls: the stages of a spec without the binary.

use std::path::Path;

use slicer::experiment::{Experiment, Stage};
use slicer::progress::Silent;
use slicer::spec::LoadedSpec;

/// What identifies a score row and its value (not its timing).
type ScoreKey = (String, String, String, u64, String, f64);

fn score_key(r: &slicer::results::ScoreRow) -> ScoreKey {
    (
        r.encoder.clone(),
        r.task.clone(),
        r.protocol.clone(),
        r.seed,
        r.metric.clone(),
        r.value,
    )
}

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

/// Re-scoring one protocol of a finished run recomputes its rows in place and keeps the
/// others; a protocol the spec does not score, or a stage other than probe, is refused.
#[test]
fn rescoring_a_protocol_keeps_the_other_rows_in_place() {
    use slicer::eval::Protocol;
    let dir = tempfile::tempdir().unwrap();
    let loaded = smoke(
        dir.path(),
        &[
            "eval.encoders=[random_init]",
            "probe.protocols=[logistic, linear]",
            "probe.seeds=1",
        ],
    );
    let experiment = Experiment::create(&loaded, &Silent).unwrap();
    let run = &experiment.run_dir().path;
    let unscored = Experiment::resume(&loaded, run)
        .unwrap()
        .rescoring(vec![Protocol::Linear])
        .unwrap_err();
    assert!(
        unscored.to_string().contains("scores.parquet"),
        "{unscored}"
    );
    let first = experiment.run(Stage::Probe, &Silent).unwrap().scores;

    let refused = Experiment::resume(&loaded, run)
        .unwrap()
        .rescoring(vec![Protocol::Finetune])
        .unwrap_err();
    assert!(refused.to_string().contains("probe.protocols"), "{refused}");
    let wrong_stage = Experiment::resume(&loaded, run)
        .unwrap()
        .rescoring(vec![Protocol::Linear])
        .unwrap()
        .run(Stage::Floor, &Silent)
        .unwrap_err();
    assert!(
        wrong_stage.to_string().contains("--stage probe"),
        "{wrong_stage}"
    );

    let again = Experiment::resume(&loaded, run)
        .unwrap()
        .rescoring(vec![Protocol::Linear])
        .unwrap()
        .run(Stage::Probe, &Silent)
        .unwrap()
        .scores;
    assert!(first.iter().any(|r| r.protocol == "logistic"));
    assert_eq!(
        first.iter().map(score_key).collect::<Vec<_>>(),
        again.iter().map(score_key).collect::<Vec<_>>()
    );
    let written = slicer::results::read_scores(&run.join("scores.parquet")).unwrap();
    assert_eq!(written.len(), first.len());
}

/// The few-shot protocol scores every task once per budget and draw, on `k` clips per class
/// of train (and of valid) and the whole test split; the rows re-score in place; and the
/// protocol without its budgets is a spec error that names the key.
#[test]
fn few_shot_rows_use_k_clips_per_class_and_rescore_in_place() {
    use slicer::eval::Protocol;
    let dir = tempfile::tempdir().unwrap();
    let loaded = smoke(
        dir.path(),
        &[
            "eval.encoders=[random_init]",
            "probe.protocols=[logistic, logistic_few_shot]",
            "+probe.few_shot={per_class: [1, 2], draws: 2}",
        ],
    );
    let experiment = Experiment::create(&loaded, &Silent).unwrap();
    let first = experiment.run(Stage::Probe, &Silent).unwrap().scores;
    let full: Vec<_> = first
        .iter()
        .filter(|r| r.protocol == "logistic" && r.metric == "test_accuracy")
        .collect();
    assert!(!full.is_empty());
    for whole in &full {
        for k in [1u64, 2] {
            let rows: Vec<_> = first
                .iter()
                .filter(|r| {
                    r.protocol == format!("logistic_{k}_shot")
                        && r.metric == "test_accuracy"
                        && (r.encoder.as_str(), r.task.as_str())
                            == (whole.encoder.as_str(), whole.task.as_str())
                })
                .collect();
            assert_eq!(
                rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
                [0, 1],
                "one row per draw"
            );
            for r in rows {
                assert!(r.n_train < whole.n_train && r.n_train % k == 0, "{r:?}");
                assert_eq!(r.n_test, whole.n_test, "scored on the whole test split");
            }
        }
    }
    let again = Experiment::resume(&loaded, &experiment.run_dir().path)
        .unwrap()
        .rescoring(vec![Protocol::LogisticFewShot])
        .unwrap()
        .run(Stage::Probe, &Silent)
        .unwrap()
        .scores;
    assert_eq!(
        first.iter().map(score_key).collect::<Vec<_>>(),
        again.iter().map(score_key).collect::<Vec<_>>()
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    let err = LoadedSpec::load(&path, &["probe.protocols=[logistic_few_shot]".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("probe.few_shot"), "{err}");
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
    let run_table = experiment.run_dir().file("lape_table.md");
    assert!(run_table.is_file(), "the run's own table");
    assert!(
        !dir.path().join("lape_table.md").exists(),
        "a run leaves the table over every run alone"
    );
    assert!(report
        .to_string()
        .contains(&run_table.display().to_string()));
    let summary = Experiment::create(&loaded, &Silent)
        .unwrap()
        .run(Stage::Summary, &Silent)
        .unwrap();
    assert!(summary.to_string().contains("LAPE table"));
    assert!(
        dir.path().join("lape_table.md").is_file(),
        "--stage summary writes it"
    );
    let resumed = Experiment::resume(&loaded, &experiment.run_dir().path).unwrap();
    let again = resumed.run(Stage::Probe, &Silent).unwrap();
    let mut first: Vec<_> = report.scores.iter().map(score_key).collect();
    let mut second: Vec<_> = again.scores.iter().map(score_key).collect();
    first.sort_by(|a, b| a.partial_cmp(b).unwrap());
    second.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(first, second);
}
