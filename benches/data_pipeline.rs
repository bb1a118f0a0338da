//! Host-side pre-training input: how many clips per second the background data thread turns
//! into two augmented, normalised log-mel views (random crop, log-mel, normalisation, k-mix,
//! Mixup, random resize-crop, as `experiments/slicer.yaml` configures them). This is the
//! ceiling on clips/s that any device can train at before it waits for data; compare it with
//! the `train_step` bench's clips/s on the same machine.
//!
//! `cargo bench --bench data_pipeline -- [--batch 64] [--batches 24] [--reps 3] [--warmup 1]
//! [--clips 512] [--workers N (default: the CPUs)]` prints one JSON line (`bench`:
//! `data_pipeline`, `throughput` in clips/s) per setting, in the record shape of
//! benches/reference/bench_torch.py. The corpus is the demo generator's pre-training clips
//! (1–3 s), held in memory as the trainer holds a small corpus (`loading: in_memory`); the
//! same clips written as 16 kHz float WAV files and streamed from disk (`loading:
//! streaming`, each window read by seeking) are measured with the spec's augmentations on one
//! worker and on `--workers`. `others_total` overstates other processes' load here: the producer thread
//! ends inside each repetition, so its CPU time is not counted as this process's.

mod common;

use std::sync::Arc;

use common::{arg, emit, time_reps};
use slicer::augment::AugmentConfig;
use slicer::data::{ClipAudio, Loading, PretrainCorpus};
use slicer::features::{LogMelFrontend, NormStats};
use slicer::spec::LoadedSpec;
use slicer::train::{fit_centroids, BatchPlan};

fn main() {
    slicer::allocator::keep_freed_buffers();
    let (batch, batches) = (arg("--batch", 64), arg("--batches", 24));
    let workers_max = arg("--workers", common::nproc());
    let (reps, warmup, n_clips) = (arg("--reps", 3), arg("--warmup", 1), arg("--clips", 512));
    let spec_path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/slicer.yaml");
    let spec = LoadedSpec::load(std::path::Path::new(spec_path), &[])
        .expect("experiments/slicer.yaml loads")
        .spec;
    let clips: Vec<Vec<f32>> = (0..n_clips as u64)
        .map(|i| slicer::data::synthetic::render_pretrain(spec.seed, i, (1.0, 3.0)))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let files: Vec<ClipAudio> = clips
        .iter()
        .enumerate()
        .map(|(i, samples)| {
            let path = dir.path().join(format!("clip{i:05}.wav"));
            let wav = hound::WavSpec {
                channels: 1,
                sample_rate: spec.frontend.sample_rate,
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
            };
            let mut writer = hound::WavWriter::create(&path, wav).expect("WAV written");
            samples
                .iter()
                .for_each(|&s| writer.write_sample(s).expect("sample written"));
            writer.finalize().expect("WAV closed");
            ClipAudio::File { path, origin: None }
        })
        .collect();
    let corpus = Arc::new(PretrainCorpus::InMemory(clips));
    let streamed = Arc::new(
        PretrainCorpus::open(
            &files,
            spec.frontend.sample_rate,
            Loading::Streaming,
            false,
            &slicer::progress::Silent,
        )
        .expect("the WAV files index"),
    );
    let frontend = Arc::new(LogMelFrontend::new(&spec.frontend));
    let norm = NormStats {
        mean: -6.0,
        std: 5.0,
        n_clips: 0,
    };
    let window = spec.frontend.samples(spec.data.window_seconds);
    let centroids = spec.augment.kmix.as_ref().map(|k| {
        fit_centroids(&corpus, &frontend, &norm, window, k, spec.seed).expect("k-means fits")
    });
    // Each repetition starts fresh workers (an unbounded-epoch stream) and takes `batches`
    // batches; a one-batch queue per worker makes them the bottleneck. Measured with the
    // spec's augmentations on one worker, with none (crop, log-mel and normalisation only:
    // what the augmentations cost), and with the spec's on `--workers` workers.
    let none = AugmentConfig {
        mixup: None,
        rrc: None,
        kmix: None,
        ..spec.augment.clone()
    };
    let runs = [
        ("spec", &spec.augment, 1, &corpus, "in_memory"),
        ("none", &none, 1, &corpus, "in_memory"),
        ("spec", &spec.augment, workers_max, &corpus, "in_memory"),
        ("spec", &spec.augment, 1, &streamed, "streaming"),
        ("spec", &spec.augment, workers_max, &streamed, "streaming"),
    ];
    for (label, augment, workers, corpus, loading) in runs {
        let plan = || BatchPlan {
            corpus: corpus.clone(),
            frontend: frontend.clone(),
            norm,
            augment: augment.clone(),
            centroids: centroids.clone(),
            window,
            batch_size: batch,
            epochs: usize::MAX,
            seed: spec.seed,
            shard: (0, 1),
            workers,
        };
        let timed = time_reps(reps, warmup, 0.0, || {
            let mut queue = plan().spawn(0, 0, workers);
            for _ in 0..batches {
                std::hint::black_box(
                    queue
                        .recv()
                        .expect("the workers run")
                        .expect("the clips read"),
                );
            }
            queue
                .finish()
                .expect("the workers end when the queue closes");
        });
        emit(
            serde_json::json!({
                "bench": "data_pipeline", "lib": "slicer", "augment": label, "workers": workers,
                "loading": loading,
                "batch": batch,
                "batches": batches, "clips": n_clips, "window_s": spec.data.window_seconds,
            }),
            warmup,
            &timed,
            (batch * batches) as f64,
            "clips/s",
        );
    }
}
