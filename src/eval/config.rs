//! The `eval` section of a spec: which encoders are scored, and how their embeddings are made.

use serde::{Deserialize, Serialize};

use super::embed::Pooling;
use crate::cache::FeaturePrecision;
use crate::problems::Problem;

/// An encoder row of the results table: `pretrained`, `random_init`,
/// `{external: {source: ..., name: ...}}` or `{precomputed: {path: ..., name: ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EncoderChoice {
    /// One of the run's own encoders.
    Builtin(BuiltinEncoder),
    /// Weights from elsewhere, evaluated with the same protocol.
    External {
        /// Where they are and what to call them.
        external: ExternalEncoder,
    },
    /// Embeddings computed elsewhere (any framework), scored with the same protocols.
    Precomputed {
        /// Where they are and what to call them.
        precomputed: PrecomputedEmbeddings,
    },
}

/// A folder of embeddings of the spec's tasks made by any tool, in the layout of
/// [`crate::eval::read_precomputed`]: `<path>/<task>/<split>.parquet` (columns `file`, the
/// clip's name as `experiment hear-tasks` writes it, and `embedding`) or `<split>.npy`
/// (float32 `[clips, d]` in clip order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecomputedEmbeddings {
    /// The folder.
    pub path: std::path::PathBuf,
    /// The row name in the tables.
    pub name: String,
}

/// The run's own encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinEncoder {
    /// The run's pre-trained encoder (from its newest checkpoint).
    Pretrained,
    /// The same architecture with the run's seeded initial weights and no training: the
    /// pre-trained student at step 0.
    RandomInit,
}

/// External weights: a Hub id (`org/name[@revision]`), an exported folder, a run folder,
/// or a BYOL-A `.pth` / LAPE `.ckpt` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalEncoder {
    /// Where the weights are.
    pub source: String,
    /// The row name in the tables.
    pub name: String,
}

impl EncoderChoice {
    /// The run's pre-trained encoder.
    pub const PRETRAINED: EncoderChoice = EncoderChoice::Builtin(BuiltinEncoder::Pretrained);
    /// The seeded initial weights.
    pub const RANDOM_INIT: EncoderChoice = EncoderChoice::Builtin(BuiltinEncoder::RandomInit);

    /// The name used in score tables; the pre-trained encoder is named after its method
    /// (`method`, the method's name).
    pub fn name<'a>(&'a self, method: &'a str) -> &'a str {
        match self {
            EncoderChoice::Builtin(BuiltinEncoder::Pretrained) => method,
            EncoderChoice::Builtin(BuiltinEncoder::RandomInit) => "random_init",
            EncoderChoice::External { external } => &external.name,
            EncoderChoice::Precomputed { precomputed } => &precomputed.name,
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
    /// Each task's train split (docs/method.md §9.3: no statistics from valid or test).
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
    /// Pool embeddings (and the floor's statistics) over the frames computed from a clip's
    /// audio only, leaving out those computed from the window's zero padding. LAPE pads
    /// and pools everything (`false`).
    pub exclude_padding: bool,
    /// Re-estimate each encoder's BatchNorm running statistics on the task's train-split
    /// windows before embedding them (see [`crate::model::Encoder::recalibrate_batch_norm`]).
    pub bn_recalibration: bool,
    /// How the feature cache stores log-mels: `f32` (default) or `f16` (half the disk;
    /// docs/findings/bounded-evaluation.md gives what it changes in the scores). Left out of the
    /// resolved spec, and so of its hash, while it is `f32`.
    #[serde(default, skip_serializing_if = "FeaturePrecision::is_f32")]
    pub feature_precision: FeaturePrecision,
    /// Pre-training steps whose checkpoints are kept and evaluated too, each under the
    /// pre-trained encoder's name with `@<step>` (`slicer@186`); the final step keeps the
    /// plain name. One long run gives the learning curve (the learning rate and the
    /// teacher's momentum are constant by default, so its first N steps are the N-step run).
    /// Left out of the resolved spec, and so of its hash, while it is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_steps: Vec<u64>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            encoders: vec![EncoderChoice::PRETRAINED, EncoderChoice::RANDOM_INIT],
            floor: true,
            weights: Weights::Student,
            pooling: Pooling::MaxMean,
            input_normalization: InputNormalization::TaskTrain,
            batch_size: 64,
            exclude_padding: true,
            bn_recalibration: false,
            feature_precision: FeaturePrecision::F32,
            at_steps: Vec::new(),
        }
    }
}

impl EvalConfig {
    /// Bad values, with keys relative to `eval` (`method`, the method's name, names the
    /// pre-trained encoder).
    pub fn problems(&self, method: &str) -> Vec<Problem> {
        let mut p =
            Problem::zero_counts(&[("batch_size", self.batch_size as u64, "64 fits any CPU")]);
        for (i, e) in self.encoders.iter().enumerate() {
            if self.encoders[..i]
                .iter()
                .any(|o| o.name(method) == e.name(method))
            {
                p.push(Problem::new(
                    format!("encoders.{i}"),
                    format!("two encoders are called `{}`", e.name(method)),
                    "list each encoder once, with its own name",
                ));
            }
            if let EncoderChoice::Precomputed { precomputed } = e {
                if !precomputed.path.is_dir() {
                    p.push(Problem::new(
                        format!("encoders.{i}.precomputed.path"),
                        format!("{} is not a folder", precomputed.path.display()),
                        "a folder with <task>/<split>.parquet or .npy embeddings (docs/evaluation.md)",
                    ));
                }
            }
        }
        if let Some(k) = (0..self.at_steps.len())
            .find(|&k| self.at_steps[k] == 0 || (k > 0 && self.at_steps[k] <= self.at_steps[k - 1]))
        {
            p.push(Problem::new(
                format!("at_steps.{k}"),
                format!(
                    "{} is not a step after the one before it ({:?})",
                    self.at_steps[k], self.at_steps
                ),
                "steps from 1 up, each larger than the one before, e.g. [186, 744, 2976]",
            ));
        }
        p
    }

    /// The encoder name of the pre-trained encoder at `step` of `final_step` (`method`, the
    /// method's name): `method@step` before the final step, `method` at it.
    pub fn name_at_step(method: &str, step: u64, final_step: u64) -> String {
        if step == final_step {
            method.to_owned()
        } else {
            format!("{method}@{step}")
        }
    }
}
