//! The `eval` section of a spec: which encoders are scored, and how their embeddings are made.

use serde::{Deserialize, Serialize};

use super::embed::Pooling;
use crate::spec::Problem;

/// An encoder row of the results table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderChoice {
    /// The run's pre-trained encoder (from its newest checkpoint).
    Pretrained,
    /// The same architecture with the run's seeded initial weights and no training: the
    /// pre-trained student at step 0.
    RandomInit,
}

impl EncoderChoice {
    /// The name used in score tables.
    pub fn name(self) -> &'static str {
        match self {
            EncoderChoice::Pretrained => "slicer",
            EncoderChoice::RandomInit => "random_init",
        }
    }
}

/// Which network of the pre-training pair is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// The student (`encoder_q`): what the LAPE toolkit evaluates.
    Student,
    /// The EMA teacher (`encoder_k`).
    Teacher,
}

/// Where the scalar log-mel mean/std applied before the encoder comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputNormalization {
    /// Each task's train split (SPEC 9.3: no statistics from valid or test).
    TaskTrain,
    /// The pre-training statistics of the run (`norm_stats.json`), as the encoder saw in training.
    Pretrain,
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Encoders to score on every task.
    pub encoders: Vec<EncoderChoice>,
    /// Also score the bag-of-frames floor (mean+std of log-mel bands).
    pub floor: bool,
    /// Student or teacher weights for `pretrained`.
    pub weights: Weights,
    /// Frame pooling.
    pub pooling: Pooling,
    /// Input normalisation statistics.
    pub input_normalization: InputNormalization,
    /// Clips per inference batch.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            encoders: vec![EncoderChoice::Pretrained, EncoderChoice::RandomInit],
            floor: true,
            weights: Weights::Student,
            pooling: Pooling::MaxMean,
            input_normalization: InputNormalization::TaskTrain,
            batch_size: 64,
        }
    }
}

impl EvalConfig {
    /// Bad values, with keys relative to `eval`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p =
            Problem::zero_counts(&[("batch_size", self.batch_size as u64, "64 fits any CPU")]);
        for (i, e) in self.encoders.iter().enumerate() {
            if self.encoders[..i].contains(e) {
                p.push(Problem::new(
                    format!("encoders.{i}"),
                    format!("`{}` is listed twice", e.name()),
                    "list each encoder once",
                ));
            }
        }
        p
    }
}
