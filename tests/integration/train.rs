//! Pre-training through the `experiment` binary: a run that is killed (SIGKILL, not a clean
//! exit) and resumed ends bit-identical to an uninterrupted one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

fn experiment(root: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_experiment"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "experiments/smoke.yaml",
            "--stage",
            "pretrain",
            "--set",
            &format!("output.root={}", root.display()),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn only_run(root: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn tensors(dir: &Path, file: &str) -> HashMap<String, Vec<u8>> {
    candle_core::safetensors::load(dir.join(file), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t): (String, Tensor)| {
            let bytes = match t.dtype() {
                candle_core::DType::I64 => t
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                _ => t
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            };
            (k, bytes)
        })
        .collect()
}

fn metrics_without_wall_clock(path: &Path) -> Vec<slicer::results::MetricRow> {
    slicer::results::read_metrics(path)
        .unwrap()
        .into_iter()
        .map(|r| slicer::results::MetricRow {
            clips_per_s: 0.0,
            data_wait_s: 0.0,
            ..r
        })
        .collect()
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn killed_and_resumed_run_is_bit_identical_to_a_straight_run() {
    killed_and_resumed(&[]);
}

/// With the same-clip mask (the queue's clip ids are checkpointed) and the cosine EMA
/// schedule (the momentum depends on the step).
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn killed_and_resumed_run_with_the_budget_recipe_is_bit_identical() {
    killed_and_resumed(&[
        "--set",
        "method.mask_same_clip=true",
        "--set",
        "method.ema_schedule=cosine",
    ]);
}

fn killed_and_resumed(recipe: &[&str]) {
    let straight = tempfile::tempdir().unwrap();
    let out = experiment(straight.path(), recipe).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let straight_run = only_run(straight.path());

    let killed = tempfile::tempdir().unwrap();
    let mut child = experiment(killed.path(), recipe).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_run = loop {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        let found = std::fs::read_dir(killed.path().join("runs"))
            .ok()
            .and_then(|mut runs| runs.next())
            .map(|r| r.unwrap().path())
            .filter(|run| run.join("checkpoints/step-00000002/state.json").is_file());
        if let Some(run) = found {
            child.kill().unwrap();
            child.wait().unwrap();
            break run;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        !killed_run.join("checkpoints/step-00000006").exists(),
        "killed after the last checkpoint: nothing to resume"
    );
    let resume_args = [recipe, &["--resume", killed_run.to_str().unwrap()]].concat();
    let resume = experiment(killed.path(), &resume_args).output().unwrap();
    assert!(
        resume.status.success(),
        "{}",
        String::from_utf8_lossy(&resume.stderr)
    );

    let (a, b) = (
        straight_run.join("checkpoints/step-00000006"),
        killed_run.join("checkpoints/step-00000006"),
    );
    for file in [
        "student.safetensors",
        "teacher.safetensors",
        "queue.safetensors",
        "optimizer.safetensors",
    ] {
        assert_eq!(
            tensors(&a, file),
            tensors(&b, file),
            "{file} differs after kill and resume"
        );
    }
    assert_eq!(
        std::fs::read_to_string(a.join("state.json")).unwrap(),
        std::fs::read_to_string(b.join("state.json")).unwrap()
    );
    let (ma, mb) = (
        metrics_without_wall_clock(&straight_run.join("metrics.parquet")),
        metrics_without_wall_clock(&killed_run.join("metrics.parquet")),
    );
    assert_eq!(ma.len(), 6);
    assert_eq!(
        ma, mb,
        "metrics (all but clips/s, which is wall clock) differ"
    );
    assert_eq!(
        slicer::checkpoint::list(&killed_run.join("checkpoints"))
            .unwrap()
            .len(),
        2,
        "keep_last: 2"
    );
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn resume_refuses_a_different_spec() {
    let root = tempfile::tempdir().unwrap();
    let out = experiment(root.path(), &["--set", "train.epochs=1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = only_run(root.path());
    let out = experiment(
        root.path(),
        &["--set", "train.epochs=3", "--resume", run.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("resume with the run's own spec.yaml"),
        "{stderr}"
    );
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn a_diverging_loss_stops_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let out = experiment(
        root.path(),
        &[
            "--set",
            "optimizer.lr=1e30",
            "--set",
            "train.checkpoint_every=1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("non-finite loss at step"),
        "{stderr}"
    );
    assert!(stderr.contains("Last good checkpoint"), "{stderr}");
}

/// A corpus of WAV files pre-trains to the same final state whether it is held in memory or
/// streamed from disk window by window (`data.loading`), and the choice leaves the spec's
/// hash alone.
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn streaming_the_corpus_trains_exactly_as_holding_it_in_memory() {
    use slicer::data::ClipAudio;
    use slicer::methods::learner;
    use slicer::progress::Silent;
    use slicer::spec::LoadedSpec;
    use slicer::train::pretrain_on;

    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    // The smoke spec's synthetic clips, written as 16 kHz float WAV files.
    let smoke = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    let synthetic = LoadedSpec::load(&smoke, &[]).unwrap().spec;
    let clips = slicer::data::pretrain_clips(&synthetic.data.pretrain, synthetic.seed).unwrap();
    for (i, clip) in clips.iter().enumerate() {
        let samples = clip.load(16_000).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(corpus.join(format!("{i:03}.wav")), spec).unwrap();
        samples.iter().for_each(|&s| w.write_sample(s).unwrap());
        w.finalize().unwrap();
    }
    assert!(matches!(clips[0], ClipAudio::SyntheticPretrain { .. }));
    let run = |loading: &str| {
        let loaded = LoadedSpec::load(
            &smoke,
            &[
                format!("data.pretrain={{type: folder, path: {}}}", corpus.display()),
                format!("+data.loading={loading}"),
            ],
        )
        .unwrap();
        let spec = &loaded.spec;
        let norm = slicer::experiment::eval_pipeline::normalization_stats(spec, &Silent).unwrap();
        let out = dir.path().join(loading);
        std::fs::create_dir(&out).unwrap();
        let device = candle_core::Device::Cpu;
        let learner = learner(&spec.method_setup(), &device).unwrap();
        let comm = slicer::distributed::from_env(&device).unwrap();
        let trained = pretrain_on(
            spec.pretrain_setup(),
            learner,
            &out,
            norm,
            false,
            &Silent,
            (&device, comm.as_ref()),
        )
        .unwrap();
        (spec.hash(), trained.state_digest, trained.steps)
    };
    let (memory, streamed) = (run("in_memory"), run("streaming"));
    assert!(memory.2 > 0);
    assert_eq!(memory, streamed, "same hash, same final state, same steps");
}
