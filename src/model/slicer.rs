//! The SLICER network: encoder, instance projector and cluster projector (docs/method.md §5), plus its
//! named state (parameters in checkpoint order and BatchNorm buffers).

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::encoder::{load_params, pool_max_mean, Encoder};
use super::layers::{Dropout, Linear};

/// Model sizes (docs/method.md §5, 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Encoder width d (512, 1024 or 2048; BYOL-A publishes all three).
    pub d: usize,
    /// Instance projector output size (official 128; research code 256).
    pub instance_dim: usize,
    /// Number of online clusters M (cluster projector output size).
    pub n_clusters: usize,
    /// Dropout between the encoder's two linear layers.
    pub dropout: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            d: 2048,
            instance_dim: 128,
            n_clusters: 128,
            dropout: 0.3,
        }
    }
}

impl ModelConfig {
    /// Bad values, with keys relative to `model`.
    pub fn problems(&self) -> Vec<crate::problems::Problem> {
        use crate::problems::Problem;
        const HINT: &str = "docs/method.md §13: d 2048, instance_dim 128, n_clusters 128";
        let mut p = Problem::zero_counts(&[
            ("d", self.d as u64, HINT),
            ("instance_dim", self.instance_dim as u64, HINT),
            ("n_clusters", self.n_clusters as u64, HINT),
        ]);
        if !(0.0..1.0).contains(&self.dropout) {
            p.push(Problem::new(
                "dropout",
                format!("{} is not a probability below 1", self.dropout),
                "docs/method.md §4 uses 0.3",
            ));
        }
        p
    }
}

/// The outputs of one forward pass.
#[derive(Debug, Clone)]
pub struct SlicerOutput {
    /// Encoder frames `[B, T', d]`.
    pub frames: Tensor,
    /// Max+mean pooled embedding `[B, d]`.
    pub pooled: Tensor,
    /// Instance projection `[B, instance_dim]` (not normalised).
    pub z: Tensor,
    /// Cluster assignment `[B, n_clusters]` (softmax rows).
    pub c: Tensor,
}

/// Encoder + instance projector + cluster projector.
#[derive(Debug)]
pub struct SlicerNet {
    /// The encoder (`encoder.*`).
    pub encoder: Encoder,
    /// `instance_projector`.
    pub instance_projector: Linear,
    /// `cluster_projector.0`.
    pub cluster_hidden: Linear,
    /// `cluster_projector.2`.
    pub cluster_out: Linear,
}

impl SlicerNet {
    /// A freshly initialised network; every value comes from `rng`.
    pub fn new(
        cfg: &ModelConfig,
        n_mels: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self> {
        let encoder = Encoder::new(n_mels, cfg.d, cfg.dropout, rng, device)?;
        Ok(Self {
            encoder,
            instance_projector: Linear::new(cfg.d, cfg.instance_dim, rng, device)?,
            cluster_hidden: Linear::new(cfg.d, cfg.d, rng, device)?,
            cluster_out: Linear::new(cfg.d, cfg.n_clusters, rng, device)?,
        })
    }

    /// Forward pass on `[B, 1, n_mels, T]`.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        dropout: &mut Dropout<'_>,
    ) -> Result<SlicerOutput> {
        let frames = self.encoder.forward(x, train, dropout)?;
        let pooled = pool_max_mean(&frames)?;
        let z = self.instance_projector.forward(&pooled)?;
        let logits = self
            .cluster_out
            .forward(&self.cluster_hidden.forward(&pooled)?.relu()?)?;
        // candle_nn::ops::softmax (composed of primitive ops) has a backward pass;
        // the fused softmax_last_dim does not.
        let c = candle_nn::ops::softmax(&logits, candle_core::D::Minus1)?;
        Ok(SlicerOutput {
            frames,
            pooled,
            z,
            c,
        })
    }

    /// Trainable parameters in checkpoint order (the order optimiser and EMA zips use).
    pub fn named_params(&self) -> Vec<(String, Var)> {
        let mut out = self.encoder.named_params("encoder.");
        out.extend(self.head_params());
        out
    }

    fn head_params(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (name, layer) in [
            ("instance_projector", &self.instance_projector),
            ("cluster_projector.0", &self.cluster_hidden),
            ("cluster_projector.2", &self.cluster_out),
        ] {
            out.extend(layer.named_params(name));
        }
        out
    }

    /// Every parameter and buffer as named tensors (PyTorch state-dict names; the batch
    /// counters as i64 scalars).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = self.encoder.state("encoder.")?;
        out.extend(
            self.head_params()
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().clone())),
        );
        Ok(out)
    }

    /// Loads every parameter and buffer from `state` (names as in [`SlicerNet::state`]);
    /// a missing name or a shape mismatch is an error naming the key.
    pub fn load_state(&self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.encoder.load_state("encoder.", state)?;
        load_params(&self.head_params(), state)
    }

    /// A copy with the same parameters and buffers (the teacher at construction).
    pub fn duplicate(&self, cfg: &ModelConfig, n_mels: usize, device: &Device) -> Result<Self> {
        let copy = Self::new(
            cfg,
            n_mels,
            &mut crate::rng::stream(0, "model/duplicate"),
            device,
        )?;
        copy.load_state(&self.state()?.into_iter().collect())?;
        Ok(copy)
    }

    /// EMA of the parameters: `self = m * self + (1 - m) * other` (buffers untouched).
    pub fn ema_from(&self, other: &SlicerNet, momentum: f64) -> Result<()> {
        super::params::ema_update(&self.named_params(), &other.named_params(), momentum)
    }
}
