//! AudioNTT2020Task6 (docs/method.md §4): three Conv3x3-BN-ReLU-MaxPool2 blocks of 64 channels, each time
//! frame flattened mel-major / channel-fastest, then Linear(512, d)-ReLU-Dropout-Linear(d, d)-ReLU.
//! Parameter names mirror the LAPE checkpoints (`encoder.features_1.0.weight`, ...), so BYOL-A
//! and LAPE weights load by renaming only.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use super::fused::conv_bn_relu_pool;
use super::layers::{BatchNorm2d, Conv3x3, Dropout, Linear};

/// Channels of every conv block.
pub const CHANNELS: usize = 64;

/// How much the three 2x2 max pools shrink the mel and time axes (so an input needs at least
/// this many mel bands and frames).
pub const MEL_POOLING: usize = 8;

/// One conv block: Conv3x3 -> BatchNorm -> ReLU -> MaxPool 2x2.
#[derive(Debug)]
pub struct ConvBlock {
    /// `features_k.0`.
    pub conv: Conv3x3,
    /// `features_k.1`.
    pub bn: BatchNorm2d,
}

impl ConvBlock {
    /// On CPU one fused op (`fused::conv_bn_relu_pool`), elsewhere the composed layers.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.device().is_cpu() {
            return conv_bn_relu_pool(x, &self.conv, &self.bn, train);
        }
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
        let fc0 = Linear::new(CHANNELS * (n_mels / MEL_POOLING), d, rng, device)?;
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
        Ok(self.forward_with_blocks(x, train, dropout)?.0)
    }

    /// The frames and each conv block's output (`[B, 64, n_mels/2^l, T/2^l]`, l = 1..3),
    /// as `return_all_layers` gives DeLoRes-M (docs/method.md §11.2).
    pub fn forward_with_blocks(
        &self,
        x: &Tensor,
        train: bool,
        dropout: &mut Dropout<'_>,
    ) -> Result<(Tensor, [Tensor; 3])> {
        let b1 = self.blocks[0].forward(x, train)?;
        let b2 = self.blocks[1].forward(&b1, train)?;
        let b3 = self.blocks[2].forward(&b2, train)?;
        let (b, c, f, t) = b3.dims4()?;
        let frames = b3.permute((0, 3, 2, 1))?.reshape((b, t, f * c))?;
        let hidden = self.fc0.forward(&frames)?.relu()?;
        let hidden = if train {
            dropout.apply(&hidden, self.dropout)?
        } else {
            hidden
        };
        Ok((self.fc3.forward(&hidden)?.relu()?, [b1, b2, b3]))
    }

    /// Replaces every BatchNorm's running statistics by the exact mean and unbiased variance
    /// of its input over all of `inputs` (batches `[B, 1, n_mels, T]`, normalised as for
    /// embedding), block by block, each block seeing the earlier ones already recalibrated
    /// in eval mode. `inputs` gives a fresh pass over the batches each time it is called (one
    /// pass per block), so they need not all be in memory. Nothing else changes.
    /// Reading a batch may fail with any error `E` that tensor errors convert into.
    pub fn recalibrate_batch_norm<E, I>(&self, inputs: impl Fn() -> I) -> std::result::Result<(), E>
    where
        E: From<candle_core::Error>,
        I: IntoIterator<Item = std::result::Result<Tensor, E>>,
    {
        for (l, block) in self.blocks.iter().enumerate() {
            let mut totals: Option<(Tensor, Tensor)> = None;
            let mut count = 0usize;
            for x in inputs() {
                let mut h = x?;
                for earlier in &self.blocks[..l] {
                    h = earlier.forward(&h, false)?;
                }
                let y = block.conv.forward(&h)?.to_dtype(DType::F64)?;
                let (b, _, height, width) = y.dims4()?;
                count += b * height * width;
                let (sum, sq) = (y.sum((0, 2, 3))?, y.sqr()?.sum((0, 2, 3))?);
                totals = Some(match totals {
                    None => (sum, sq),
                    Some((s, q)) => ((s + sum)?, (q + sq)?),
                });
            }
            let Some((sum, sq)) = totals else {
                return Err(candle_core::Error::Msg(
                    "BatchNorm recalibration needs at least one batch".into(),
                )
                .into());
            };
            let n = count as f64;
            let mean = (sum / n)?;
            let biased = ((sq / n)? - mean.sqr()?)?.relu()?;
            let unbiased = (biased * (n / (n - 1.0).max(1.0)))?;
            block.bn.running_mean.set(&mean.to_dtype(DType::F32)?)?;
            block.bn.running_var.set(&unbiased.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }

    /// A copy of this encoder (parameters and buffers) on `device`.
    pub fn to_device(&self, device: &Device) -> Result<Encoder> {
        let n_mels = self.fc0.weight.dim(1)? / CHANNELS * 8;
        let d = self.fc3.weight.dim(0)?;
        let mut skeleton = crate::rng::stream(0, "encoder/to_device");
        let copy = Encoder::new(n_mels, d, self.dropout, &mut skeleton, device)?;
        copy.load_state("", &self.state("")?.into_iter().collect())?;
        Ok(copy)
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
            out.extend(layer.named_params(&format!("{prefix}{name}")));
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

    /// Parameters and BatchNorm buffers as named tensors under `prefix` (PyTorch state-dict
    /// names; the batch counters as i64 scalars).
    pub fn state(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = self
            .named_params(prefix)
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        for (name, bn) in self.batch_norms(prefix) {
            out.push((
                format!("{name}.running_mean"),
                bn.running_mean.as_tensor().clone(),
            ));
            out.push((
                format!("{name}.running_var"),
                bn.running_var.as_tensor().clone(),
            ));
            let count = bn.num_batches_tracked.load(Ordering::Relaxed);
            out.push((
                format!("{name}.num_batches_tracked"),
                Tensor::new(count, bn.running_mean.device())?,
            ));
        }
        Ok(out)
    }

    /// Loads parameters and buffers named as in [`Encoder::state`]; a missing name or a
    /// shape mismatch is an error naming the key.
    pub fn load_state(&self, prefix: &str, state: &HashMap<String, Tensor>) -> Result<()> {
        load_params(&self.named_params(prefix), state)?;
        for (name, bn) in self.batch_norms(prefix) {
            for (buffer, var) in [
                ("running_mean", &bn.running_mean),
                ("running_var", &bn.running_var),
            ] {
                let t = lookup(state, &format!("{name}.{buffer}"))?;
                var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
            }
            let count = lookup(state, &format!("{name}.num_batches_tracked"))?
                .to_dtype(DType::I64)?
                .to_scalar::<i64>()?;
            bn.num_batches_tracked.store(count, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn lookup<'a>(state: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    state
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("state has no `{name}`")))
}

/// Sets each named parameter from `state`, checking that the name exists and the shape matches.
pub(crate) fn load_params(params: &[(String, Var)], state: &HashMap<String, Tensor>) -> Result<()> {
    for (name, var) in params {
        let t = lookup(state, name)?;
        if t.dims() != var.dims() {
            candle_core::bail!(
                "`{name}`: shape {:?} where the model has {:?}",
                t.dims(),
                var.dims()
            );
        }
        var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
    }
    Ok(())
}

/// docs/method.md §4 pooling: max over time plus mean over time, `[B, T, d] -> [B, d]`.
pub fn pool_max_mean(frames: &Tensor) -> Result<Tensor> {
    frames.max(1)? + frames.mean(1)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randn(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut rng = crate::rng::stream(seed, "encoder/test");
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Per-channel mean and unbiased variance over (N, H, W).
    fn channel_stats(y: &Tensor) -> (Vec<f32>, Vec<f32>) {
        let (b, _, h, w) = y.dims4().unwrap();
        let n = (b * h * w) as f64;
        let mean = y.mean_keepdim((0, 2, 3)).unwrap();
        let var = (y
            .broadcast_sub(&mean)
            .unwrap()
            .sqr()
            .unwrap()
            .sum((0, 2, 3))
            .unwrap()
            / (n - 1.0))
            .unwrap();
        (
            mean.flatten_all().unwrap().to_vec1().unwrap(),
            var.to_vec1().unwrap(),
        )
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn recalibration_sets_each_block_to_its_input_statistics() {
        let encoder =
            Encoder::new(16, 8, 0.0, &mut crate::rng::stream(3, "init"), &Device::Cpu).unwrap();
        let batches = [randn((3, 1, 16, 24), 1), randn((2, 1, 16, 24), 2)];
        encoder
            .recalibrate_batch_norm::<candle_core::Error, _>(|| batches.iter().cloned().map(Ok))
            .unwrap();
        let all = Tensor::cat(&batches, 0).unwrap();
        let mut h = all;
        for block in &encoder.blocks {
            let (mean, var) = channel_stats(&block.conv.forward(&h).unwrap());
            close(
                &block.bn.running_mean.as_tensor().to_vec1::<f32>().unwrap(),
                &mean,
            );
            close(
                &block.bn.running_var.as_tensor().to_vec1::<f32>().unwrap(),
                &var,
            );
            h = block.forward(&h, false).unwrap();
        }
        assert!(encoder
            .recalibrate_batch_norm::<candle_core::Error, _>(std::iter::empty)
            .is_err());
    }
}
