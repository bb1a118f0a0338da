//! BYOL-A (docs/method.md §11.3): an online network (encoder, projector, predictor) regresses the
//! target network's projection of the other view; the target (encoder and projector) is an
//! EMA of the online one. Inputs are standardised per batch first (BYOL-A's `NormalizeBatch`).

use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::heads::Mlp;
use super::teacher::EmaSchedule;
use super::{init_stream, load_network, network_state, new_encoder, MethodSetup};
use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::error::Error;
use crate::loss::byol_loss;
use crate::model::{copy_params, ema_update, pool_max_mean, Dropout, Encoder};
use crate::train::{dropout_streams, Learner, LearnerStep, NamedLosses, StepBatch};

/// BYOL-A's hyperparameters (docs/method.md §11.3; `BYOLA:config.yaml`): the `method:` block of
/// `type: byol_a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByolAConfig {
    /// Target EMA decay (the base of `ema_schedule`).
    pub ema_decay: f64,
    /// How the target decay moves over the run (BYOL-A: constant).
    pub ema_schedule: EmaSchedule,
    /// Hidden width of the projector and predictor MLPs.
    pub hidden_dim: usize,
    /// Output size of the projector and predictor.
    pub projection_dim: usize,
    /// Standardise each augmented batch (both views together) before the networks.
    pub post_norm: bool,
}

impl Default for ByolAConfig {
    fn default() -> Self {
        Self {
            ema_decay: 0.99,
            ema_schedule: EmaSchedule::Constant,
            hidden_dim: 4096,
            projection_dim: 256,
            post_norm: true,
        }
    }
}

/// Encoder followed by the projector (the part the target copies).
struct ProjectedEncoder {
    encoder: Encoder,
    projector: Mlp,
}

impl ProjectedEncoder {
    fn project(&self, x: &Tensor, dropout: &mut Dropout<'_>) -> Result<Tensor> {
        let frames = self.encoder.forward(x, true, dropout)?;
        self.projector.forward(&pool_max_mean(&frames)?)
    }

    fn head_params(&self) -> Vec<(String, Var)> {
        self.projector.named_params("projector.net")
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        let mut out = self.encoder.named_params("encoder.");
        out.extend(self.head_params());
        out
    }
}

/// The online branch with its predictor, and the EMA target branch.
pub struct ByolALearner {
    cfg: ByolAConfig,
    /// The target decay of the current step.
    decay: f64,
    online: ProjectedEncoder,
    predictor: Mlp,
    target: ProjectedEncoder,
}

impl ByolALearner {
    /// Online networks from the seed; the target starts as a copy of the online branch.
    pub fn new(cfg: &ByolAConfig, setup: &MethodSetup<'_>, device: &Device) -> Result<Self> {
        let cfg = cfg.clone();
        let d = setup.model.d;
        let build = |rng: &mut rand_chacha::ChaCha8Rng| -> Result<ProjectedEncoder> {
            let encoder = new_encoder(setup, rng, device)?;
            let projector = Mlp::new(&[d, cfg.hidden_dim, cfg.projection_dim], true, rng, device)?;
            Ok(ProjectedEncoder { encoder, projector })
        };
        let mut rng = init_stream(setup);
        let online = build(&mut rng)?;
        let predictor = Mlp::new(
            &[cfg.projection_dim, cfg.hidden_dim, cfg.projection_dim],
            true,
            &mut rng,
            device,
        )?;
        let target = build(&mut crate::rng::stream(0, "model/duplicate"))?;
        copy_params(&target.named_params(), &online.named_params())?;
        Ok(Self {
            decay: cfg.ema_decay,
            cfg,
            online,
            predictor,
            target,
        })
    }
}

