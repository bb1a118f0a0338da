//! Pre-training loop settings.

use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::data::DataConfig;
use crate::features::FrontendConfig;
use crate::model::Precision;
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::problems::Problem;

/// What pre-training reads from an experiment spec
/// ([`crate::spec::ExperimentSpec::pretrain_setup`]).
#[derive(Debug, Clone)]
pub struct PretrainSetup<'a> {
    /// The spec's hash (full hex): checkpoints record it and resume checks it.
    pub spec_hash: String,
    /// Master seed (corpus, batches, augmentations, dropout).
    pub seed: u64,
    /// The method's name (progress and logs).
    pub method: &'static str,
    /// Corpus and crop length.
    pub data: &'a DataConfig,
    /// Log-mel front end.
    pub frontend: &'a FrontendConfig,
    /// Augmentations.
    pub augment: &'a AugmentConfig,
    /// Optimiser.
    pub optimizer: &'a OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: &'a LrSchedule,
    /// Loop settings.
    pub train: &'a TrainConfig,
    /// Compute precision of the step's products.
    pub precision: Precision,
    /// Steps whose checkpoints are written and kept beside the newest `keep_last`
    /// (`eval.at_steps`, evaluated after pre-training).
    pub kept_steps: &'a [u64],
}

/// How long and how to pre-train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the pre-training corpus (docs/method.md §8: 50).
    pub epochs: usize,
    /// Clips per step (docs/method.md §13: 512 global).
    pub batch_size: usize,
    /// Stop after this many steps even if epochs remain (`null`: run every epoch).
    pub max_steps: Option<u64>,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest ones).
    pub keep_last: usize,
    /// Batches prepared ahead by the background data threads (in all).
    pub prefetch: usize,
    /// Augmentation workers: each prepares whole batches (worker w takes steps w, w+N, ...)
    /// with its own Mixup/k-mix banks and random stream, as the official DataLoader's
    /// workers do (docs/method.md §2.4: 4 per process). More workers feed a fast device; 1 (the CPU
    /// default) is one bank over the whole epoch. Left out of the spec hash at 1.
    #[serde(skip_serializing_if = "is_one")]
    pub workers: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            batch_size: 512,
            max_steps: None,
            checkpoint_every: 100,
            keep_last: 3,
            prefetch: 4,
            workers: 1,
        }
    }
}

impl TrainConfig {
    /// Bad values, with keys relative to `train`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Problem::zero_counts(&[
            ("epochs", self.epochs as u64, "docs/method.md §8 uses 50"),
            ("checkpoint_every", self.checkpoint_every, "e.g. 100"),
            ("keep_last", self.keep_last as u64, "e.g. 3"),
            ("prefetch", self.prefetch as u64, "e.g. 4"),
            (
                "workers",
                self.workers as u64,
                "1 on CPU, 4 as the official code",
            ),
        ]);
        if self.batch_size < 2 {
            p.push(Problem::new(
                "batch_size",
                "must be at least 2 (BatchNorm and the cluster loss need a batch)",
                "docs/method.md §13 uses 512",
            ));
        }
        p
    }
}
