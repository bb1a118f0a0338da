//! Conv3x3 → BatchNorm → ReLU → 2x2 max pooling as one CPU op with its own backward pass.
//!
//! Composed from candle primitives, each conv block's BatchNorm, ReLU and pooling allocate
//! about a dozen full-size temporaries in the forward pass and as many in the backward; at
//! 64x96 inputs these are tens of MB each, and a profile of the training step showed the time
//! going to those element-wise passes and their page faults, not to the convolutions. This op
//! reads the conv output twice in the forward pass (statistics, then pooled output) and
//! twice in the backward, per channel in parallel. It computes the same function as
//! `Conv3x3::forward` + `BatchNorm2d::forward` + `relu` + `max_pool_2x2` (the tests compare
//! them), with statistics accumulated in f64.
//!
//! The convolution is inside the op so that its output (100 MB for the first block at batch
//! 64) never becomes a graph node: candle's gradient store accumulates every node's gradient
//! as `zeros_like` + `add`, three passes over it, and a separate BatchNorm backward allocated
//! its input gradient anew. Here the forward keeps the conv output for the backward, which
//! overwrites it in place with its gradient and hands that to the convolution's backward
//! (`conv.rs`). The conv bias and the BatchNorm scale and shift enter as one `[3 * C]`
//! parameter tensor (candle's custom ops take three arguments).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::{
    conv_forward, conv_input_gradient, conv_parameter_gradients, f32_data, with_cpu_data,
};
use super::layers::{BatchNorm2d, Conv3x3, BN_EPS};

/// Where the normalisation statistics come from.
#[derive(Debug, Clone)]
enum BnStats {
    /// Train mode: this batch's mean and biased variance per channel.
    Batch,
    /// Eval mode: the running mean and variance.
    Running { mean: Vec<f32>, var: Vec<f32> },
}

/// Per-channel `(mean, biased variance)` used by the last forward pass.
type UsedStats = Arc<Mutex<Option<(Vec<f64>, Vec<f64>)>>>;

/// One conv block on the CPU: `max_pool_2x2(relu(bn(conv(x))))` in f32, with train-mode
/// BatchNorm updating `bn`'s running statistics as `BatchNorm2d::forward` does.
pub(super) fn conv_bn_relu_pool(
    x: &Tensor,
    conv: &Conv3x3,
    bn: &BatchNorm2d,
    train: bool,
) -> Result<Tensor> {
    let stats = if train {
        BnStats::Batch
    } else {
        BnStats::Running {
            mean: bn.running_mean.as_tensor().to_vec1()?,
            var: bn.running_var.as_tensor().to_vec1()?,
        }
    };
    let op = ConvBnReluPool::new(stats, BN_EPS);
    let used = op.computed.clone();
    let params = Tensor::cat(
        &[
            conv.bias.as_tensor(),
            bn.weight.as_tensor(),
            bn.bias.as_tensor(),
        ],
        0,
    )?;
    let out = x
        .contiguous()?
        .apply_op3(conv.weight.as_tensor(), &params, op)?;
    if train {
        let (b, _, h, w) = x.dims4()?;
        let (mean, var) = used
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("conv_bn_relu_pool did not run".into()))?;
        let to_tensor = |v: Vec<f64>| {
            let v: Vec<f32> = v.into_iter().map(|v| v as f32).collect();
            let channels = v.len();
            Tensor::from_vec(v, channels, x.device())
        };
        bn.update_running(&to_tensor(mean)?, &to_tensor(var)?, b * h * w)?;
    }
    Ok(out)
}

/// The fused op on (input, conv weight, `[conv bias; gamma; beta]`).
#[derive(Debug)]
struct ConvBnReluPool {
    stats: BnStats,
    eps: f64,
    /// The statistics the forward pass normalised with (for the running-statistics update).
    computed: UsedStats,
    /// What the forward pass keeps for the backward pass, which takes it.
    saved: Mutex<Option<Saved>>,
}

/// The forward pass's conv output (overwritten with its gradient by the backward pass) and
/// each pooled cell's winning window position.
#[derive(Debug)]
struct Saved {
    conv_output: Vec<f32>,
    winners: Vec<u8>,
}

