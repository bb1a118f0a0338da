//! The layers of AudioNTT2020 and the SLICER heads, with PyTorch's parameter layout, PyTorch's
//! default initialisation drawn from our seeded RNG (candle's CPU RNG cannot be seeded), and a
//! BatchNorm with PyTorch's train/eval semantics (unbiased running variance, batch counter).

use std::sync::atomic::{AtomicI64, Ordering};

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use super::autocast::in_compute_dtype;
use super::conv::{conv3x3_cpu, conv3x3_forward_gradients};

/// A `Var` of `shape` with values uniform in `+-bound`, drawn from `rng`.
fn uniform(shape: &[usize], bound: f32, rng: &mut impl Rng, device: &Device) -> Result<Var> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, device)?)
}

/// `y = x W^T + b` over the last dimension; weight `[out, in]`, bias optional.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Var,
    /// `[out]` (`None` for `bias=False` layers, as the DeLoRes projectors).
    pub bias: Option<Var>,
}

impl Linear {
    /// PyTorch's default init: weight and bias uniform in +-1/sqrt(in).
    pub fn new(inputs: usize, outputs: usize, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let bound = 1.0 / (inputs as f32).sqrt();
        Ok(Self {
            weight: uniform(&[outputs, inputs], bound, rng, device)?,
            bias: Some(uniform(&[outputs], bound, rng, device)?),
        })
    }

    /// A layer without bias (PyTorch's `bias=False`), weight initialised as in [`Linear::new`].
    pub fn without_bias(
        inputs: usize,
        outputs: usize,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (inputs as f32).sqrt();
        Ok(Self {
            weight: uniform(&[outputs, inputs], bound, rng, device)?,
            bias: None,
        })
    }

    /// Applies the layer to `[.., in]` (the product in the [`super::autocast`] dtype). The
    /// leading dimensions are flattened into the rows of one matrix product: a batched
    /// product against a broadcast weight would make the backward pass build one weight
    /// gradient per batch row (`[B, in, out]`, 1 GB at d=2048, batch 64) and sum them.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (inputs, outputs) = (self.weight.dim(1)?, self.weight.dim(0)?);
        let rows = x.elem_count() / inputs.max(1);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = outputs;
        }
        let y = in_compute_dtype(&x.reshape((rows, inputs))?, &self.weight.t()?, |a, w| {
            a.matmul(w)
        })?
        .reshape(out_dims)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }

    /// `name.weight` and (when present) `name.bias`.
    pub fn named_params(&self, name: &str) -> Vec<(String, Var)> {
        let mut out = vec![(format!("{name}.weight"), self.weight.clone())];
        out.extend(
            self.bias
                .iter()
                .map(|b| (format!("{name}.bias"), b.clone())),
        );
        out
    }
}

/// 3x3 convolution, stride 1, padding 1, with bias; weight `[out, in, 3, 3]`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    /// `[out, in, 3, 3]`.
    pub weight: Var,
    /// `[out]`.
    pub bias: Var,
}

impl Conv3x3 {
    /// PyTorch's default init: uniform in +-1/sqrt(in * 9).
    pub fn new(inputs: usize, outputs: usize, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let bound = 1.0 / ((inputs * 9) as f32).sqrt();
        Ok(Self {
            weight: uniform(&[outputs, inputs, 3, 3], bound, rng, device)?,
            bias: uniform(&[outputs], bound, rng, device)?,
        })
    }

    /// `[B, in, H, W] -> [B, out, H, W]`; on CPU in f32 through the im2col + gemm op with
    /// the bias (`conv::conv3x3_cpu`; candle's CPU backend has no bf16 matmul), elsewhere in the
    /// [`super::autocast`] dtype through candle's `conv2d` with gradients that are forward
    /// convolutions too (`conv::conv3x3_forward_gradients`: cuDNN for all three).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() {
            return conv3x3_cpu(x, &self.weight, &self.bias);
        }
        let channels = self.bias.dim(0)?;
        in_compute_dtype(x, &self.weight, conv3x3_forward_gradients)?
            .broadcast_add(&self.bias.reshape((1, channels, 1, 1))?)
    }
}

/// BatchNorm2d (eps 1e-5, momentum 0.1) with PyTorch semantics.
#[derive(Debug)]
pub struct BatchNorm2d {
    /// Scale (gamma).
    pub weight: Var,
    /// Shift (beta).
    pub bias: Var,
    /// Running mean (a buffer: never trained).
    pub running_mean: Var,
    /// Running unbiased variance (a buffer).
    pub running_var: Var,
    /// Number of train-mode forwards.
    pub num_batches_tracked: AtomicI64,
}

/// BatchNorm's epsilon (PyTorch's default).
pub(super) const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm2d {
    /// gamma 1, beta 0, running mean 0, running var 1.
    pub fn new(channels: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: Var::ones(channels, DType::F32, device)?,
            bias: Var::zeros(channels, DType::F32, device)?,
            running_mean: Var::zeros(channels, DType::F32, device)?,
            running_var: Var::ones(channels, DType::F32, device)?,
            num_batches_tracked: AtomicI64::new(0),
        })
    }

    /// Train mode normalises with the biased batch variance over (N, H, W) and updates the
    /// running statistics with the unbiased one; eval mode uses the running statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let shape = (1, c, 1, 1);
        let (mean, var) = if train {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
            self.update_running(
                &mean.detach().flatten_all()?,
                &var.detach().flatten_all()?,
                b * h * w,
            )?;
            (mean, var)
        } else {
            (
                self.running_mean.reshape(shape)?,
                self.running_var.reshape(shape)?,
            )
        };
        let normalised = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
        normalised
            .broadcast_mul(&self.weight.reshape(shape)?)?
            .broadcast_add(&self.bias.reshape(shape)?)
    }

    /// Running-statistics update from a batch's per-channel mean and biased variance over
    /// `n` values per channel (PyTorch: the unbiased variance enters the running average).
    pub(super) fn update_running(
        &self,
        mean: &Tensor,
        biased_var: &Tensor,
        n: usize,
    ) -> Result<()> {
        let n = n as f64;
        let unbiased = (biased_var * (n / (n - 1.0).max(1.0)))?;
        self.running_mean.set(
            &((self.running_mean.as_tensor() * (1.0 - BN_MOMENTUM))? + (mean * BN_MOMENTUM)?)?,
        )?;
        self.running_var.set(
            &((self.running_var.as_tensor() * (1.0 - BN_MOMENTUM))? + (unbiased * BN_MOMENTUM)?)?,
        )?;
        self.num_batches_tracked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Where dropout masks come from in a train-mode forward.
pub enum Dropout<'a> {
    /// No dropout (eval mode, or p = 0).
    Off,
    /// An explicit mask with values in {0, 1/(1-p)} (the fixtures pin them).
    Mask(&'a Tensor),
    /// Draw a mask from this seeded stream.
    Sample(&'a mut rand_chacha::ChaCha8Rng),
}

impl Dropout<'_> {
    /// Applies dropout with probability `p` to `x`.
    pub fn apply(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        match self {
            Dropout::Off => Ok(x.clone()),
            Dropout::Mask(mask) => x.mul(mask),
            Dropout::Sample(rng) => {
                if p <= 0.0 {
                    return Ok(x.clone());
                }
                let keep = (1.0 / (1.0 - p)) as f32;
                let values: Vec<f32> = (0..x.elem_count())
                    .map(|_| if rng.random_bool(1.0 - p) { keep } else { 0.0 })
                    .collect();
                x.mul(&Tensor::from_vec(values, x.shape(), x.device())?)
            }
        }
    }
}
