//! BatchNorm → ReLU → 2x2 max pooling as one CPU op with its own backward pass.
//!
//! Composed from candle primitives, each conv block's BatchNorm, ReLU and pooling allocate
//! about a dozen full-size temporaries in the forward pass and as many in the backward; at
//! 64x96 inputs these are tens of MB each, and a profile of the training step showed the time
//! going to those element-wise passes and their page faults, not to the convolutions. This op
//! reads the conv output twice in the forward pass (statistics, then pooled output) and
//! twice in the backward, per channel in parallel. It computes the same function as
//! `BatchNorm2d::forward` + `relu` + `max_pool_2x2` (the tests compare them), with statistics
//! accumulated in f64.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::{f32_data, with_cpu_data};

/// Where the normalisation statistics come from.
#[derive(Debug, Clone)]
pub enum BnStats {
    /// Train mode: this batch's mean and biased variance per channel.
    Batch,
    /// Eval mode: the running mean and variance.
    Running {
        /// Per-channel mean.
        mean: Vec<f32>,
        /// Per-channel variance.
        var: Vec<f32>,
    },
}

/// Per-channel `(mean, biased variance)` used by the last forward pass.
pub type UsedStats = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

/// The fused op. After a forward pass, [`BnReluPool::used_stats`] holds the mean and biased
/// variance per channel it normalised with (for the running-statistics update).
#[derive(Debug)]
pub struct BnReluPool {
    stats: BnStats,
    eps: f64,
    computed: UsedStats,
}

impl BnReluPool {
    /// An op normalising with `stats`.
    pub fn new(stats: BnStats, eps: f64) -> Self {
        Self {
            stats,
            eps,
            computed: Arc::default(),
        }
    }

    /// A handle on the statistics the forward pass used (filled when it has run).
    pub fn used_stats(&self) -> UsedStats {
        self.computed.clone()
    }

    fn batch_stats(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        self.computed.lock().expect("not poisoned").clone()
    }

    /// Per-channel `(mean, 1/sqrt(var + eps))` for channel-major `x` of shape `[B, C, H, W]`.
    fn channel_stats(&self, x: &[f32], dims: [usize; 4]) -> Vec<(f64, f64)> {
        let [b, c, h, w] = dims;
        let plane = h * w;
        let stats: Vec<(f64, f64)> = match &self.stats {
            BnStats::Batch => (0..c)
                .into_par_iter()
                .map(|ch| {
                    // f32 within a plane (at most a few thousand values), f64 across planes.
                    let planes = (0..b).map(|n| &x[(n * c + ch) * plane..][..plane]);
                    let count = (b * plane) as f64;
                    let sum: f64 = planes
                        .clone()
                        .map(|p| f64::from(p.iter().sum::<f32>()))
                        .sum();
                    let mean = sum / count;
                    let m = mean as f32;
                    let var = planes
                        .map(|p| f64::from(p.iter().map(|&v| (v - m) * (v - m)).sum::<f32>()))
                        .sum::<f64>()
                        / count;
                    (mean, var)
                })
                .collect(),
            BnStats::Running { mean, var } => mean
                .iter()
                .zip(var)
                .map(|(&m, &v)| (f64::from(m), f64::from(v)))
                .collect(),
        };
        *self.computed.lock().expect("not poisoned") = Some(stats.iter().copied().unzip());
        stats
            .into_iter()
            .map(|(m, v)| (m, 1.0 / (v + self.eps).sqrt()))
            .collect()
    }
}

fn dims4(l: &Layout) -> Result<[usize; 4]> {
    let (b, c, h, w) = l.shape().dims4()?;
    Ok([b, c, h, w])
}

/// The window's best position `(offset in the plane, activation)` for pooled cell `(i, j)`.
#[inline]
fn window_max(
    plane: &[f32],
    w: usize,
    i: usize,
    j: usize,
    affine: impl Fn(f32) -> f32,
) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let at = (2 * i + di) * w + 2 * j + dj;
        let y = affine(plane[at]).max(0.0);
        if y > best.1 {
            best = (at, y);
        }
    }
    best
}

