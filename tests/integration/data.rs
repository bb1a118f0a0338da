//! Datasets on disk (manifest CSV, the make_tasks.sh layout, folders) built in a temp dir by
//! the test itself, and the built stages end to end on experiments/smoke.yaml.

use std::path::Path;

use crate::common::{pcm16, tone, write_wav};
use slicer::cache::{FeatureCache, FeaturePrecision};
use slicer::data::{pretrain_clips, PretrainSource, Split, Task, TaskConfig, TaskSource};
use slicer::experiment::eval_pipeline;
use slicer::progress::Silent;
use slicer::spec::LoadedSpec;

fn wav(dir: &Path, rel: &str, freq: f32) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_wav(&path, pcm16(16_000), &tone(freq, 16_000, 8000));
}

fn task(source: TaskSource) -> TaskConfig {
    TaskConfig {
        name: "t".into(),
        source,
        window_seconds: Some(1.0),
    }
}

/// Writes `OUT/<task>/labels.csv` and its wavs as make_tasks.sh does.
fn make_tasks_layout(out: &Path) {
    let mut csv = String::from("path,label,split\n");
    for (i, (label, split)) in [
        ("yes", "train"),
        ("no", "train"),
        ("yes", "valid"),
        ("no", "test"),
        ("yes", "test"),
    ]
    .iter()
    .enumerate()
    {
        let rel = format!("wav/{split}_{i:05}_{label}.wav");
        wav(&out.join("kws"), &rel, 300.0 + 100.0 * i as f32);
        csv += &format!("{rel},{label},{split}\n");
    }
    std::fs::write(out.join("kws/labels.csv"), csv).unwrap();
    let mut pre = String::from("path,category,source,seconds\n");
    for i in 0..3 {
        let rel = format!("pretrain/speech_{i:06}.wav");
        wav(out, &rel, 200.0 + 50.0 * i as f32);
        pre += &format!("{rel},speech,espeak,0.5\n");
    }
    std::fs::write(out.join("pretrain.csv"), pre).unwrap();
}

#[test]
fn make_tasks_layout_loads_tasks_and_pretrain_csv() {
    let dir = tempfile::tempdir().unwrap();
    make_tasks_layout(dir.path());
    let t = Task::from_config(
        &task(TaskSource::MakeTasks {
            root: dir.path().into(),
            task: "kws".into(),
        }),
        0,
    )
    .unwrap();
    assert_eq!(
        t.classes,
        vec!["no", "yes"],
        "classes are sorted, not in set order (docs/method.md §12.15)"
    );
    assert_eq!(
        [Split::Train, Split::Valid, Split::Test].map(|s| t.split(s).count()),
        [2, 1, 2]
    );
    let audio = t.clips[0].audio.load(16_000).unwrap();
    assert_eq!(audio.len(), 8000);
    let pre = pretrain_clips(
        &PretrainSource::Csv {
            path: dir.path().join("pretrain.csv"),
            column: None,
        },
        0,
    )
    .unwrap();
    assert_eq!(pre.len(), 3);
    assert!(pre[2].id().ends_with("speech_000002.wav"));
}

#[test]
fn manifest_errors_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    wav(dir.path(), "a.wav", 440.0);
    let cases = [
        (
            "path,label,split\na.wav,x,train\nmissing.wav,x,test\n",
            ":3:",
            "missing.wav does not exist",
        ),
        (
            "path,label,split\na.wav,x,train\na.wav,x,holdout\n",
            ":3:",
            "unknown split `holdout`",
        ),
        (
            "path,label,split\na.wav,x,train\na.wav,y,test\n",
            ":3:",
            "never occurs in the train split",
        ),
        (
            "file,label,split\na.wav,x,train\n",
            ":1:",
            "no `path` column",
        ),
        ("path,label,split\n", ":1:", "no rows"),
    ];
    for (i, (text, row, message)) in cases.iter().enumerate() {
        let csv = dir.path().join(format!("m{i}.csv"));
        std::fs::write(&csv, text).unwrap();
        let err = Task::from_config(&task(TaskSource::Manifest { path: csv.clone() }), 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("m{i}.csv{row}")) && err.contains(message),
            "case {i}: {err}"
        );
    }
}

#[test]
fn unreadable_audio_in_a_manifest_names_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    wav(dir.path(), "a.wav", 440.0);
    std::fs::write(
        dir.path().join("broken.wav"),
        b"RIFF\x00\x00\x00\x00WAVEjunk",
    )
    .unwrap();
    let csv = dir.path().join("labels.csv");
    std::fs::write(
        &csv,
        "path,label,split\na.wav,x,train\nbroken.wav,x,valid\na.wav,x,test\n",
    )
    .unwrap();
    let t = Task::from_config(&task(TaskSource::Manifest { path: csv }), 0).unwrap();
    let err = t
        .split(Split::Valid)
        .next()
        .unwrap()
        .audio
        .load(16_000)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels.csv:3") && err.contains("broken.wav"),
        "{err}"
    );
}

