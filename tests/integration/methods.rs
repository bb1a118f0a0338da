//! The pre-training methods (SLICER and the baselines) as learners: every method steps with
//! finite losses that add up to its total, changes the encoder, and restores from its own
//! checkpoint to continue exactly as without the interruption.

use candle_core::{DType, Device, Tensor};
use slicer::checkpoint::CheckpointTensors;
use slicer::methods::{learner, Method};
use slicer::optim::Optimizer;
use slicer::spec::LoadedSpec;
use slicer::train::Learner;

const METHODS: [&str; 4] = ["slicer", "byol_a", "delores_s", "delores_m"];

fn spec(method: &str) -> slicer::spec::ExperimentSpec {
    LoadedSpec::load(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/experiments/smoke.yaml"
        )),
        &[
            format!("method={}", crate::common::small_method_block(method)),
            "eval.encoders=[pretrained]".into(),
        ],
    )
    .unwrap()
    .spec
}

/// Two deterministic `[4, 1, 64, 96]` views.
fn views() -> (Tensor, Tensor) {
    let n = 4 * 64 * 96;
    let make = |phase: f32| {
        let v: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37 + phase).sin()).collect();
        Tensor::from_vec(v, (4, 1, 64, 96), &Device::Cpu).unwrap()
    };
    (make(0.0), make(1.3))
}

fn train_step(l: &mut dyn Learner, opt: &mut Optimizer, step: u64) -> slicer::train::NamedLosses {
    let (x1, x2) = views();
    let params = l.params();
    let out = l
        .step(&slicer::train::StepBatch {
            x1: &x1,
            x2: &x2,
            clips: &[0, 1, 2, 3],
            comm: &slicer::distributed::SingleProcess,
            seed: 7,
            draw: step,
            progress: 0.0,
        })
        .unwrap();
    opt.step(&params, &out.grads, 1e-3).unwrap();
    l.after_update().unwrap();
    out.losses
}

fn encoder_weight(l: &dyn Learner) -> Vec<f32> {
    let files = l.checkpoint().unwrap();
    let student = &files.iter().find(|(n, _)| *n == "student").unwrap().1;
    student
        .iter()
        .find(|(n, _)| n == "encoder.fc.3.weight")
        .unwrap()
        .1
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn every_method_steps_and_its_losses_add_up() {
    for method in METHODS {
        let spec = spec(method);
        let mut l = learner(&spec.method_setup(), &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(spec.optimizer.clone(), l.params().len());
        let before = encoder_weight(l.as_ref());
        let losses = train_step(l.as_mut(), &mut opt, 0);
        // Every term but SLICER's entropy term (weight 0 by default) is a summand of the total.
        let parts: f32 = losses
            .terms
            .iter()
            .filter(|(name, _)| *name != "entropy_term")
            .map(|(_, value)| value)
            .sum();
        assert!(
            losses
                .terms
                .iter()
                .all(|(name, _)| name.starts_with("loss_") || *name == "entropy_term"),
            "{method}: {losses:?}"
        );
        assert!(
            losses.total.is_finite() && losses.total > 0.0,
            "{method}: {losses:?}"
        );
        assert!(
            (losses.total - parts).abs() <= 1e-5 * losses.total.abs().max(1.0),
            "{method}: {losses:?}"
        );
        assert_ne!(
            before,
            encoder_weight(l.as_ref()),
            "{method}: the encoder did not move"
        );
    }
}

#[test]
fn every_method_resumes_exactly_from_its_checkpoint() {
    for method in METHODS {
        let spec = spec(method);
        let device = Device::Cpu;
        let mut a = learner(&spec.method_setup(), &device).unwrap();
        let mut opt_a = Optimizer::new(spec.optimizer.clone(), a.params().len());
        train_step(a.as_mut(), &mut opt_a, 0);
        // Save after one step, as the trainer does, into a fresh learner and optimiser.
        let mut saved = CheckpointTensors::default();
        for (name, tensors) in a.checkpoint().unwrap() {
            saved
                .files
                .insert(name.to_owned(), tensors.into_iter().collect());
        }
        let optimizer_state = opt_a.state().into_iter().collect();
        let mut b = learner(&spec.method_setup(), &device).unwrap();
        b.restore(&saved).unwrap();
        let mut opt_b = Optimizer::new(spec.optimizer.clone(), b.params().len());
        opt_b.load_state(1, &optimizer_state).unwrap();
        let la = train_step(a.as_mut(), &mut opt_a, 1);
        let lb = train_step(b.as_mut(), &mut opt_b, 1);
        assert_eq!(la, lb, "{method}");
        assert_eq!(
            encoder_weight(a.as_ref()),
            encoder_weight(b.as_ref()),
            "{method}"
        );
    }
}

#[test]
fn random_init_has_nothing_to_train_and_a_teacher_is_not_invented() {
    let err = learner(&spec("random_init").method_setup(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("nothing to pre-train"), "{err}");
    assert!(!Method::RandomInit.pretrains());
    let l = learner(&spec("delores_s").method_setup(), &Device::Cpu).unwrap();
    let files: Vec<&str> = l.checkpoint().unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(files, ["student"]);
}
