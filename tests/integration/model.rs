//! Parity with the PyTorch fixtures (tests/fixtures/slicer_step.safetensors and
//! update_rules.safetensors): one official SLICER step, every activation, loss, gradient,
//! optimiser result, BN buffer, EMA and eval output, within the fixture README's tolerance
//! `|a - b| <= 1e-4 + 1e-3 |b|`.

use crate::common;

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use slicer::loss::nt_xent;
use slicer::methods::{slicer_step, Fidelity, SlicerConfig};
use slicer::model::{Dropout, KeyQueue, ModelConfig, SlicerNet, SlicerOutput};
use slicer::optim::{Optimizer, OptimizerConfig};
use slicer::train::{StepBatch, StepDropout};

fn fixture(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(common::fixtures_dir().join(name), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Asserts `|a - b| <= abs + rel |b|` elementwise.
fn close_with(name: &str, a: &Tensor, b: &Tensor, abs: f32, rel: f32) {
    assert_eq!(a.dims(), b.dims(), "{name}: shape");
    let (a, b) = (values(a), values(b));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() - (abs + rel * y.abs()))
        .fold(f32::NEG_INFINITY, f32::max);
    assert!(worst <= 0.0, "{name}: exceeds the tolerance by {worst}");
}

fn close(name: &str, a: &Tensor, b: &Tensor) {
    close_with(name, a, b, 1e-4, 1e-3);
}

fn toy_config() -> ModelConfig {
    ModelConfig {
        d: 16,
        instance_dim: 20,
        n_clusters: 10,
        dropout: 0.3,
    }
}

fn check_outputs(f: &HashMap<String, Tensor>, key: &str, out: &SlicerOutput) {
    close(
        &format!("{key}.frames"),
        &out.frames,
        &f[&format!("out.{key}.frames")],
    );
    close(
        &format!("{key}.pooled"),
        &out.pooled,
        &f[&format!("out.{key}.pooled")],
    );
    close(&format!("{key}.z"), &out.z, &f[&format!("out.{key}.z")]);
    close(&format!("{key}.c"), &out.c, &f[&format!("out.{key}.c")]);
}

fn scalar(f: &HashMap<String, Tensor>, name: &str) -> f32 {
    f[name].to_scalar::<f32>().unwrap()
}

fn prefixed(f: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    f.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v.clone())))
        .collect()
}

/// The fixture's initial student, its teacher copy and the initial queue (on the device of
/// the fixture's tensors).
fn fixture_nets(f: &HashMap<String, Tensor>) -> (SlicerNet, SlicerNet, KeyQueue) {
    let dev = f["queue.init"].device().clone();
    let cfg = toy_config();
    let student = SlicerNet::new(&cfg, 64, &mut slicer::rng::stream(1, "test"), &dev).unwrap();
    student.load_state(&prefixed(f, "init.")).unwrap();
    let teacher = student.duplicate(&cfg, 64, &dev).unwrap();
    let queue = KeyQueue {
        keys: f["queue.init"].clone(),
        ptr: 0,
        ids: vec![-1; f["queue.init"].dim(1).unwrap()],
    };
    (student, teacher, queue)
}

/// One step on the fixture's inputs with its dropout masks.
fn fixture_step(
    f: &HashMap<String, Tensor>,
    objective: &SlicerConfig,
    student: &SlicerNet,
    teacher: &SlicerNet,
    queue: &mut KeyQueue,
) -> slicer::methods::StepResult {
    let dropout = StepDropout {
        student_v1: Dropout::Mask(&f["mask.student_v1"]),
        student_v2: Dropout::Mask(&f["mask.student_v2"]),
        teacher_v2: Dropout::Mask(&f["mask.teacher_v2"]),
        teacher_v1: Dropout::Mask(&f["mask.teacher_v1"]),
    };
    let clips: Vec<usize> = (0..f["input.x1"].dim(0).unwrap()).collect();
    let batch = StepBatch {
        x1: &f["input.x1"],
        x2: &f["input.x2"],
        clips: &clips,
        comm: &slicer::distributed::SingleProcess,
        seed: 0,
        draw: 0,
        progress: 0.0,
    };
    slicer_step(
        objective,
        (student, teacher),
        queue,
        &batch,
        objective.ema_momentum,
        dropout,
    )
    .unwrap()
}

