//! Pre-training methods (docs/method.md §11). A spec's `method:` block names the method by its
//! `type` and holds that method's settings, nothing else (`method: byol_a` is short for
//! `method: {type: byol_a}`, every setting at its default); the front end, encoder, data
//! pipeline, trainer, checkpoints and evaluation are shared:
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
mod teacher;

pub use byol_a::{ByolAConfig, ByolALearner};
pub use delores_m::DeloresMConfig;
pub use delores_m::DeloresMLearner;
pub use delores_s::{BarlowTwinsConfig, DeloresSLearner};
pub use heads::{BatchNorm1d, Mlp};
pub use slicer::{slicer_step, Fidelity, InstanceLoss, SlicerConfig, SlicerLearner, StepResult};
pub use teacher::EmaSchedule;

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::checkpoint::NamedTensors;
use crate::model::{Encoder, ModelConfig};
use crate::problems::Problem;
use crate::train::Learner;

/// Which pre-training method (the `type` of the `method:` block).
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

/// A spec's `method:` block: the method, by its `type`, with its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MethodConfig {
    /// SLICER's losses, teacher and queue.
    Slicer(SlicerConfig),
    /// BYOL-A's heads and EMA.
    ByolA(ByolAConfig),
    /// DeLoRes-S's projector and Barlow-Twins weight.
    DeloresS(BarlowTwinsConfig),
    /// DeLoRes-M's teacher, queue and Barlow-Twins part.
    DeloresM(DeloresMConfig),
    /// No settings.
    RandomInit(NoSettings),
}

/// The settings of a method that has none (`random_init`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl Default for MethodConfig {
    fn default() -> Self {
        MethodConfig::Slicer(SlicerConfig::default())
    }
}

impl MethodConfig {
    /// Which method.
    pub fn kind(&self) -> Method {
        match self {
            MethodConfig::Slicer(_) => Method::Slicer,
            MethodConfig::ByolA(_) => Method::ByolA,
            MethodConfig::DeloresS(_) => Method::DeloresS,
            MethodConfig::DeloresM(_) => Method::DeloresM,
            MethodConfig::RandomInit(_) => Method::RandomInit,
        }
    }

    /// The method's name in specs and result tables.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Whether the method trains anything.
    pub fn pretrains(&self) -> bool {
        self.kind().pretrains()
    }

    /// Every bad value, with keys relative to the `method:` block.
    pub fn problems(&self, batch_size: usize) -> Vec<Problem> {
        match self {
            MethodConfig::Slicer(c) => c.problems(batch_size),
            MethodConfig::DeloresM(c) => c.problems(batch_size),
            MethodConfig::ByolA(c) => teacher::momentum_problem("ema_decay", c.ema_decay)
                .into_iter()
                .collect(),
            MethodConfig::DeloresS(_) | MethodConfig::RandomInit(_) => Vec::new(),
        }
    }
}

/// What a method reads from an experiment spec ([`crate::spec::ExperimentSpec::method_setup`]):
/// its own `method:` block and the few shared values it needs, nothing else.
#[derive(Debug, Clone, Copy)]
pub struct MethodSetup<'a> {
    /// The method and its settings.
    pub method: &'a MethodConfig,
    /// Master seed (initialisation, queue, dropout streams).
    pub seed: u64,
    /// Mel bands of the front end (the encoder's input height).
    pub n_mels: usize,
    /// Encoder and head sizes.
    pub model: &'a ModelConfig,
}

/// The learner of `setup.method`, initialised from its seed; each takes its own settings.
pub fn learner(setup: &MethodSetup<'_>, device: &Device) -> crate::Result<Box<dyn Learner>> {
    let tensor = || crate::error::Error::tensor("initialising the learner");
    Ok(match setup.method {
        MethodConfig::Slicer(c) => {
            Box::new(SlicerLearner::new(c, setup, device).map_err(tensor())?)
        }
        MethodConfig::ByolA(c) => Box::new(ByolALearner::new(c, setup, device).map_err(tensor())?),
        MethodConfig::DeloresS(c) => {
            Box::new(DeloresSLearner::new(c, setup, device).map_err(tensor())?)
        }
        MethodConfig::DeloresM(c) => {
            Box::new(DeloresMLearner::new(c, setup, device).map_err(tensor())?)
        }
        MethodConfig::RandomInit(_) => {
            return Err(crate::Error::Invalid(
                "method random_init has nothing to pre-train; run its evaluation stages only"
                    .into(),
            ))
        }
    })
}

/// The seeded stream every method draws its encoder (then its heads) from.
fn init_stream(setup: &MethodSetup<'_>) -> rand_chacha::ChaCha8Rng {
    crate::rng::stream(setup.seed, "model/init")
}

/// The encoder every method starts from: drawn first from the spec's seeded init stream.
/// Evaluated as is, it is the `random_init` row of the results table.
pub fn initial_encoder(setup: &MethodSetup<'_>, device: &Device) -> Result<Encoder> {
    new_encoder(setup, &mut init_stream(setup), device)
}

/// The spec's encoder, drawn first from `rng`.
fn new_encoder(
    setup: &MethodSetup<'_>,
    rng: &mut impl rand::Rng,
    device: &Device,
) -> Result<Encoder> {
    Encoder::new(
        setup.n_mels,
        setup.model.d,
        setup.model.dropout,
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::{learner, DeloresMConfig, MethodConfig};
    use crate::spec::{ExperimentSpec, LoadedSpec};

    fn spec() -> ExperimentSpec {
        let text = "data:\n  pretrain: {type: synthetic, clips: 600}\nmethod: {type: slicer, queue_size: 4096}\nmodel: {d: 32, instance_dim: 16, n_clusters: 8}\n";
        LoadedSpec::from_text(std::path::Path::new("test.yaml"), text.to_owned(), &[])
            .unwrap()
            .spec
    }

    /// A key queue longer than one epoch's keys is warned about unless masked (SLICER
    /// enqueues two keys per clip); BYOL-A has no queue.
    #[test]
    fn a_queue_longer_than_an_epoch_is_warned_about_unless_masked() {
        let mut spec = spec();
        let warning = |spec: &ExperimentSpec, clips| {
            learner(&spec.method_setup(), &Device::Cpu)
                .unwrap()
                .corpus_warning(clips)
        };
        let text = warning(&spec, 576).expect("4096 keys > 1152 per epoch");
        assert!(text.contains("mask_same_clip: true") && text.contains("at most 1152"));
        assert!(
            warning(&spec, 2048).is_none(),
            "4096 keys = one epoch of 2048 clips"
        );
        let MethodConfig::Slicer(slicer) = &mut spec.method else {
            panic!("the spec is SLICER's")
        };
        slicer.mask_same_clip = true;
        assert!(warning(&spec, 576).is_none());
        spec.method = MethodConfig::DeloresM(DeloresMConfig {
            queue_size: 4096,
            ..DeloresMConfig::default()
        });
        assert!(
            warning(&spec, 576).is_some_and(|t| t.contains("at most 576")),
            "one key per clip"
        );
        spec.method = MethodConfig::ByolA(Default::default());
        assert!(warning(&spec, 576).is_none(), "no queue");
    }
}
