//! One SLICER training step (two directions, official order: two EMA updates, SGD as the
//! toolkit) at d=2048 on 64x96 inputs, batch 64 and 128, and eval-mode embedding throughput
//! at batch 256, printed as JSON lines in the shape of benches/reference/bench_torch.py
//! (`bench`: `train_step`, `infer_embed`).
//!
//! `cargo bench --bench train_step -- [--d 2048] [--reps 3] [--warmup 1] [--queue 65536]
//! [--batches 64,128] [--infer-batch 256] [--device cuda:0] [--precision bf16]`
//! (a CUDA device needs `--features cuda`; every repetition ends with a device synchronise).

mod common;

use candle_core::{Device, Tensor, Var};
use common::{arg, arg_parsed, emit, time_reps};
use rand_distr::{Distribution, StandardNormal};
use slicer::device::DeviceSpec;
use slicer::methods::{slicer_step, Fidelity, SlicerConfig};
use slicer::model::Precision;
use slicer::model::{Dropout, KeyQueue, ModelConfig, SlicerNet};
use slicer::optim::{Optimizer, OptimizerConfig};
use slicer::rng::stream;
use slicer::train::{dropout_streams, StepBatch, StepDropout};

fn randn(shape: (usize, usize, usize, usize), seed: u64, dev: &Device) -> Tensor {
    let mut rng = stream(seed, "bench/input");
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let values: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(values, shape, dev).expect("shape matches")
}

fn batches() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--batches")
        .and_then(|i| args.get(i + 1))
        .map_or(vec![64, 128], |v| {
            v.split(',').filter_map(|b| b.parse().ok()).collect()
        })
}

fn main() {
    slicer::allocator::keep_freed_buffers();
    let (d, reps, warmup, queue_size) = (
        arg("--d", 2048),
        arg("--reps", 3),
        arg("--warmup", 1),
        arg("--queue", 65_536),
    );
    let device: DeviceSpec = arg_parsed("--device").unwrap_or_default();
    let precision = match arg_parsed::<String>("--precision").as_deref() {
        Some("bf16") => Precision::Bf16,
        _ => Precision::F32,
    };
    let dev = device.open().expect("device");
    assert!(
        precision == Precision::F32 || !dev.is_cpu(),
        "--precision bf16 needs --device cuda:N: candle's CPU backend has no bf16 matmul"
    );
    let _autocast = slicer::model::autocast(precision);
    let sync = || dev.synchronize().expect("synchronise");
    let precision_name = format!("{precision:?}").to_lowercase();
    let cfg = ModelConfig {
        d,
        instance_dim: 128,
        n_clusters: 128,
        dropout: 0.3,
    };
    let objective = SlicerConfig {
        fidelity: Fidelity::Official,
        queue_size,
        ..SlicerConfig::default()
    };
    for batch in batches() {
        let student = SlicerNet::new(&cfg, 64, &mut stream(0, "bench/init"), &dev).expect("model");
        let teacher = student.duplicate(&cfg, 64, &dev).expect("teacher");
        let mut queue =
            KeyQueue::new(128, queue_size, &mut stream(0, "bench/queue"), &dev).expect("queue");
        let params: Vec<Var> = student.named_params().into_iter().map(|(_, v)| v).collect();
        let mut sgd = Optimizer::new(
            OptimizerConfig::Sgd {
                lr: 3e-4,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            params.len(),
        );
        let (x1, x2) = (
            randn((batch, 1, 64, 96), 1, &dev),
            randn((batch, 1, 64, 96), 2, &dev),
        );
        let mut step = 0u64;
        let timed = time_reps(reps, warmup, 0.0, || {
            step += 1;
            let mut streams = dropout_streams(0, step);
            let dropout = StepDropout::sampled(&mut streams);
            let clips: Vec<usize> = (0..batch).collect();
            let input = StepBatch {
                x1: &x1,
                x2: &x2,
                clips: &clips,
                comm: &slicer::distributed::SingleProcess,
                seed: 0,
                draw: step,
                progress: 0.0,
            };
            let result = slicer_step(
                &objective,
                (&student, &teacher),
                &mut queue,
                &input,
                objective.ema_momentum,
                dropout,
            )
            .expect("step");
            sgd.step(&params, &result.grads, 3e-4).expect("optimiser");
            sync();
        });
        let fields = serde_json::json!({"bench": "train_step", "d": d, "batch": batch, "input": [64, 96], "queue": queue_size, "optimizer": "sgd", "ema_per_step": 2, "device": device.to_string(), "precision": precision_name});
        emit(fields, warmup, &timed, batch as f64, "samples/s");
    }
    let infer_batch = arg("--infer-batch", 256);
    for width in [d, 512]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .rev()
    {
        let cfg = ModelConfig {
            d: width,
            ..cfg.clone()
        };
        let net = SlicerNet::new(&cfg, 64, &mut stream(0, "bench/init"), &dev).expect("model");
        let x = randn((infer_batch, 1, 64, 96), 3, &dev);
        let timed = time_reps(reps, warmup, 2.0, || {
            let frames = net
                .encoder
                .forward(&x, false, &mut Dropout::Off)
                .expect("forward");
            std::hint::black_box(slicer::model::pool_max_mean(&frames).expect("pool"));
            sync();
        });
        let fields = serde_json::json!({"bench": "infer_embed", "d": width, "batch": infer_batch, "input": [64, 96], "mode": "eval", "device": device.to_string(), "precision": precision_name});
        emit(fields, warmup, &timed, infer_batch as f64, "embeddings/s");
    }
}
