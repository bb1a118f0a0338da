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

/// One run evaluated at chosen steps (`eval.at_steps`) gives, at each, exactly the scores of
/// the run that stops there: the learning rate and the teacher's momentum are constant, so
/// the first N steps of a long run are the N-step run. The kept checkpoints outlive
/// `keep_last`, and a step past the run's end is refused before any training.
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn a_run_evaluated_at_its_steps_scores_as_the_shorter_runs() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    // smoke.yaml: 12 clips in batches of 4, 3 steps per epoch; checkpoints every 2, 2 kept.
    let protocols = "probe.protocols=[logistic, linear]";
    let long = smoke(
        dir.path(),
        &[protocols, "train.epochs=3", "+eval.at_steps=[3, 6, 9]"],
    );
    let experiment = Experiment::create(&long, &Silent).unwrap();
    let report = experiment.run(Stage::All, &Silent).unwrap();
    let kept: Vec<String> = slicer::checkpoint::list(&experiment.run_dir().file("checkpoints"))
        .unwrap()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kept,
        [
            "step-00000003",
            "step-00000006",
            "step-00000008",
            "step-00000009"
        ]
    );
    let by_encoder = |rows: &[slicer::results::ScoreRow]| {
        let mut out: BTreeMap<(String, Option<u64>), Vec<ScoreKey>> = BTreeMap::new();
        for r in rows {
            let mut key = score_key(r);
            key.0 = String::new();
            out.entry((r.encoder.clone(), r.step))
                .or_default()
                .push(key);
        }
        for keys in out.values_mut() {
            keys.sort_by(|a, b| a.partial_cmp(b).unwrap());
        }
        out
    };
    let long_rows = by_encoder(&report.scores);
    let names: Vec<_> = long_rows.keys().cloned().collect();
    let named = |n: &str, s: Option<u64>| (n.to_owned(), s);
    assert_eq!(
        names,
        [
            named("bag_of_frames", None),
            named("random_init", Some(0)),
            named("slicer", Some(9)),
            named("slicer@3", Some(3)),
            named("slicer@6", Some(6)),
        ]
    );
    for epochs in [1, 2] {
        let short = smoke(dir.path(), &[protocols, &format!("train.epochs={epochs}")]);
        let rows = Experiment::create(&short, &Silent)
            .unwrap()
            .run(Stage::All, &Silent)
            .unwrap()
            .scores;
        let short_rows = by_encoder(&rows);
        let step = 3 * epochs as u64;
        assert_eq!(
            long_rows[&named(&format!("slicer@{step}"), Some(step))],
            short_rows[&named("slicer", Some(step))],
            "step {step} of the long run against the {epochs}-epoch run"
        );
        assert_eq!(
            long_rows[&named("random_init", Some(0))],
            short_rows[&named("random_init", Some(0))]
        );
    }
    let too_far = smoke(dir.path(), &["train.epochs=1", "+eval.at_steps=[4]"]);
    let err = Experiment::create(&too_far, &Silent)
        .unwrap()
        .run(Stage::All, &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("eval.at_steps: step 4 is past this run's last step, 3"),
        "{err}"
    );
}

/// Embeddings made elsewhere, in the documented layout (`<dir>/<task>/<split>.parquet` with
/// `file` and `embedding`, or `.npy`), are scored by the same protocols to the same values as
/// the encoder that made them; a layout that does not fit is an error naming the file.
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn precomputed_embeddings_score_exactly_as_the_encoder_that_made_them() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let common = ["probe.protocols=[logistic, linear]", "eval.floor=false"];
    let made = smoke(
        dir.path(),
        &[&common[..], &["eval.encoders=[random_init]"]].concat(),
    );
    let first = Experiment::create(&made, &Silent)
        .unwrap()
        .run(Stage::All, &Silent)
        .unwrap();
    // What that run scored, from its embedding cache (entries `<task>-<split>-...`), written
    // as a tool elsewhere would: valid splits as Parquet (rows shuffled), the others as .npy.
    let cache = slicer::cache::EmbeddingCache::new(dir.path().join("cache/embeddings"));
    let out = dir.path().join("precomputed");
    for entry in std::fs::read_dir(dir.path().join("cache/embeddings")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut parts = name.split('-');
        let (task, split) = (parts.next().unwrap(), parts.next().unwrap());
        let e = cache.load(&path).unwrap();
        std::fs::create_dir_all(out.join(task)).unwrap();
        let rows: Vec<&[f32]> = e.values.chunks(e.dim).collect();
        if split == "valid" {
            let order: Vec<usize> = (0..rows.len()).rev().collect();
            let files: Vec<String> = order.iter().map(|i| format!("valid/{i:06}.wav")).collect();
            let lists: Vec<Series> = order
                .iter()
                .map(|&i| Series::new("".into(), rows[i]))
                .collect();
            let mut df = DataFrame::new_infer_height(vec![
                Column::new("file".into(), files),
                Column::new("embedding".into(), lists),
            ])
            .unwrap();
            let file = std::fs::File::create(out.join(task).join("valid.parquet")).unwrap();
            ParquetWriter::new(file).finish(&mut df).unwrap();
        } else {
            let t = candle_core::Tensor::from_vec(
                e.values.clone(),
                (rows.len(), e.dim),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            t.write_npy(out.join(task).join(format!("{split}.npy")))
                .unwrap();
        }
    }
    let precomputed = format!(
        "eval.encoders=[{{precomputed: {{path: {}, name: random_init}}}}]",
        out.display()
    );
    let read = smoke(dir.path(), &[&common[..], &[precomputed.as_str()]].concat());
    let second = Experiment::create(&read, &Silent)
        .unwrap()
        .run(Stage::All, &Silent)
        .unwrap();
    let key = |r: &slicer::results::ScoreRow| {
        (
            r.task.clone(),
            r.protocol.clone(),
            r.seed,
            r.metric.clone(),
            r.value,
        )
    };
    let mut a: Vec<_> = first.scores.iter().map(key).collect();
    let mut b: Vec<_> = second.scores.iter().map(key).collect();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "the same scores from the embeddings as from the encoder"
    );
    // A missing split is an error that names where it looked.
    std::fs::remove_file(out.join("vowels/test.npy")).unwrap();
    let err = Experiment::create(&read, &Silent)
        .unwrap()
        .run(Stage::All, &Silent)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("test.parquet or test.npy"),
        "{err:#}"
    );
}
