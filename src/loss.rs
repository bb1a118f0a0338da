//! SLICER's losses (docs/method.md §7): MoCo InfoNCE with a queue, the Contrastive-Clustering cluster
//! loss with its optional entropy term, and NT-Xent (SimCLR) as an alternative instance loss;
//! and the baselines' losses (docs/method.md §11): BYOL's normalised MSE and DeLoRes' Barlow Twins.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// `x / max(||x||_2, eps)` along the last dimension.
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(eps)?)
}

/// L2 normalisation as `F.normalize` (eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    normalize(x, 1e-12)
}

/// MoCo InfoNCE for one direction: cross-entropy over `[q.k, q.queue] / tau` with the
/// positive at index 0, averaged over the batch. `q`, `k`: `[B, dim]` unit rows;
/// `queue`: `[dim, K]` unit columns; `mask` (`[B, K]`, added to the negatives' logits)
/// removes negatives, as [`crate::model::KeyQueue::same_clip_mask`] makes it.
pub fn info_nce(
    q: &Tensor,
    k: &Tensor,
    queue: &Tensor,
    tau: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let positive = (q * k)?.sum_keepdim(1)?;
    let negative = (q.matmul(queue)? / tau)?;
    let negative = match mask {
        Some(mask) => (negative + mask.to_dtype(q.dtype())?)?,
        None => negative,
    };
    let logits = Tensor::cat(&[(positive / tau)?, negative], 1)?;
    let log_p = log_softmax(&logits, 1)?;
    log_p.narrow(1, 0, 1)?.mean_all()?.neg()
}

/// The contrastive loss over two paired sets of vectors (rows of `a` and `b`, `[N, D]`):
/// cosine similarity / `tau` between all 2N vectors, the partner in the other set as the
/// positive, the vector itself excluded, cross-entropy summed and divided by 2N.
fn paired_contrastive(a: &Tensor, b: &Tensor, tau: f64, eps: f64) -> Result<Tensor> {
    let n = a.dim(0)?;
    let all = normalize(&Tensor::cat(&[a, b], 0)?, eps)?;
    let sim = (all.matmul(&all.t()?)? / tau)?;
    let device = sim.device();
    let two_n = 2 * n;
    let mut self_mask = vec![0f32; two_n * two_n];
    let mut positive = vec![0f32; two_n * two_n];
    for i in 0..two_n {
        self_mask[i * two_n + i] = -1e9;
        positive[i * two_n + (i + n) % two_n] = 1.0;
    }
    let self_mask = Tensor::from_vec(self_mask, (two_n, two_n), device)?.to_dtype(sim.dtype())?;
    let positive = Tensor::from_vec(positive, (two_n, two_n), device)?.to_dtype(sim.dtype())?;
    let log_p = log_softmax(&(sim + self_mask)?, 1)?;
    ((log_p * positive)?.sum_all()? / two_n as f64)?.neg()
}

/// The cluster-level loss (docs/method.md §7.2) between soft assignments `c1`, `c2` (`[B, M]`):
/// the columns are the cluster representations; cosine eps 1e-8.
pub fn cluster_loss(c1: &Tensor, c2: &Tensor, tau: f64) -> Result<Tensor> {
    paired_contrastive(&c1.t()?, &c2.t()?, tau, 1e-8)
}

/// Contrastive Clustering's entropy term, `sum over views of log M - H(cluster usage)`
/// (zero when clusters are used uniformly). Added with weight `entropy_weight` (docs/method.md §13: 0).
pub fn cluster_entropy_term(c1: &Tensor, c2: &Tensor) -> Result<Tensor> {
    let m = c1.dim(1)? as f64;
    let term = |c: &Tensor| -> Result<Tensor> {
        let usage = c.sum(0)?;
        let p = usage.broadcast_div(&usage.sum_all()?)?;
        (p.clone() * p.log()?)?.sum_all()? + m.ln()
    };
    term(c1)? + term(c2)?
}

/// NT-Xent (SimCLR; LAPE's `InstanceLoss`) between `z_i`, `z_j` (`[N, D]`, normalised inside).
pub fn nt_xent(z_i: &Tensor, z_j: &Tensor, tau: f64) -> Result<Tensor> {
    paired_contrastive(z_i, z_j, tau, 1e-12)
}

/// BYOL's regression loss per row: `2 - 2 cos(p, z)` between predictions `p` and targets
/// `z` (`[B, D]`), as a `[B]` vector (docs/method.md §11.3).
pub fn byol_loss(p: &Tensor, z: &Tensor) -> Result<Tensor> {
    let cos = (l2_normalize(p)? * l2_normalize(z)?)?.sum(D::Minus1)?;
    cos.affine(-2.0, 2.0)
}

/// BatchNorm without affine parameters over the batch (biased variance, eps 1e-5): the
/// normalisation Barlow Twins applies to each view before the correlation.
pub fn batch_standardize(z: &Tensor) -> Result<Tensor> {
    let mean = z.mean_keepdim(0)?;
    let centred = z.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(0)?;
    centred.broadcast_div(&(var + 1e-5)?.sqrt()?)
}