/// One channel's normalisation: `y = x * scale + shift`, from its mean and `1/sigma`.
#[derive(Debug, Clone, Copy)]
struct ChannelNorm {
    mean: f64,
    inv: f64,
    gamma: f64,
    scale: f32,
    shift: f32,
}

impl ChannelNorm {
    fn new(mean: f64, var: f64, eps: f64, gamma: f32, beta: f32) -> Self {
        Self::with_inv(mean, 1.0 / (var + eps).sqrt(), gamma, beta)
    }

    fn with_inv(mean: f64, inv: f64, gamma: f32, beta: f32) -> Self {
        let g = f64::from(gamma);
        Self {
            mean,
            inv,
            gamma: g,
            scale: (g * inv) as f32,
            shift: (f64::from(beta) - mean * g * inv) as f32,
        }
    }
}

/// Calls `f(offset in the plane, gradient)` for each pooled cell whose (first) maximum
/// passed the ReLU: where the pooled gradient goes at the BatchNorm output.
fn route(
    plane: &[f32],
    grads: &[f32],
    [h, w]: [usize; 2],
    norm: &ChannelNorm,
    mut f: impl FnMut(usize, f32),
) {
    let w2 = w / 2;
    for i in 0..h / 2 {
        for j in 0..w2 {
            let (at, y) = window_max(plane, w, i, j, |v| v * norm.scale + norm.shift);
            if y > 0.0 {
                f(at, grads[i * w2 + j]);
            }
        }
    }
}

/// `(dx, dgamma, dbeta)`: the per-channel sums first (channels in parallel, samples in
/// order), then `dx` one (sample, channel) plane per task, written in place.
fn bn_relu_pool_backward(
    xs: &[f32],
    dy: &[f32],
    [b, c, h, w]: [usize; 4],
    channels: &[ChannelNorm],
    train: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (hw, pooled) = (h * w, (h / 2) * (w / 2));
    let plane = |n: usize, ch: usize| {
        (
            &xs[(n * c + ch) * hw..][..hw],
            &dy[(n * c + ch) * pooled..][..pooled],
        )
    };
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let norm = &channels[ch];
            let (mut dbeta, mut dgamma) = (0f64, 0f64);
            for n in 0..b {
                let (x, g) = plane(n, ch);
                route(x, g, [h, w], norm, |at, gv| {
                    dbeta += f64::from(gv);
                    dgamma += f64::from(gv) * (f64::from(x[at]) - norm.mean) * norm.inv;
                });
            }
            (dgamma, dbeta)
        })
        .collect();
    // dx = g/sigma * (dbn - mean(dbn) - xhat * mean(dbn * xhat)), linear in (dbn, x):
    // dx = k1 * dbn + k3 * x + k2 in train mode, dbn * scale in eval mode.
    let count = (b * hw) as f64;
    let coefficients: Vec<(f32, f32, f32)> = channels
        .iter()
        .zip(&sums)
        .map(|(norm, &(dgamma, dbeta))| {
            let a = norm.gamma * norm.inv / count;
            (
                (norm.gamma * norm.inv) as f32,
                (-a * dgamma * norm.inv) as f32,
                (-a * dbeta + a * dgamma * norm.inv * norm.mean) as f32,
            )
        })
        .collect();
    let mut dx = vec![0f32; b * c * hw];
    dx.par_chunks_mut(hw).enumerate().for_each(|(index, d)| {
        let ch = index % c;
        let (x, g) = plane(index / c, ch);
        route(x, g, [h, w], &channels[ch], |at, gv| d[at] = gv);
        if train {
            let (k1, k3, k2) = coefficients[ch];
            for (dv, &xv) in d.iter_mut().zip(x) {
                *dv = k1 * *dv + k3 * xv + k2;
            }
        } else {
            let scale = channels[ch].scale;
            d.iter_mut().for_each(|dv| *dv *= scale);
        }
    });
    let (dgamma, dbeta) = sums.iter().map(|&(g, b)| (g as f32, b as f32)).unzip();
    (dx, dgamma, dbeta)
}

