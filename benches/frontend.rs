//! Log-mel throughput on 1 s clips, one clip at a time and as a parallel batch.
//!
//! `cargo bench --bench frontend` prints one JSON line per measurement in the shape of
//! benches/reference/bench_torch.py (`impl`, `bench`, `lib`, `mode`, `median_s`,
//! `median_quiet_s`, `throughput` in audio-seconds per second, ...), so
//! `python bench_summary.py torch.jsonl rust.jsonl` puts both side by side.
//! Options after `--`: `--reps N` (default 10), `--warmup N` (default 2), `--clips N` (64).

mod common;

use common::{arg, emit, time_reps};
use rand_distr::{Distribution, StandardNormal};
use slicer::features::{FrontendConfig, LogMelFrontend};

fn logmel_fields(mode: &str, clips: usize) -> serde_json::Value {
    serde_json::json!({"bench": "logmel", "lib": "slicer", "mode": mode, "clips": clips, "clip_s": 1.0, "sr": 16000, "out": [64, 101]})
}

fn main() {
    slicer::allocator::keep_freed_buffers();
    let (reps, warmup, n) = (arg("--reps", 10), arg("--warmup", 2), arg("--clips", 64));
    let mut rng = slicer::rng::stream(0, "bench/clips");
    let clips: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..16_000)
                .map(|_| {
                    let v: f32 = StandardNormal.sample(&mut rng);
                    0.1 * v
                })
                .collect::<Vec<f32>>()
        })
        .collect();
    let frontend = LogMelFrontend::new(&FrontendConfig::default());
    let single = time_reps(reps, warmup, 2.0, || {
        for clip in &clips {
            std::hint::black_box(frontend.compute(clip));
        }
    });
    emit(
        logmel_fields("single", n),
        warmup,
        &single,
        n as f64,
        "audio_s/s",
    );
    let batch = time_reps(reps, warmup, 2.0, || {
        std::hint::black_box(frontend.compute_batch(&clips));
    });
    emit(
        logmel_fields("batch", n),
        warmup,
        &batch,
        n as f64,
        "audio_s/s",
    );
}
