//! The baselines' heads: MLPs of Linear -> BatchNorm1d -> ReLU blocks and a final Linear
//! (BYOL-A's projector and predictor, DeLoRes' Barlow projectors), with PyTorch's
//! `nn.Sequential` parameter names.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::loss::batch_standardize;
use crate::model::Linear;

/// Train-mode BatchNorm1d: batch statistics (biased variance, eps 1e-5), then scale and
/// shift. The heads only ever run in train mode during pre-training and are discarded
/// afterwards, so no running statistics are kept.
#[derive(Debug)]
pub struct BatchNorm1d {
    /// Scale (gamma).
    pub weight: Var,
    /// Shift (beta).
    pub bias: Var,
}

impl BatchNorm1d {
    /// gamma 1, beta 0.
    pub fn new(features: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: Var::ones(features, DType::F32, device)?,
            bias: Var::zeros(features, DType::F32, device)?,
        })
    }

    /// Normalises `[B, features]` over the batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        batch_standardize(x)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// `Linear -> BN -> ReLU` for each hidden layer, then a final `Linear`.
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<(Linear, BatchNorm1d)>,
    out: Linear,
}

impl Mlp {
    /// Layer sizes `dims = [in, hidden.., out]` (at least two); `bias` for every Linear.
    pub fn new(dims: &[usize], bias: bool, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let mut linear = |i: usize, o: usize| {
            if bias {
                Linear::new(i, o, rng, device)
            } else {
                Linear::without_bias(i, o, rng, device)
            }
        };
        let n = dims.len();
        if n < 2 {
            candle_core::bail!("an MLP needs an input and an output size, got {dims:?}");
        }
        let hidden = dims[..n - 1]
            .windows(2)
            .map(|w| Ok((linear(w[0], w[1])?, BatchNorm1d::new(w[1], device)?)))
            .collect::<Result<Vec<_>>>()?;
        let out = linear(dims[n - 2], dims[n - 1])?;
        Ok(Self { hidden, out })
    }

    /// `[B, in] -> [B, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (linear, bn) in &self.hidden {
            h = bn.forward(&linear.forward(&h)?)?.relu()?;
        }
        self.out.forward(&h)
    }

    /// Parameters named as in `nn.Sequential(Linear, BN, ReLU, ..., Linear)` under `prefix`.
    pub fn named_params(&self, prefix: &str) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (k, (linear, bn)) in self.hidden.iter().enumerate() {
            out.extend(linear.named_params(&format!("{prefix}.{}", 3 * k)));
            out.push((format!("{prefix}.{}.weight", 3 * k + 1), bn.weight.clone()));
            out.push((format!("{prefix}.{}.bias", 3 * k + 1), bn.bias.clone()));
        }
        out.extend(
            self.out
                .named_params(&format!("{prefix}.{}", 3 * self.hidden.len())),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_shapes_and_names_follow_sequential() {
        let mut rng = crate::rng::stream(1, "test");
        let mlp = Mlp::new(&[6, 8, 4], false, &mut rng, &Device::Cpu).unwrap();
        let x = Tensor::ones((5, 6), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(mlp.forward(&x).unwrap().dims(), &[5, 4]);
        let names: Vec<String> = mlp.named_params("p").into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["p.0.weight", "p.1.weight", "p.1.bias", "p.3.weight"]
        );
    }
}