impl CustomOp3 for BnReluPool {
    fn name(&self) -> &'static str {
        "bn_relu_pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let arg = |s, l, what| f32_data(s, l, self.name(), what);
        let x = arg(s1, l1, "input")?;
        let (gamma, beta) = (arg(s2, l2, "weight")?, arg(s3, l3, "bias")?);
        let dims @ [b, c, h, w] = dims4(l1)?;
        let (h2, w2) = (h / 2, w / 2);
        let stats = self.channel_stats(x, dims);
        let channels: Vec<ChannelNorm> = stats
            .iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&(mean, inv), (&g, &bt))| ChannelNorm::with_inv(mean, inv, g, bt))
            .collect();
        // One (sample, channel) plane per task, written in place.
        let mut out = vec![0f32; b * c * h2 * w2];
        out.par_chunks_mut(h2 * w2)
            .enumerate()
            .for_each(|(plane_index, pooled)| {
                let norm = &channels[plane_index % c];
                let plane = &x[plane_index * h * w..][..h * w];
                for i in 0..h2 {
                    for j in 0..w2 {
                        pooled[i * w2 + j] =
                            window_max(plane, w, i, j, |v| v * norm.scale + norm.shift).1;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, h2, w2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [b, c, h, w] = {
            let (b, c, h, w) = x.dims4()?;
            [b, c, h, w]
        };
        let gs = gamma.to_vec1::<f32>()?;
        let bs = beta.to_vec1::<f32>()?;
        let (means, vars) = self.batch_stats().ok_or_else(|| {
            candle_core::Error::Msg("bn_relu_pool: backward before forward".into())
        })?;
        let channels: Vec<ChannelNorm> = (0..c)
            .map(|ch| ChannelNorm::new(means[ch], vars[ch], self.eps, gs[ch], bs[ch]))
            .collect();
        let train = matches!(self.stats, BnStats::Batch);
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let (dx, dgamma, dbeta) = with_cpu_data(&x, "input", |xs| {
            with_cpu_data(&grad, "gradient", |dy| {
                bn_relu_pool_backward(xs, dy, [b, c, h, w], &channels, train)
            })
        })??;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, h, w), device)?),
            Some(Tensor::from_vec(dgamma, c, device)?),
            Some(Tensor::from_vec(dbeta, c, device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::testing::{max_diff, random};
    use candle_core::{Device, Tensor, Var};

    use crate::model::encoder::max_pool_2x2;
    use crate::model::BatchNorm2d;

    /// Same outputs, gradients and running statistics as BatchNorm2d::forward + relu +
    /// max_pool_2x2, in train and eval mode, with odd sizes and a negative scale.
    #[test]
    fn matches_the_composed_layers() {
        let device = Device::Cpu;
        for train in [true, false] {
            let (fused, composed) = (
                BatchNorm2d::new(3, &device).unwrap(),
                BatchNorm2d::new(3, &device).unwrap(),
            );
            for bn in [&fused, &composed] {
                bn.weight
                    .set(&Tensor::new(&[1.5f32, -0.7, 0.3], &device).unwrap())
                    .unwrap();
                bn.bias
                    .set(&Tensor::new(&[0.1f32, 0.2, -0.4], &device).unwrap())
                    .unwrap();
                bn.running_mean
                    .set(&Tensor::new(&[0.2f32, -0.1, 0.0], &device).unwrap())
                    .unwrap();
                bn.running_var
                    .set(&Tensor::new(&[1.3f32, 0.8, 2.0], &device).unwrap())
                    .unwrap();
            }
            let x = Var::from_tensor(&random(&[4, 3, 7, 9], 2.0, 1)).unwrap();
            let upstream = random(&[4, 3, 3, 4], 2.0, 2);
            let a = fused.forward_relu_pool(&x, train).unwrap();
            let b = max_pool_2x2(&composed.forward(&x, train).unwrap().relu().unwrap()).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "forward, train={train}");
            let ga = (a * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gb = (b * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (va, vb) in [
                (&x, &x),
                (&fused.weight, &composed.weight),
                (&fused.bias, &composed.bias),
            ] {
                let (da, db) = (ga.get(va).unwrap(), gb.get(vb).unwrap());
                assert!(max_diff(da, db) < 1e-4, "gradient, train={train}");
            }
            assert!(max_diff(&fused.running_mean, &composed.running_mean) < 1e-6);
            assert!(max_diff(&fused.running_var, &composed.running_var) < 1e-6);
        }
    }
}