#[test]
fn official_step_matches_the_fixture() {
    let f = fixture("slicer_step.safetensors");
    let (student, teacher, mut queue) = fixture_nets(&f);
    let objective = SlicerConfig {
        fidelity: Fidelity::Official,
        queue_size: 24,
        ..SlicerConfig::default()
    };
    let step = fixture_step(&f, &objective, &student, &teacher, &mut queue);

    check_outputs(&f, "student_v1", &step.student[0]);
    check_outputs(&f, "student_v2", &step.student[1]);
    check_outputs(&f, "teacher_v1", &step.teacher[0]);
    check_outputs(&f, "teacher_v2", &step.teacher[1]);
    let l = step.losses;
    for (name, ours) in [
        ("loss.instance_A", l.instance_a),
        ("loss.instance_B", l.instance_b),
        ("loss.instance", l.instance_a + l.instance_b),
        ("loss.cluster", l.cluster),
        ("loss.entropy", l.entropy),
        ("loss.cluster_with_entropy", l.cluster + l.entropy),
        ("loss.total", l.total),
    ] {
        let expected = scalar(&f, name);
        assert!(
            (ours - expected).abs() <= 1e-4 + 1e-3 * expected.abs(),
            "{name}: {ours} vs {expected}"
        );
    }
    close("queue.after", &queue.keys, &f["queue.after"]);
    assert_eq!(
        queue.ptr as i64,
        f["queue.ptr_after"].to_scalar::<i64>().unwrap()
    );

    let params = student.named_params();
    for (name, var) in &params {
        let grad = step
            .grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        // Conv biases feed train-mode BN: their true gradient is 0 and the stored values are noise.
        let abs = if name.ends_with(".0.bias") && name.contains("features") {
            1e-5
        } else {
            1e-4
        };
        close_with(
            &format!("grad.{name}"),
            grad,
            &f[&format!("grad.{name}")],
            abs,
            1e-3,
        );
    }

    let init: Vec<Tensor> = params
        .iter()
        .map(|(_, v)| v.as_tensor().copy().unwrap())
        .collect();
    let vars: Vec<Var> = params.iter().map(|(_, v)| v.clone()).collect();
    let mut sgd = Optimizer::new(
        OptimizerConfig::Sgd {
            lr: 3e-4,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        vars.len(),
    );
    sgd.step(&vars, &step.grads, 3e-4).unwrap();
    for ((name, var), p0) in params.iter().zip(&init) {
        let ours = (var.as_tensor() - p0).unwrap();
        let theirs = (&f[&format!("after_sgd.{name}")] - p0).unwrap();
        // The delta is lr * (grad + wd * p): the gradient tolerance (1e-4 absolute) scaled by lr,
        // plus the README's relative 1e-3 on the delta.
        close_with(
            &format!("after_sgd.{name} - init"),
            &ours,
            &theirs,
            3e-4 * 1e-4,
            1e-3,
        );
    }
    let check_buffers = |net: &SlicerNet, prefix: &str| {
        for (name, t) in net.state().unwrap() {
            if name.contains("running_") {
                close(
                    &format!("{prefix}{name}"),
                    &t,
                    &f[&format!("{prefix}{name}")],
                );
            } else if name.ends_with("num_batches_tracked") {
                assert_eq!(
                    t.to_scalar::<i64>().unwrap(),
                    f[&format!("{prefix}{name}")].to_scalar::<i64>().unwrap(),
                    "{name}"
                );
            }
        }
    };
    check_buffers(&student, "after_sgd.");

    teacher.ema_from(&student, objective.ema_momentum).unwrap();
    for (name, var) in teacher.named_params() {
        close(
            &format!("teacher_after_ema.{name}"),
            var.as_tensor(),
            &f[&format!("teacher_after_ema.{name}")],
        );
    }
    check_buffers(&teacher, "teacher_after_ema.");

    let eval = student
        .forward(&f["input.x1"], false, &mut Dropout::Off)
        .unwrap();
    close("eval.pooled", &eval.pooled, &f["eval.after_sgd.x1.pooled"]);
    close("eval.z", &eval.z, &f["eval.after_sgd.x1.z"]);
    close("eval.c", &eval.c, &f["eval.after_sgd.x1.c"]);
}

#[test]
fn nt_xent_values_and_gradients_match() {
    let f = fixture("slicer_step.safetensors");
    for tau in ["0.5", "0.07"] {
        let zi = Var::from_tensor(&f["out.student_v1.z"]).unwrap();
        let zj = Var::from_tensor(&f["out.student_v2.z"]).unwrap();
        let loss = nt_xent(zi.as_tensor(), zj.as_tensor(), tau.parse().unwrap()).unwrap();
        let expected = scalar(&f, &format!("ntxent.T{tau}.loss"));
        let ours = loss.to_scalar::<f32>().unwrap();
        assert!(
            (ours - expected).abs() <= 1e-4 + 1e-3 * expected.abs(),
            "T={tau}: {ours} vs {expected}"
        );
        let grads = loss.backward().unwrap();
        close(
            &format!("ntxent {tau} grad_z_i"),
            grads.get(zi.as_tensor()).unwrap(),
            &f[&format!("ntxent.T{tau}.grad_z_i")],
        );
        close(
            &format!("ntxent {tau} grad_z_j"),
            grads.get(zj.as_tensor()).unwrap(),
            &f[&format!("ntxent.T{tau}.grad_z_j")],
        );
    }
}

#[test]
fn update_rules_match() {
    let f = fixture("update_rules.safetensors");
    let run = |config: OptimizerConfig, prefix: &str| {
        let p = Var::from_tensor(&f["p0"]).unwrap();
        let mut opt = Optimizer::new(config.clone(), 1);
        for (g, out) in [("g1", "p1"), ("g2", "p2")] {
            // A gradient store holding `g` for `p`: the gradient of sum(p * g).
            let grads = (p.as_tensor() * &f[g])
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step(std::slice::from_ref(&p), &grads, config.lr())
                .unwrap();
            close(
                &format!("{prefix}.{out}"),
                p.as_tensor(),
                &f[&format!("{prefix}.{out}")],
            );
        }
    };
    for (lr, prefix) in [(3e-4, "sgd"), (0.1, "sgd_lr0.1")] {
        run(
            OptimizerConfig::Sgd {
                lr,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            prefix,
        );
    }
    for (lr, prefix) in [(1e-3, "adamw"), (0.1, "adamw_lr0.1")] {
        run(
            OptimizerConfig::Adamw {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 1e-2,
            },
            prefix,
        );
    }
    for m in ["0.999", "0.99"] {
        let m_val: f64 = m.parse().unwrap();
        let ema =
            ((&f["ema.teacher0"] * m_val).unwrap() + (&f["p0"] * (1.0 - m_val)).unwrap()).unwrap();
        close(&format!("ema.m{m}"), &ema, &f[&format!("ema.m{m}")]);
    }
}

#[test]
fn corrected_step_scores_both_directions_against_the_pre_step_queue() {
    let f = fixture("slicer_step.safetensors");
    let (student, teacher, mut queue) = fixture_nets(&f);
    // A teacher that differs from the student shows whether the step itself moves it.
    teacher
        .load_state(&prefixed(&f, "teacher_after_ema."))
        .unwrap();
    let teacher_before: Vec<Tensor> = teacher
        .named_params()
        .iter()
        .map(|(_, v)| v.as_tensor().copy().unwrap())
        .collect();
    let objective = SlicerConfig {
        queue_size: 24,
        ..SlicerConfig::default()
    };
    assert_eq!(
        objective.fidelity,
        Fidelity::Corrected,
        "the corrected order is the default"
    );
    let step = fixture_step(&f, &objective, &student, &teacher, &mut queue);
    // Direction B meets the queue as it was before the step: no view-2 key of this batch.
    let q2 = slicer::loss::l2_normalize(&step.student[1].z).unwrap();
    let k1 = slicer::loss::l2_normalize(&step.teacher[0].z).unwrap();
    let expected_b = slicer::loss::info_nce(&q2, &k1, &f["queue.init"], 0.07, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        (step.losses.instance_b - expected_b).abs() < 1e-6,
        "{} vs {expected_b}",
        step.losses.instance_b
    );
    // Both views' keys are enqueued after scoring, view 2 first: the same final queue layout.
    let k2 = slicer::loss::l2_normalize(&step.teacher[1].z).unwrap();
    let written = queue.keys.narrow(1, 0, 8).unwrap().t().unwrap();
    close(
        "enqueued keys",
        &written,
        &Tensor::cat(&[&k2, &k1], 0).unwrap(),
    );
    assert_eq!(queue.ptr, 8);
    // No EMA inside the step: the teacher moves once per optimiser step, in the caller.
    for (t, before) in teacher.named_params().iter().zip(&teacher_before) {
        assert_eq!(
            values(t.1.as_tensor()),
            values(before),
            "{} moved inside the step",
            t.0
        );
    }
}

#[test]
fn nt_xent_objective_replaces_the_instance_terms() {
    let f = fixture("slicer_step.safetensors");
    let (student, teacher, mut queue) = fixture_nets(&f);
    let objective = SlicerConfig {
        instance_loss: slicer::methods::InstanceLoss::NtXent,
        temperature: 0.5,
        queue_size: 24,
        ..SlicerConfig::default()
    };
    let step = fixture_step(&f, &objective, &student, &teacher, &mut queue);
    let expected = scalar(&f, "ntxent.T0.5.loss");
    assert!(
        (step.losses.instance_a - expected).abs() <= 1e-4 + 1e-3 * expected,
        "{} vs {expected}",
        step.losses.instance_a
    );
    assert_eq!(step.losses.instance_b, 0.0);
    let total = step.losses.instance_a + step.losses.cluster;
    assert!((step.losses.total - total).abs() < 1e-5);
}

/// The fixture's official step on the device of `f`'s tensors, in `precision`: its losses and
/// every student gradient, on the CPU.
#[cfg(feature = "cuda")]
fn official_step_on(
    f: &HashMap<String, Tensor>,
    precision: slicer::model::Precision,
) -> (slicer::train::StepLosses, Vec<(String, Tensor)>) {
    let objective = SlicerConfig {
        fidelity: Fidelity::Official,
        queue_size: 24,
        ..SlicerConfig::default()
    };
    let _scope = slicer::model::autocast(precision);
    let (student, teacher, mut queue) = fixture_nets(f);
    let step = fixture_step(f, &objective, &student, &teacher, &mut queue);
    let grads = student
        .named_params()
        .into_iter()
        .map(|(n, v)| {
            let g = step.grads.get(&v).unwrap();
            (n, g.to_device(&Device::Cpu).unwrap())
        })
        .collect();
    (step.losses, grads)
}

/// The fixture moved to `cuda:0`, or `None` (said on stderr) where no GPU is present; with
/// `SLICER_REQUIRE_CUDA` set (the GPU check sets it), a missing GPU fails the test instead.
#[cfg(feature = "cuda")]
fn fixture_on_gpu(test: &str) -> Option<HashMap<String, Tensor>> {
    let gpu = match Device::new_cuda(0) {
        Ok(gpu) => gpu,
        Err(e) if std::env::var_os("SLICER_REQUIRE_CUDA").is_some() => {
            panic!("SLICER_REQUIRE_CUDA is set but cuda:0 did not open: {e}")
        }
        Err(_) => {
            eprintln!("no CUDA device: {test} skipped");
            return None;
        }
    };
    let f = fixture("slicer_step.safetensors");
    Some(
        f.iter()
            .map(|(k, v)| (k.clone(), v.to_device(&gpu).unwrap()))
            .collect(),
    )
}

#[cfg(feature = "cuda")]
fn loss_pairs(
    a: &slicer::train::StepLosses,
    b: &slicer::train::StepLosses,
) -> [(&'static str, f32, f32); 3] {
    [
        ("instance_a", a.instance_a, b.instance_a),
        ("instance_b", a.instance_b, b.instance_b),
        ("cluster", a.cluster, b.cluster),
    ]
}

/// Step-level parity of the CUDA path: the official step of the fixture on `cuda:0` matches
/// the CPU step (losses and every gradient) within 1e-3 relative. Compiled with
/// `--features cuda` (CI builds it); it runs only where a GPU is present and says so otherwise.
#[cfg(feature = "cuda")]
#[test]
fn cuda_step_matches_the_cpu_step() {
    use slicer::model::Precision;
    let Some(on_gpu) = fixture_on_gpu("cuda_step_matches_the_cpu_step") else {
        return;
    };
    let (cpu_losses, cpu_grads) =
        official_step_on(&fixture("slicer_step.safetensors"), Precision::F32);
    let (gpu_losses, gpu_grads) = official_step_on(&on_gpu, Precision::F32);
    for (name, a, b) in loss_pairs(&gpu_losses, &cpu_losses) {
        assert!((a - b).abs() <= 1e-3 * b.abs() + 1e-5, "{name}: {a} vs {b}");
    }
    for ((name, a), (_, b)) in gpu_grads.iter().zip(&cpu_grads) {
        close_with(name, a, b, 1e-5, 1e-3);
    }
}

/// The same step with bf16 convolutions and matmuls on `cuda:0` stays finite and close to the
/// f32 CPU step: losses within 2 % and every gradient within 10 % in relative L2 norm (bf16
/// keeps 8 significant bits, about 0.4 % per rounding).
#[cfg(feature = "cuda")]
#[test]
fn cuda_bf16_step_stays_finite_and_close() {
    use slicer::model::Precision;
    let Some(on_gpu) = fixture_on_gpu("cuda_bf16_step_stays_finite_and_close") else {
        return;
    };
    let (f32_losses, f32_grads) =
        official_step_on(&fixture("slicer_step.safetensors"), Precision::F32);
    let (bf16_losses, bf16_grads) = official_step_on(&on_gpu, Precision::Bf16);
    for (name, a, b) in loss_pairs(&bf16_losses, &f32_losses) {
        assert!(a.is_finite(), "{name}: {a}");
        assert!((a - b).abs() <= 2e-2 * b.abs() + 1e-4, "{name}: {a} vs {b}");
    }
    for ((name, a), (_, b)) in bf16_grads.iter().zip(&f32_grads) {
        let (a, b) = (values(a), values(b));
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{name}: non-finite gradient"
        );
        let diff: f32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt();
        let norm: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
        assert!(
            diff <= 0.1 * norm + 1e-6,
            "{name}: relative L2 error {}",
            diff / norm
        );
    }
}
