//! Pre-training methods (docs/method.md §11). `method:` in a spec picks the objective; the front end,
//! encoder, data pipeline, trainer, checkpoints and evaluation are shared:
//!
//! - `slicer` (default): SLICER's instance and cluster losses with an EMA teacher and queue;
//! - `byol_a`: online/target networks with a predictor, EMA 0.99, BYOL's normalised MSE;
//! - `delores_s`: one encoder, a Barlow-Twins decorrelation loss between the views;
//! - `delores_m`: MoCo (one direction) plus Barlow Twins on each conv block's features;
//! - `random_init`: no pre-training; the seeded initial encoder is evaluated.
//!
//! Every method draws its encoder first from the same seeded stream, so all of them start
//! from the encoder that `random_init` evaluates.

mod byol_a;
mod delores_m;
mod delores_s;
mod heads;
mod slicer;

pub use byol_a::{ByolAConfig, ByolALearner};
pub use delores_m::DeloresMLearner;
pub use delores_s::{DeloresConfig, DeloresSLearner};
pub use heads::{BatchNorm1d, Mlp};
pub use slicer::SlicerLearner;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::model::Encoder;
use crate::spec::ExperimentSpec;
use crate::train::{StepBatch, StepLosses};

/// The pre-training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// SLICER (docs/method.md §5-7).
    #[default]
    Slicer,
    /// BYOL-A (docs/method.md §11.3).
    ByolA,
    /// DeLoRes-S (docs/method.md §11.1).
    DeloresS,
    /// DeLoRes-M (docs/method.md §11.2).
    DeloresM,
    /// No pre-training.
    RandomInit,
}

impl Method {
    /// The name used in specs and as the encoder's name in result tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Slicer => "slicer",
            Method::ByolA => "byol_a",
            Method::DeloresS => "delores_s",
            Method::DeloresM => "delores_m",
            Method::RandomInit => "random_init",
        }
    }

    /// Whether the method trains anything.
    pub fn pretrains(self) -> bool {
        self != Method::RandomInit
    }
}

/// What one step of a learner computed.
pub struct LearnerStep {
    /// Scalar losses (see [`crate::results::MetricRow`] for what each slot holds per method).
    pub losses: StepLosses,
    /// Gradients of the total loss.
    pub grads: GradStore,
    /// Entropy of the batch's mean cluster assignment, for methods with a cluster head.
    pub cluster_usage_entropy: Option<f32>,
}

/// A pre-training method's networks and step. The trainer owns the optimiser, the loop, the
/// data and the checkpoints; a learner owns everything else.
pub trait Learner {
    /// Trainable parameters in optimiser (and checkpoint) order.
    fn params(&self) -> Vec<Var>;

    /// Forwards, losses and backward on this rank's part of a batch of two views
    /// (`[B, 1, n_mels, T]` each); keys for a queue are gathered over `batch.comm`.
    /// `batch.seed` and `batch.draw` select the dropout streams (see
    /// [`crate::train::rank_draw`]); `batch.progress` sets a scheduled EMA momentum.
    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep>;

    /// Runs after the optimiser update (the EMA of a teacher, at the momentum of the step).
    fn after_update(&mut self) -> Result<()>;

    /// The checkpoint files: `student` (with the encoder under `encoder.`), and `teacher`
    /// and `queue` where the method has them.
    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>>;

    /// The encoders whose BatchNorm running statistics the learner updates (student first).
    fn encoders(&self) -> Vec<&Encoder>;

    /// Restores the state [`Learner::checkpoint`] wrote.
    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()>;
}

/// The learner of `spec.method`, initialised from the spec's seed.
pub fn learner(spec: &ExperimentSpec, device: &Device) -> crate::Result<Box<dyn Learner>> {
    let tensor = || crate::error::Error::tensor("initialising the learner");
    Ok(match spec.method {
        Method::Slicer => Box::new(SlicerLearner::new(spec, device).map_err(tensor())?),
        Method::ByolA => Box::new(ByolALearner::new(spec, device).map_err(tensor())?),
        Method::DeloresS => Box::new(DeloresSLearner::new(spec, device).map_err(tensor())?),
        Method::DeloresM => Box::new(DeloresMLearner::new(spec, device).map_err(tensor())?),
        Method::RandomInit => {
            return Err(crate::Error::Invalid(
                "method random_init has nothing to pre-train; run its evaluation stages only"
                    .into(),
            ))
        }
    })
}

/// The seeded stream every method draws its encoder (then its heads) from.
fn init_stream(spec: &ExperimentSpec) -> rand_chacha::ChaCha8Rng {
    crate::rng::stream(spec.seed, "model/init")
}

/// The encoder every method starts from: drawn first from the spec's seeded init stream.
/// Evaluated as is, it is the `random_init` row of the results table.
pub fn initial_encoder(spec: &ExperimentSpec, device: &Device) -> Result<Encoder> {
    new_encoder(spec, &mut init_stream(spec), device)
}

/// The spec's encoder, drawn first from `rng`.
fn new_encoder(
    spec: &ExperimentSpec,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> Result<Encoder> {
    Encoder::new(
        spec.frontend.n_mels,
        spec.model.d,
        spec.model.dropout,
        rng,
        device,
    )
}

/// Every parameter and encoder buffer of a network made of an encoder and heads.
fn network_state(encoder: &Encoder, heads: &[(String, Var)]) -> Result<NamedTensors> {
    let mut out = encoder.state("encoder.")?;
    out.extend(
        heads
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone())),
    );
    Ok(out)
}

/// Loads what [`network_state`] wrote.
fn load_network(
    encoder: &Encoder,
    heads: &[(String, Var)],
    state: &HashMap<String, Tensor>,
) -> Result<()> {
    encoder.load_state("encoder.", state)?;
    crate::model::load_params(heads, state)
}
