//! DeLoRes-S (docs/method.md §11.1): one encoder for both views, a three-layer projector, and the
//! Barlow-Twins loss as the LAPE toolkit codes it (one weight on both terms).

use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::heads::Mlp;
use super::{init_stream, load_network, network_state, new_encoder, MethodSetup};
use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::error::Error;
use crate::loss::barlow_twins;
use crate::model::{pool_max_mean, Dropout, Encoder};
use crate::train::{dropout_streams, Learner, LearnerStep, NamedLosses, StepBatch};

/// DeLoRes' Barlow-Twins settings (docs/method.md §11.1, 11.2): the `method:` block of
/// `type: delores_s`, and DeLoRes-M's `barlow:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BarlowTwinsConfig {
    /// Width of every projector layer (2048).
    pub projector_dim: usize,
    /// `lambda_barlow` (5e-5), on both the on- and the off-diagonal term.
    pub lambda: f64,
    /// The loss scale `s` (1/32).
    pub scale: f64,
}

impl Default for BarlowTwinsConfig {
    fn default() -> Self {
        Self {
            projector_dim: 2048,
            lambda: 5e-5,
            scale: 1.0 / 32.0,
        }
    }
}

impl BarlowTwinsConfig {
    /// A Barlow projector from `inputs` features: three bias-free layers of `projector_dim`.
    pub(super) fn projector(
        &self,
        inputs: usize,
        rng: &mut impl rand::Rng,
        device: &Device,
    ) -> Result<Mlp> {
        let p = self.projector_dim;
        Mlp::new(&[inputs, p, p, p], false, rng, device)
    }

    /// The factor on the Barlow-Twins sum.
    pub(super) fn weight(&self) -> f64 {
        self.lambda * self.scale
    }
}

/// The shared encoder and its projector.
pub struct DeloresSLearner {
    cfg: BarlowTwinsConfig,
    encoder: Encoder,
    projector: Mlp,
}

impl DeloresSLearner {
    /// Encoder then projector from the seed.
    pub fn new(cfg: &BarlowTwinsConfig, setup: &MethodSetup<'_>, device: &Device) -> Result<Self> {
        let mut rng = init_stream(setup);
        let encoder = new_encoder(setup, &mut rng, device)?;
        let projector = cfg.projector(setup.model.d, &mut rng, device)?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            projector,
        })
    }

    fn head_params(&self) -> Vec<(String, Var)> {
        self.projector.named_params("projector")
    }

    fn embed(&self, x: &Tensor, dropout: &mut Dropout<'_>) -> Result<Tensor> {
        let frames = self.encoder.forward(x, true, dropout)?;
        self.projector.forward(&pool_max_mean(&frames)?)
    }
}

impl Learner for DeloresSLearner {
    fn params(&self) -> Vec<Var> {
        let mut out = self.encoder.named_params("encoder.");
        out.extend(self.head_params());
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep> {
        let StepBatch {
            x1, x2, seed, draw, ..
        } = *batch;
        let [mut s1, mut s2, _, _] = dropout_streams(seed, draw);
        let z1 = self.embed(x1, &mut Dropout::Sample(&mut s1))?;
        let z2 = self.embed(x2, &mut Dropout::Sample(&mut s2))?;
        let loss = barlow_twins(&z1, &z2, self.cfg.weight())?;
        let value = loss.to_scalar::<f32>()?;
        Ok(LearnerStep {
            losses: NamedLosses {
                total: value,
                terms: vec![("loss_barlow_twins", value)],
            },
            grads: loss.backward()?,
            cluster_usage_entropy: None,
        })
    }

    fn after_update(&mut self) -> Result<()> {
        Ok(())
    }

    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>> {
        Ok(vec![(
            "student",
            network_state(&self.encoder, &self.head_params())?,
        )])
    }

    fn encoders(&self) -> Vec<&Encoder> {
        vec![&self.encoder]
    }

    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()> {
        load_network(&self.encoder, &self.head_params(), saved.file("student")?)
            .map_err(Error::tensor("restoring the student"))
    }
}