#[test]
fn folder_source_lists_audio_recursively_and_rejects_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    wav(dir.path(), "b/x.WAV", 300.0);
    wav(dir.path(), "a.wav", 300.0);
    std::fs::write(dir.path().join("notes.txt"), "not audio").unwrap();
    let clips = pretrain_clips(
        &PretrainSource::Folder {
            path: dir.path().into(),
        },
        0,
    )
    .unwrap();
    assert_eq!(clips.len(), 2);
    let empty = tempfile::tempdir().unwrap();
    let err = pretrain_clips(
        &PretrainSource::Folder {
            path: empty.path().into(),
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no .wav or .flac"), "{err}");
}

fn smoke(output: &Path, overrides: &[&str]) -> LoadedSpec {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    let mut o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    o.push(format!("output.root={}", output.display()));
    LoadedSpec::load(&spec, &o).unwrap()
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn smoke_stages_are_deterministic_and_cached() {
    let out = tempfile::tempdir().unwrap();
    let loaded = smoke(out.path(), &[]);
    let spec = &loaded.spec;
    let t = Task::from_config(&spec.data.tasks[0], spec.seed).unwrap();
    let cache = FeatureCache::new(out.path().join("cache"));
    let first = eval_pipeline::task_features(spec, &t, &cache, &Silent).unwrap();
    assert_eq!(
        first.splits.each_ref().map(|s| s.labels.len()),
        [30, 10, 20]
    );
    assert_eq!(first.splits[0].spectrograms.shape(), (64, 101));
    let cached = cache
        .path(
            &spec.frontend,
            &t,
            Split::Train,
            false,
            FeaturePrecision::F32,
        )
        .join("index.json");
    let stamp = std::fs::metadata(&cached).unwrap().modified().unwrap();
    let second = eval_pipeline::task_features(spec, &t, &cache, &Silent).unwrap();
    assert_eq!(second.splits, first.splits);
    assert_eq!(
        std::fs::metadata(&cached).unwrap().modified().unwrap(),
        stamp,
        "a cache hit does not rewrite"
    );

    let stats = eval_pipeline::normalization_stats(spec, &Silent).unwrap();
    assert_eq!(
        stats,
        eval_pipeline::normalization_stats(spec, &Silent).unwrap()
    );
    assert_eq!(stats.n_clips, 8);
    let reseeded = smoke(out.path(), &["seed=8"]);
    assert_ne!(
        stats,
        eval_pipeline::normalization_stats(&reseeded.spec, &Silent).unwrap()
    );

    let ctx = slicer::eval::ScoreContext {
        run: "r".into(),
        spec: "smoke".into(),
        spec_hash: "0".into(),
        seed: 7,
    };
    let floor = eval_pipeline::floor_scores(spec, &ctx, &first).unwrap();
    // 2 seeds x (linear: test, valid, train + linear_lape: test).
    assert_eq!(floor.len(), 2 * 4);
    assert!(floor
        .iter()
        .all(|r| r.encoder == "bag_of_frames" && (r.n_train, r.n_valid, r.n_test) == (30, 10, 20)));
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn run_folder_records_spec_and_provenance() {
    let out = tempfile::tempdir().unwrap();
    let loaded = smoke(out.path(), &["probe.seeds=1"]);
    let run = slicer::run::RunDir::create(&loaded).unwrap();
    let again = slicer::run::RunDir::create(&loaded).unwrap();
    assert_ne!(
        run.path, again.path,
        "two runs in the same second get their own folders"
    );
    assert!(run.id.contains("-smoke-") && run.id.ends_with(&loaded.spec.hash()[..8]));
    let provenance: slicer::run::Provenance =
        serde_json::from_slice(&std::fs::read(run.file("run.json")).unwrap()).unwrap();
    assert_eq!(
        (provenance.seed, provenance.spec_hash.as_str()),
        (7, loaded.spec.hash().as_str())
    );
    assert_eq!(provenance.overrides.len(), 2);
    assert!(
        provenance.dependencies.contains_key("realfft") && provenance.rustc.starts_with("rustc")
    );
    let host = provenance.host.expect("run.json records the host");
    assert!(host.threads >= 1 && host.arch == std::env::consts::ARCH);
    let saved = LoadedSpec::load(&run.file("spec.yaml"), &[]).unwrap();
    assert_eq!(
        saved.spec.hash(),
        loaded.spec.hash(),
        "spec.yaml reproduces the run"
    );
    // The newest run of the spec named `smoke` holding run.json is the second; no other name.
    let root = out.path();
    let newest = slicer::run::newest_run(root, "smoke", "run.json").unwrap();
    assert_eq!(newest.map(|r| r.path), Some(again.path.clone()));
    assert!(slicer::run::newest_run(root, "smok", "run.json")
        .unwrap()
        .is_none());
    assert!(slicer::run::newest_run(root, "smoke", "scores.parquet")
        .unwrap()
        .is_none());
}