/// DeLoRes' Barlow Twins loss as coded (docs/method.md §11.1): `C = BN(z1)^T BN(z2) / B`, then
/// `weight * (sum_i (1 - C_ii)^2 + sum_{i != j} C_ij^2)`; `weight` is `lambda * scale`
/// (5e-5 / 32 in DeLoRes), the same factor on both terms.
pub fn barlow_twins(z1: &Tensor, z2: &Tensor, weight: f64) -> Result<Tensor> {
    let b = z1.dim(0)? as f64;
    let c = (batch_standardize(z1)?
        .t()?
        .matmul(&batch_standardize(z2)?)?
        / b)?;
    let dim = c.dim(0)?;
    let eye = Tensor::eye(dim, c.dtype(), c.device())?;
    // (1 - C_ii)^2 on the diagonal, C_ij^2 off it: (C - I)^2 everywhere.
    (c - eye)?.sqr()?.sum_all()? * weight
}

/// Entropy (nats) of the mean cluster assignment of a batch: a collapse monitor (log M is
/// uniform use, 0 is one cluster).
pub fn cluster_usage_entropy(c: &Tensor) -> Result<f32> {
    let p = c.to_dtype(DType::F32)?.mean(0)?;
    let p = p.broadcast_div(&p.sum_all()?)?;
    ((p.clone() * p.clamp(1e-12, 1.0)?.log()?)?
        .sum_all()?
        .neg()?)
    .to_scalar::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(rows: &[&[f32]]) -> Tensor {
        let cols = rows[0].len();
        Tensor::from_vec(rows.concat(), (rows.len(), cols), &Device::Cpu).unwrap()
    }

    /// docs/method.md §7.5 golden numbers.
    #[test]
    fn cluster_loss_golden() {
        let p1 = candle_nn::ops::softmax_last_dim(&t(&[
            &[2.0, 0.0, -1.0],
            &[0.0, 1.0, 0.0],
            &[1.0, 1.0, 3.0],
            &[-1.0, 2.0, 0.5],
        ]))
        .unwrap();
        let p2 = candle_nn::ops::softmax_last_dim(&t(&[
            &[1.5, 0.2, -1.0],
            &[0.1, 1.2, 0.0],
            &[0.8, 1.0, 2.5],
            &[-1.0, 1.5, 1.0],
        ]))
        .unwrap();
        let loss = cluster_loss(&p1, &p2, 1.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((loss - 1.173_73).abs() < 1e-5, "{loss}");
        let with = loss
            + cluster_entropy_term(&p1, &p2)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
        assert!((with - 1.191479).abs() < 1e-5, "{with}");
    }

    #[test]
    fn byol_loss_is_two_minus_twice_the_cosine() {
        let p = t(&[&[1.0, 0.0], &[2.0, 0.0], &[1.0, 0.0]]);
        let z = t(&[&[0.0, 3.0], &[5.0, 0.0], &[1.0, 1.0]]);
        let loss = byol_loss(&p, &z).unwrap().to_vec1::<f32>().unwrap();
        let expected = [2.0, 0.0, 2.0 - 2.0_f32.sqrt()];
        for (got, want) in loss.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{loss:?}");
        }
    }

    /// Columns standardise to (-1, 1) or (1, -1), so C = [[1, 1], [-1, -1]] (up to BN's eps):
    /// on-diagonal (1-1)^2 + (1+1)^2 = 4, off-diagonal 1 + 1 = 2, times the weight.
    #[test]
    fn barlow_twins_hand_case() {
        let z1 = t(&[&[1.0, 2.0], &[3.0, 0.0]]);
        let z2 = t(&[&[0.0, 1.0], &[2.0, 5.0]]);
        let weight = 5e-5 / 32.0;
        let loss = barlow_twins(&z1, &z2, weight)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let expected = 6.0 * weight as f32;
        assert!(
            ((loss - expected) / expected).abs() < 1e-4,
            "{loss} vs {expected}"
        );
        // Identical, decorrelated views give C = I: zero loss.
        let z = t(&[&[1.0, 1.0], &[-1.0, 1.0], &[1.0, -1.0], &[-1.0, -1.0]]);
        let zero = barlow_twins(&z, &z, 1.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(zero.abs() < 1e-4, "{zero}");
    }

    #[test]
    fn info_nce_golden() {
        let q = l2_normalize(&t(&[&[1.0, 2.0, 0.0], &[0.0, 1.0, -1.0]])).unwrap();
        let k = l2_normalize(&t(&[&[0.0, 1.0, 1.0], &[1.0, 1.0, 0.0]])).unwrap();
        let keys = l2_normalize(&t(&[
            &[1.0, 0.0, 0.0],
            &[0.0, 0.0, 1.0],
            &[-1.0, 1.0, 1.0],
            &[0.5, -0.5, 0.0],
        ]))
        .unwrap();
        let loss = info_nce(&q, &k, &keys.t().unwrap(), 0.07, None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((loss - 0.0373212).abs() < 1e-6, "{loss}");
        // Masking a column for every query is removing it from the queue.
        let mask = t(&[&[0.0, -1e9, 0.0, 0.0], &[0.0, -1e9, 0.0, 0.0]]);
        let masked = info_nce(&q, &k, &keys.t().unwrap(), 0.07, Some(&mask))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let fewer = Tensor::cat(
            &[keys.narrow(0, 0, 1).unwrap(), keys.narrow(0, 2, 2).unwrap()],
            0,
        )
        .unwrap();
        let removed = info_nce(&q, &k, &fewer.t().unwrap(), 0.07, None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((masked - removed).abs() < 1e-6, "{masked} vs {removed}");
        assert!(masked < loss);
    }
}
