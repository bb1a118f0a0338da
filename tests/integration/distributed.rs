//! Data-parallel pre-training without GPUs: two ranks as threads of this process
//! ([`LocalGroup`]) run the trainer of a multi-GPU job. They must end in the same state (the
//! trainer also checks that at every checkpoint), train on different shards, and only rank 0
//! may write.

use std::path::{Path, PathBuf};

use candle_core::Device;
use slicer::distributed::LocalGroup;
use slicer::features::NormStats;
use slicer::methods::learner;
use slicer::progress::Silent;
use slicer::spec::{ExperimentSpec, LoadedSpec};
use slicer::train::{pretrain_on, Pretrained};

fn smoke_spec(method: &str) -> ExperimentSpec {
    LoadedSpec::load(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/experiments/smoke.yaml"
        )),
        &[
            // Small heads, as in tests/methods.rs: the point is the collectives, not the size.
            format!("method={}", crate::common::small_method_block(method)),
            "train.epochs=1".into(),
        ],
    )
    .unwrap()
    .spec
}

/// Pre-trains `spec` on `dirs.len()` ranks, rank r writing (if at all) into `dirs[r]`.
fn pretrain_on_ranks(spec: &ExperimentSpec, norm: NormStats, dirs: &[PathBuf]) -> Vec<Pretrained> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = LocalGroup::new(dirs.len())
            .into_iter()
            .zip(dirs)
            .map(|(comm, dir)| {
                scope.spawn(move || {
                    let learner = learner(&spec.method_setup(), &Device::Cpu).unwrap();
                    let (setup, device) = (spec.pretrain_setup(), &Device::Cpu);
                    pretrain_on(setup, learner, dir, norm, false, &Silent, (device, &comm)).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn two_ranks_stay_identical_on_their_own_shards_and_only_rank_0_writes() {
    let norm =
        slicer::experiment::eval_pipeline::normalization_stats(&smoke_spec("slicer"), &Silent)
            .unwrap();
    for method in ["slicer", "byol_a", "delores_s", "delores_m"] {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..2)
            .map(|r| root.path().join(format!("rank{r}")))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let spec = smoke_spec(method);
        let ranks = pretrain_on_ranks(&spec, norm, &dirs);

        assert_eq!(ranks[0].steps, 3, "{method}: 12 clips / batch 4, one epoch");
        assert_eq!(ranks[0].steps, ranks[1].steps, "{method}");
        assert_eq!(
            ranks[0].state_digest, ranks[1].state_digest,
            "{method}: the ranks' states differ"
        );
        let losses = |p: &Pretrained| p.metrics.iter().map(|m| m.loss_total).collect::<Vec<_>>();
        assert_ne!(
            losses(&ranks[0]),
            losses(&ranks[1]),
            "{method}: both ranks saw the same clips"
        );
        assert!(entries(&dirs[0].join("checkpoints")) > 0, "{method}");
        assert!(dirs[0].join("metrics.parquet").exists(), "{method}");
        assert_eq!(entries(&dirs[1]), 0, "{method}: rank 1 wrote files");
    }
}
