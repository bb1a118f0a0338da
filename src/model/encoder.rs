//! AudioNTT2020Task6 (SPEC 4): three Conv3x3-BN-ReLU-MaxPool2 blocks of 64 channels, each time
//! frame flattened mel-major / channel-fastest, then Linear(512, d)-ReLU-Dropout-Linear(d, d)-ReLU.
//! Parameter names mirror the LAPE checkpoints (`encoder.features_1.0.weight`, ...), so BYOL-A
//! and LAPE weights load by renaming only.

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;

use super::layers::{BatchNorm2d, Conv3x3, Dropout, Linear};

/// Channels of every conv block.
pub const CHANNELS: usize = 64;

/// One conv block: Conv3x3 -> BatchNorm -> ReLU -> MaxPool 2x2.
#[derive(Debug)]
pub struct ConvBlock {
    /// `features_k.0`.
    pub conv: Conv3x3,
    /// `features_k.1`.
    pub bn: BatchNorm2d,
}

impl ConvBlock {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        max_pool_2x2(&self.bn.forward(&self.conv.forward(x)?, train)?.relu()?)
    }
}

/// 2x2 max pooling with stride 2 (floor), as reductions over a reshaped view. candle 0.11's
/// `max_pool2d` backward multiplies the gradient by the share of window elements equal to
/// the maximum (1/4 for a unique maximum), which PyTorch does not; reductions route the
/// gradient to the maximum as PyTorch does (ties, measure-zero after ReLU, aside).
pub fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(2, 0, 2 * h2)?.narrow(3, 0, 2 * w2)?
    } else {
        x.clone()
    };
    x.reshape((b, c, h2, 2, w2, 2))?.max(5)?.max(3)
}

/// The AudioNTT2020Task6 encoder.
#[derive(Debug)]
pub struct Encoder {
    /// `features_1..3`.
    pub blocks: [ConvBlock; 3],
    /// `fc.0`: Linear(64 * n_mels/8, d).
    pub fc0: Linear,
    /// `fc.3`: Linear(d, d).
    pub fc3: Linear,
    /// Dropout probability between the two linear layers.
    pub dropout: f64,
}

impl Encoder {
    /// A freshly initialised encoder (PyTorch default init from `rng`).
    pub fn new(
        n_mels: usize,
        d: usize,
        dropout: f64,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self> {
        let block = |inputs, rng: &mut dyn rand::RngCore| -> Result<ConvBlock> {
            let mut rng = rng;
            Ok(ConvBlock {
                conv: Conv3x3::new(inputs, CHANNELS, &mut rng, device)?,
                bn: BatchNorm2d::new(CHANNELS, device)?,
            })
        };
        let blocks = [block(1, rng)?, block(CHANNELS, rng)?, block(CHANNELS, rng)?];
        let fc0 = Linear::new(CHANNELS * (n_mels / 8), d, rng, device)?;
        let fc3 = Linear::new(d, d, rng, device)?;
        Ok(Self {
            blocks,
            fc0,
            fc3,
            dropout,
        })
    }

    /// `[B, 1, n_mels, T] -> [B, T/8, d]` frames.
    pub fn forward(&self, x: &Tensor, train: bool, dropout: &mut Dropout<'_>) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h, train)?;
        }
        let (b, c, f, t) = h.dims4()?;
        let frames = h.permute((0, 3, 2, 1))?.reshape((b, t, f * c))?;
        let hidden = self.fc0.forward(&frames)?.relu()?;
        let hidden = if train {
            dropout.apply(&hidden, self.dropout)?
        } else {
            hidden
        };
        self.fc3.forward(&hidden)?.relu()
    }

    /// Parameters in the fixture/checkpoint order, with their names under `prefix`.
    pub fn named_params(&self, prefix: &str) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (k, block) in self.blocks.iter().enumerate() {
            let p = format!("{prefix}features_{}", k + 1);
            out.push((format!("{p}.0.weight"), block.conv.weight.clone()));
            out.push((format!("{p}.0.bias"), block.conv.bias.clone()));
            out.push((format!("{p}.1.weight"), block.bn.weight.clone()));
            out.push((format!("{p}.1.bias"), block.bn.bias.clone()));
        }
        for (name, layer) in [("fc.0", &self.fc0), ("fc.3", &self.fc3)] {
            out.push((format!("{prefix}{name}.weight"), layer.weight.clone()));
            out.push((format!("{prefix}{name}.bias"), layer.bias.clone()));
        }
        out
    }

    /// BatchNorm buffers with their names under `prefix`.
    pub fn batch_norms(&self, prefix: &str) -> Vec<(String, &BatchNorm2d)> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(k, b)| (format!("{prefix}features_{}.1", k + 1), &b.bn))
            .collect()
    }
}

/// SPEC 4 pooling: max over time plus mean over time, `[B, T, d] -> [B, d]`.
pub fn pool_max_mean(frames: &Tensor) -> Result<Tensor> {
    frames.max(1)? + frames.mean(1)?
}