impl ConvBnReluPool {
    fn new(stats: BnStats, eps: f64) -> Self {
        Self {
            stats,
            eps,
            computed: Arc::default(),
            saved: Mutex::default(),
        }
    }

    /// Each channel's normalisation for conv output `y`, recording the statistics used.
    fn forward_channels(
        &self,
        y: &[f32],
        dims: [usize; 4],
        gamma: &[f32],
        beta: &[f32],
    ) -> Vec<ChannelNorm> {
        self.channel_stats(y, dims)
            .iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&(mean, inv), (&g, &bt))| ChannelNorm::with_inv(mean, inv, g, bt))
            .collect()
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

/// A pooled cell whose maximum did not pass the ReLU: no gradient flows back through it.
const NOT_ROUTED: u8 = u8::MAX;

/// The pooled activations `max(relu(y * scale + shift))` over each 2x2 window, and for each
/// pooled cell the window position that won (`2 * di + dj`, the first maximum, as a
/// sequential scan finds it) or [`NOT_ROUTED`]; one (sample, channel) plane per task.
fn pool_forward(
    ys: &[f32],
    [b, c, h, w]: [usize; 4],
    channels: &[ChannelNorm],
) -> (Vec<f32>, Vec<u8>) {
    let (h2, w2) = (h / 2, w / 2);
    let mut out = vec![0f32; b * c * h2 * w2];
    let mut winners = vec![NOT_ROUTED; b * c * h2 * w2];
    out.par_chunks_mut(h2 * w2)
        .zip(winners.par_chunks_mut(h2 * w2))
        .enumerate()
        .for_each(|(index, (pooled, won))| {
            let norm = channels[index % c];
            let activation = |v: f32| (v * norm.scale + norm.shift).max(0.0);
            let plane = &ys[index * h * w..][..h * w];
            let rows = plane.chunks_exact(2 * w).take(h2);
            let cells = pooled.chunks_exact_mut(w2).zip(won.chunks_exact_mut(w2));
            for (pair, (values, winners)) in rows.zip(cells) {
                let (top, bottom) = pair.split_at(w);
                let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                for ((t, u), (value, winner)) in windows.zip(values.iter_mut().zip(winners)) {
                    let (a, b) = (activation(t[0]), activation(t[1]));
                    let (c, d) = (activation(u[0]), activation(u[1]));
                    let (upper, i) = if b > a { (b, 1) } else { (a, 0) };
                    let (lower, j) = if d > c { (d, 3) } else { (c, 2) };
                    let (best, at) = if lower > upper {
                        (lower, j)
                    } else {
                        (upper, i)
                    };
                    *value = best;
                    *winner = if best > 0.0 { at } else { NOT_ROUTED };
                }
            }
        });
    (out, winners)
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

/// Calls `f(offset in the plane, gradient)` for each pooled cell of one plane whose winner
/// passed the ReLU: where the pooled gradient goes at the BatchNorm output.
fn route(won: &[u8], grads: &[f32], [h, w]: [usize; 2], mut f: impl FnMut(usize, f32)) {
    let w2 = w / 2;
    for i in 0..h / 2 {
        for j in 0..w2 {
            let winner = won[i * w2 + j];
            if winner != NOT_ROUTED {
                let (di, dj) = (usize::from(winner >> 1), usize::from(winner & 1));
                f((2 * i + di) * w + 2 * j + dj, grads[i * w2 + j]);
            }
        }
    }
}

/// `(dgamma, dbeta)`, and `ys` (the conv output) overwritten with its gradient: the
/// per-channel sums first (channels in parallel, samples in order), then one (sample,
/// channel) plane per task, in place.
fn bn_relu_pool_backward(
    ys: &mut [f32],
    winners: &[u8],
    dy: &[f32],
    [b, c, h, w]: [usize; 4],
    channels: &[ChannelNorm],
    train: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (hw, pooled) = (h * w, (h / 2) * (w / 2));
    let grads = |index: usize| &dy[index * pooled..][..pooled];
    let won = |index: usize| &winners[index * pooled..][..pooled];
    let sums: Vec<(f64, f64)> = {
        let ys = &*ys;
        (0..c)
            .into_par_iter()
            .map(|ch| {
                let norm = &channels[ch];
                let (mut dbeta, mut dgamma) = (0f64, 0f64);
                for n in 0..b {
                    let y = &ys[(n * c + ch) * hw..][..hw];
                    route(won(n * c + ch), grads(n * c + ch), [h, w], |at, gv| {
                        dbeta += f64::from(gv);
                        dgamma += f64::from(gv) * (f64::from(y[at]) - norm.mean) * norm.inv;
                    });
                }
                (dgamma, dbeta)
            })
            .collect()
    };
    // dy_bn = g/sigma * (dbn - mean(dbn) - xhat * mean(dbn * xhat)), linear in (dbn, y):
    // k1 * dbn + k3 * y + k2 in train mode, dbn * scale in eval mode.
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
    ys.par_chunks_mut(hw).enumerate().for_each_init(
        || vec![0f32; hw],
        |routed, (index, y)| {
            let ch = index % c;
            routed.fill(0.0);
            route(won(index), grads(index), [h, w], |at, gv| routed[at] = gv);
            if train {
                let (k1, k3, k2) = coefficients[ch];
                for (yv, &dbn) in y.iter_mut().zip(routed.iter()) {
                    *yv = k1 * dbn + k3 * *yv + k2;
                }
            } else {
                let scale = channels[ch].scale;
                for (yv, &dbn) in y.iter_mut().zip(routed.iter()) {
                    *yv = dbn * scale;
                }
            }
        },
    );
    sums.iter().map(|&(g, b)| (g as f32, b as f32)).unzip()
}

impl CustomOp3 for ConvBnReluPool {
    fn name(&self) -> &'static str {
        "conv_bn_relu_pool"
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
        let [b, c, h, w] = dims4(l1)?;
        let [o, c2, kh, kw] = dims4(l2)?;
        if (c2, kh, kw) != (c, 3, 3) || l3.shape().dims() != [3 * o] {
            candle_core::bail!(
                "conv_bn_relu_pool: weight {:?} and parameters {:?} for input {:?}",
                l2.shape(),
                l3.shape(),
                l1.shape()
            );
        }
        let (x, weight, params) = (
            arg(s1, l1, "input")?,
            arg(s2, l2, "weight")?,
            arg(s3, l3, "parameters")?,
        );
        let (bias, gamma, beta) = (&params[..o], &params[o..2 * o], &params[2 * o..]);
        let y = conv_forward(x, weight, bias, [b, c, h, w], o);
        let channels = self.forward_channels(&y, [b, o, h, w], gamma, beta);
        let (out, winners) = pool_forward(&y, [b, o, h, w], &channels);
        *self.saved.lock().expect("not poisoned") = Some(Saved {
            conv_output: y,
            winners,
        });
        Ok((CpuStorage::F32(out), Shape::from((b, o, h / 2, w / 2))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let o = weight.dim(0)?;
        let ps = params.to_vec1::<f32>()?;
        let (means, vars) = self
            .computed
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| {
                candle_core::Error::Msg("conv_bn_relu_pool: backward before forward".into())
            })?;
        let channels: Vec<ChannelNorm> = (0..o)
            .map(|ch| ChannelNorm::new(means[ch], vars[ch], self.eps, ps[o + ch], ps[2 * o + ch]))
            .collect();
        let train = matches!(self.stats, BnStats::Batch);
        // The first layer's input is data: no gradient to compute for it.
        let needs_dx = x.track_op();
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let saved = self.saved.lock().expect("not poisoned").take();
        // A second backward pass over the same graph recomputes the forward's conv output.
        let Saved {
            conv_output: mut dconv,
            winners,
        } = match saved {
            Some(saved) => saved,
            None => {
                let y = with_cpu_data(&x, "input", |xs| {
                    with_cpu_data(weight, "weight", |ws| {
                        conv_forward(xs, ws, &ps[..o], [b, c, h, w], o)
                    })
                })??;
                let (_, winners) = pool_forward(&y, [b, o, h, w], &channels);
                Saved {
                    conv_output: y,
                    winners,
                }
            }
        };
        let (dgamma, dbeta) = with_cpu_data(&grad, "gradient", |dy| {
            bn_relu_pool_backward(&mut dconv, &winners, dy, [b, o, h, w], &channels, train)
        })?;
        let (dweight, dbias) = with_cpu_data(&x, "input", |xs| {
            conv_parameter_gradients(xs, &dconv, [b, c, h, w], o)
        })?;
        let device = x.device();
        let dx = if needs_dx {
            let dx = with_cpu_data(weight, "weight", |ws| {
                conv_input_gradient(&dconv, ws, [b, c, h, w], o)
            })?;
            Some(Tensor::from_vec(dx, (b, c, h, w), device)?)
        } else {
            None
        };
        let dparams: Vec<f32> = [dbias, dgamma, dbeta].concat();
        Ok((
            dx,
            Some(Tensor::from_vec(dweight, (o, c, 3, 3), device)?),
            Some(Tensor::from_vec(dparams, 3 * o, device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::testing::{max_diff, random};
    use candle_core::{Device, Tensor, Var};

    use super::conv_bn_relu_pool;
    use crate::model::encoder::max_pool_2x2;
    use crate::model::{BatchNorm2d, Conv3x3};

    /// A block with 2 inputs, 3 outputs, a negative BatchNorm scale and set running statistics.
    fn block() -> (Conv3x3, BatchNorm2d) {
        let device = Device::Cpu;
        let conv = Conv3x3 {
            weight: Var::from_tensor(&random(&[3, 2, 3, 3], 0.5, 3)).unwrap(),
            bias: Var::from_tensor(&random(&[3], 0.5, 4)).unwrap(),
        };
        let bn = BatchNorm2d::new(3, &device).unwrap();
        let set =
            |v: &Var, values: [f32; 3]| v.set(&Tensor::new(&values, &device).unwrap()).unwrap();
        set(&bn.weight, [1.5, -0.7, 0.3]);
        set(&bn.bias, [0.1, 0.2, -0.4]);
        set(&bn.running_mean, [0.2, -0.1, 0.0]);
        set(&bn.running_var, [1.3, 0.8, 2.0]);
        (conv, bn)
    }

    /// Same outputs, gradients (input, conv weight and bias, BatchNorm scale and shift) and
    /// running statistics as Conv3x3 + BatchNorm2d::forward + relu + max_pool_2x2, in train
    /// and eval mode, with odd sizes; a second backward pass over the same graph agrees.
    #[test]
    fn matches_the_composed_layers() {
        for train in [true, false] {
            let ((fc, fb), (cc, cb)) = (block(), block());
            let x = Var::from_tensor(&random(&[4, 2, 7, 9], 2.0, 1)).unwrap();
            let upstream = random(&[4, 3, 3, 4], 2.0, 2);
            let a = conv_bn_relu_pool(&x, &fc, &fb, train).unwrap();
            let composed = x
                .conv2d(&cc.weight, 1, 1, 1, 1)
                .and_then(|y| y.broadcast_add(&cc.bias.reshape((1, 3, 1, 1))?))
                .unwrap();
            let b = max_pool_2x2(&cb.forward(&composed, train).unwrap().relu().unwrap()).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "forward, train={train}");
            let loss = |y: &Tensor| (y * &upstream).unwrap().sum_all().unwrap();
            let (la, lb) = (loss(&a), loss(&b));
            let (ga, gb, again) = (
                la.backward().unwrap(),
                lb.backward().unwrap(),
                la.backward().unwrap(),
            );
            for (va, vb) in [
                (&x, &x),
                (&fc.weight, &cc.weight),
                (&fc.bias, &cc.bias),
                (&fb.weight, &cb.weight),
                (&fb.bias, &cb.bias),
            ] {
                let (da, db) = (ga.get(va).unwrap(), gb.get(vb).unwrap());
                assert!(max_diff(da, db) < 1e-4, "gradient, train={train}");
                assert_eq!(max_diff(da, again.get(va).unwrap()), 0.0, "second backward");
            }
            assert!(max_diff(&fb.running_mean, &cb.running_mean) < 1e-6);
            assert!(max_diff(&fb.running_var, &cb.running_var) < 1e-6);
        }
    }

    /// With data (not a variable) as input, the parameters still get their gradients.
    #[test]
    fn data_input_gets_no_gradient_but_parameters_do() {
        let (conv, bn) = block();
        let x = random(&[2, 2, 6, 8], 1.0, 5);
        let y = conv_bn_relu_pool(&x, &conv, &bn, true).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&conv.weight).is_some() && grads.get(&bn.weight).is_some());
    }
}