/// BYOL-A's `NormalizeBatch` over both views together: one mean and one unbiased std
/// (floored at f32 epsilon) over every value of the pair.
pub fn normalize_pair(x1: &Tensor, x2: &Tensor) -> Result<(Tensor, Tensor)> {
    let both = Tensor::cat(&[x1, x2], 0)?;
    let n = both.elem_count() as f64;
    let mean = both.mean_all()?;
    let centred = both.broadcast_sub(&mean)?;
    let std = (centred.sqr()?.sum_all()? / (n - 1.0).max(1.0))?
        .sqrt()?
        .maximum(f32::EPSILON as f64)?;
    let normalised = centred.broadcast_div(&std)?;
    let b = x1.dim(0)?;
    Ok((normalised.narrow(0, 0, b)?, normalised.narrow(0, b, b)?))
}

impl Learner for ByolALearner {
    fn params(&self) -> Vec<Var> {
        let mut out = self.online.named_params();
        out.extend(self.predictor.named_params("predictor.net"));
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep> {
        let StepBatch {
            x1, x2, seed, draw, ..
        } = *batch;
        self.decay = self
            .cfg
            .ema_schedule
            .momentum(self.cfg.ema_decay, batch.progress);
        let (x1, x2) = if self.cfg.post_norm {
            normalize_pair(x1, x2)?
        } else {
            (x1.clone(), x2.clone())
        };
        let [mut s1, mut s2, mut t2, mut t1] = dropout_streams(seed, draw);
        let p1 = self
            .predictor
            .forward(&self.online.project(&x1, &mut Dropout::Sample(&mut s1))?)?;
        let p2 = self
            .predictor
            .forward(&self.online.project(&x2, &mut Dropout::Sample(&mut s2))?)?;
        let z2 = self
            .target
            .project(&x2, &mut Dropout::Sample(&mut t2))?
            .detach();
        let z1 = self
            .target
            .project(&x1, &mut Dropout::Sample(&mut t1))?
            .detach();
        let loss_a = byol_loss(&p1, &z2)?.mean_all()?;
        let loss_b = byol_loss(&p2, &z1)?.mean_all()?;
        let total = (&loss_a + &loss_b)?;
        let scalar = |t: &Tensor| t.to_scalar::<f32>();
        let losses = NamedLosses {
            total: scalar(&total)?,
            terms: vec![
                ("loss_direction_a", scalar(&loss_a)?),
                ("loss_direction_b", scalar(&loss_b)?),
            ],
        };
        Ok(LearnerStep {
            losses,
            grads: total.backward()?,
            cluster_usage_entropy: None,
        })
    }

    fn after_update(&mut self) -> Result<()> {
        ema_update(
            &self.target.named_params(),
            &self.online.named_params(),
            self.decay,
        )
    }

    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>> {
        let mut online_heads = self.online.head_params();
        online_heads.extend(self.predictor.named_params("predictor.net"));
        Ok(vec![
            (
                "student",
                network_state(&self.online.encoder, &online_heads)?,
            ),
            (
                "teacher",
                network_state(&self.target.encoder, &self.target.head_params())?,
            ),
        ])
    }

    fn encoders(&self) -> Vec<&Encoder> {
        vec![&self.online.encoder, &self.target.encoder]
    }

    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()> {
        let mut online_heads = self.online.head_params();
        online_heads.extend(self.predictor.named_params("predictor.net"));
        load_network(&self.online.encoder, &online_heads, saved.file("student")?)
            .map_err(Error::tensor("restoring the student"))?;
        load_network(
            &self.target.encoder,
            &self.target.head_params(),
            saved.file("teacher")?,
        )
        .map_err(Error::tensor("restoring the teacher"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_pair_standardises_both_views_together() {
        let x1 = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let x2 = Tensor::new(&[[5f32, 6.0], [7.0, 8.0]], &Device::Cpu).unwrap();
        let (a, b) = normalize_pair(&x1, &x2).unwrap();
        // mean 4.5, unbiased std sqrt(42 / 7) = sqrt(6).
        let first = a.to_vec2::<f32>().unwrap()[0][0];
        let last = b.to_vec2::<f32>().unwrap()[1][1];
        assert!((first - (1.0 - 4.5) / 6f32.sqrt()).abs() < 1e-6, "{first}");
        assert!((last - (8.0 - 4.5) / 6f32.sqrt()).abs() < 1e-6, "{last}");
    }
}
