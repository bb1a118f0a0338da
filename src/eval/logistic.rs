//! The `logistic` protocol: multinomial logistic regression on train-standardised embeddings,
//! fitted to convergence by full-batch L-BFGS, with the L2 penalty chosen on the validation
//! split from a log grid. It is deterministic (zero initialisation, no sampling), so one fit
//! replaces the probe seeds, and it is what EVAR-style harnesses and `make_tasks.sh`'s own
//! floor use.
//!
//! L-BFGS is written here (two-loop recursion with a backtracking Armijo search, about 80
//! lines): the problem is smooth and strictly convex, and a crate (argmin + ndarray) would add
//! dozens of dependencies to the 2-core build for this one loop.

use rayon::prelude::*;

use super::probe::{ProbeSet, Standardizer};
use crate::error::{Error, Result};

/// The L2 penalties tried, strongest first (each fit starts from the previous solution).
pub const L2_GRID: [f64; 12] = [
    1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6,
];

/// Iteration limit of one fit.
const MAX_ITERATIONS: usize = 300;
/// Convergence: the gradient's largest entry.
const GRADIENT_TOLERANCE: f64 = 1e-5;
/// L-BFGS memory.
const HISTORY: usize = 10;

/// What the validation split chose and how it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticOutcome {
    /// The chosen L2 penalty (on the mean cross-entropy: `loss + l2/2 * |W|^2`).
    pub l2: f64,
    /// L-BFGS iterations of the chosen fit.
    pub iterations: usize,
    /// Accuracies at the chosen penalty.
    pub train_accuracy: f64,
    /// Validation accuracy (the selection criterion).
    pub valid_accuracy: f64,
    /// Test accuracy: the score.
    pub test_accuracy: f64,
}

/// Fits one model per penalty of [`L2_GRID`] on `train` and keeps the one with the best
/// validation accuracy (ties: the stronger penalty; then the lower validation loss).
pub fn logistic_probe(
    dim: usize,
    n_classes: usize,
    train: ProbeSet<'_>,
    valid: ProbeSet<'_>,
    test: ProbeSet<'_>,
) -> Result<LogisticOutcome> {
    super::probe::check_sets(
        dim,
        n_classes,
        [("train", train), ("valid", valid), ("test", test)],
    )?;
    let scaler = Standardizer::fit(train.x, dim);
    let [xtr, xva, xte] = [train.x, valid.x, test.x].map(|x| scaler.apply(x));
    let problem = |x, y| Objective {
        x,
        y,
        dim,
        classes: n_classes,
    };
    let (ptr, pva, pte) = (
        problem(&xtr, train.y),
        problem(&xva, valid.y),
        problem(&xte, test.y),
    );
    let mut w = vec![0f64; n_classes * (dim + 1)];
    let mut best: Option<(f64, f64, LogisticOutcome)> = None;
    for &l2 in &L2_GRID {
        let iterations = lbfgs(&ptr, l2, &mut w)?;
        let valid_accuracy = pva.accuracy(&w);
        let valid_loss = pva.loss_and_gradient(&w, 0.0, None);
        let better = best.as_ref().is_none_or(|(acc, loss, _)| {
            valid_accuracy > *acc || (valid_accuracy == *acc && valid_loss < *loss - 1e-12)
        });
        if better {
            best = Some((
                valid_accuracy,
                valid_loss,
                LogisticOutcome {
                    l2,
                    iterations,
                    train_accuracy: ptr.accuracy(&w),
                    valid_accuracy,
                    test_accuracy: pte.accuracy(&w),
                },
            ));
        }
    }
    Ok(best.expect("a non-empty grid").2)
}

/// Standardised rows, labels and sizes; parameters are `[W (classes x dim), b (classes)]`.
struct Objective<'a> {
    x: &'a [f32],
    y: &'a [usize],
    dim: usize,
    classes: usize,
}

/// Classes whose sums [`Objective::logits`] keeps in registers at once.
const LANES: usize = 8;
/// Rows whose gradient terms are added to each weight in one pass over the gradient.
const ROW_BLOCK: usize = 4;

/// The weights of `[W (classes x dim), b]` laid out for [`Objective::logits`]: `W` transposed
/// (`dim x padded`, the classes padded with zeros to a multiple of [`LANES`]), so that one
/// pass over a row's values feeds every class's sum.
struct Transposed<'a> {
    w: Vec<f64>,
    padded: usize,
    bias: &'a [f64],
}

impl<'a> Transposed<'a> {
    fn of(w: &'a [f64], dim: usize, classes: usize) -> Self {
        let padded = classes.div_ceil(LANES) * LANES;
        let mut t = vec![0f64; dim * padded];
        for c in 0..classes {
            for j in 0..dim {
                t[j * padded + c] = w[c * dim + j];
            }
        }
        Self {
            w: t,
            padded,
            bias: &w[classes * dim..],
        }
    }
}

impl Objective<'_> {
    /// `out[c] = b[c] + sum_j W[c, j] row[j]`. Every class's sum adds the same products in the
    /// same order as a dot product per class would (from -0.0, as `Iterator::sum` does),
    /// so the values are bit-identical to it; [`LANES`] classes side by side stay in vector
    /// registers, where a per-class sum is one serial chain of additions.
    #[inline(always)]
    fn logits(&self, w: &Transposed<'_>, row: &[f64], out: &mut [f64]) {
        for (block, outs) in out.chunks_mut(LANES).enumerate() {
            let mut acc = [-0.0f64; LANES];
            let offset = block * LANES;
            for (&v, column) in row.iter().zip(w.w.chunks_exact(w.padded)) {
                let column: &[f64; LANES] = column[offset..offset + LANES]
                    .try_into()
                    .expect("padded to whole lanes");
                for (a, &c) in acc.iter_mut().zip(column) {
                    *a += c * v;
                }
            }
            outs.copy_from_slice(&acc[..outs.len()]);
        }
        for (o, &b) in out.iter_mut().zip(w.bias) {
            *o += b; // IEEE addition commutes: the same bits as `b + sum`
        }
    }

    /// The summed loss of `chunk`'s rows and, when `g` is not empty, their summed gradient
    /// added to `g`: each weight gets its rows' terms one after another in row order, as a
    /// row-by-row loop adds them, [`ROW_BLOCK`] rows per pass over `g`.
    #[inline(always)]
    fn chunk_loss_and_gradient(&self, wt: &Transposed<'_>, chunk: &[usize], g: &mut [f64]) -> f64 {
        let (dim, classes) = (self.dim, self.classes);
        let mut p = vec![0f64; ROW_BLOCK * classes];
        // The block's rows widened to f64 once (exact), for the logits and every class's terms.
        let mut wide = vec![0f64; ROW_BLOCK * dim];
        let mut loss = 0.0;
        for rows in chunk.chunks(ROW_BLOCK) {
            for (&i, row) in rows.iter().zip(wide.chunks_exact_mut(dim)) {
                for (w, &v) in row.iter_mut().zip(&self.x[i * dim..(i + 1) * dim]) {
                    *w = f64::from(v);
                }
            }
            for ((&i, p), row) in rows
                .iter()
                .zip(p.chunks_exact_mut(classes))
                .zip(wide.chunks_exact(dim))
            {
                self.logits(wt, row, p);
                let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = p.iter().map(|v| (v - max).exp()).sum();
                loss += max + sum.ln() - p[self.y[i]];
                if !g.is_empty() {
                    for v in p.iter_mut() {
                        *v = (*v - max).exp() / sum;
                    }
                    p[self.y[i]] -= 1.0;
                }
            }
            if g.is_empty() {
                continue;
            }
            let bias = classes * dim;
            let x: Vec<&[f64]> = wide.chunks_exact(dim).take(rows.len()).collect();
            for c in 0..classes {
                let pc: Vec<f64> = (0..rows.len()).map(|b| p[b * classes + c]).collect();
                for &pbc in &pc {
                    g[bias + c] += pbc;
                }
                let gc = &mut g[c * dim..(c + 1) * dim];
                if let ([x0, x1, x2, x3], &[p0, p1, p2, p3]) = (&x[..], &pc[..]) {
                    let rows = x0.iter().zip(*x1).zip(*x2).zip(*x3);
                    for (gw, (((&a, &b), &c), &d)) in gc.iter_mut().zip(rows) {
                        let mut sum = *gw;
                        sum += p0 * a;
                        sum += p1 * b;
                        sum += p2 * c;
                        sum += p3 * d;
                        *gw = sum;
                    }
                } else {
                    for (&pbc, xb) in pc.iter().zip(&x) {
                        for (gw, &v) in gc.iter_mut().zip(*xb) {
                            *gw += pbc * v;
                        }
                    }
                }
            }
        }
        loss
    }

    /// [`Objective::chunk_loss_and_gradient`] compiled for the widest vector unit the processor
    /// has (AVX-512, AVX2, or the build's baseline). The arithmetic is the same in each (Rust
    /// never fuses a multiply and an add on its own), so the results are bit-identical; only
    /// the lane width differs.
    fn chunk_widest(&self, wt: &Transposed<'_>, chunk: &[usize], g: &mut [f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F (checked just above).
                return unsafe { self.chunk_avx512(wt, chunk, g) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                return unsafe { self.chunk_avx2(wt, chunk, g) };
            }
        }
        self.chunk_loss_and_gradient(wt, chunk, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn chunk_avx512(&self, wt: &Transposed<'_>, chunk: &[usize], g: &mut [f64]) -> f64 {
        self.chunk_loss_and_gradient(wt, chunk, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn chunk_avx2(&self, wt: &Transposed<'_>, chunk: &[usize], g: &mut [f64]) -> f64 {
        self.chunk_loss_and_gradient(wt, chunk, g)
    }

    /// Mean cross-entropy plus `l2/2 |W|^2` (bias not penalised); fills `grad` when given.
    fn loss_and_gradient(&self, w: &[f64], l2: f64, grad: Option<&mut [f64]>) -> f64 {
        let n = self.y.len();
        let rows: Vec<usize> = (0..n).collect();
        let gradient_len = if grad.is_some() { w.len() } else { 0 };
        let wt = Transposed::of(w, self.dim, self.classes);
        let per_chunk = |chunk: &[usize]| {
            let mut g = vec![0f64; gradient_len];
            let loss = self.chunk_widest(&wt, chunk, &mut g);
            (loss, g)
        };
        let chunk = n.div_ceil(rayon::current_num_threads().max(1) * 4).max(16);
        let parts: Vec<(f64, Vec<f64>)> = rows.par_chunks(chunk).map(per_chunk).collect();
        let penalised = self.classes * self.dim;
        let norm: f64 = w[..penalised].iter().map(|v| v * v).sum();
        let loss = parts.iter().map(|(l, _)| l).sum::<f64>() / n as f64 + 0.5 * l2 * norm;
        if let Some(grad) = grad {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (_, g) in &parts {
                for (a, b) in grad.iter_mut().zip(g) {
                    *a += b;
                }
            }
            for (k, g) in grad.iter_mut().enumerate() {
                *g /= n as f64;
                if k < penalised {
                    *g += l2 * w[k];
                }
            }
        }
        loss
    }

    fn accuracy(&self, w: &[f64]) -> f64 {
        let wt = Transposed::of(w, self.dim, self.classes);
        let (mut p, mut wide) = (vec![0f64; self.classes], vec![0f64; self.dim]);
        let correct = self
            .x
            .chunks_exact(self.dim)
            .zip(self.y)
            .filter(|(row, &label)| {
                for (w, &v) in wide.iter_mut().zip(*row) {
                    *w = f64::from(v);
                }
                self.logits(&wt, &wide, &mut p);
                argmax(&p) == label
            })
            .count();
        correct as f64 / self.y.len() as f64
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises the penalised loss from `w` in place; returns the iterations used. Compiled for
/// the widest vector unit the processor has, as [`Objective::chunk_loss_and_gradient`]: the
/// element-wise updates widen, the dot products keep their order, the bits stay the same.
fn lbfgs(problem: &Objective<'_>, l2: f64, w: &mut [f64]) -> Result<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(problem: &Objective<'_>, l2: f64, w: &mut [f64]) -> Result<usize> {
            lbfgs_steps(problem, l2, w)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(problem: &Objective<'_>, l2: f64, w: &mut [f64]) -> Result<usize> {
            lbfgs_steps(problem, l2, w)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above).
            return unsafe { avx512(problem, l2, w) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above).
            return unsafe { avx2(problem, l2, w) };
        }
    }
    lbfgs_steps(problem, l2, w)
}

/// The L-BFGS iterations of [`lbfgs`].
#[inline(always)]
fn lbfgs_steps(problem: &Objective<'_>, l2: f64, w: &mut [f64]) -> Result<usize> {
    let n = w.len();
    let mut grad = vec![0f64; n];
    let mut loss = problem.loss_and_gradient(w, l2, Some(&mut grad));
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    let (mut trial, mut trial_grad) = (vec![0f64; n], vec![0f64; n]);
    for iteration in 0..MAX_ITERATIONS {
        if grad.iter().all(|g| g.abs() < GRADIENT_TOLERANCE) {
            return Ok(iteration);
        }
        // Two-loop recursion: direction = -H grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        if let Some((s, y, _)) = history.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            history.clear();
            direction = grad.iter().map(|g| -g).collect();
            slope = dot(&grad, &direction);
        }
        let mut step = if history.is_empty() {
            (1.0 / grad.iter().map(|g| g.abs()).fold(0.0, f64::max)).min(1.0)
        } else {
            1.0
        };
        let new_loss = loop {
            trial
                .iter_mut()
                .zip(w.iter().zip(&direction))
                .for_each(|(t, (wi, d))| *t = wi + step * d);
            let l = problem.loss_and_gradient(&trial, l2, Some(&mut trial_grad));
            if l <= loss + 1e-4 * step * slope {
                break l;
            }
            step *= 0.5;
            if step < 1e-20 {
                return Ok(iteration);
            }
        };
        if !new_loss.is_finite() {
            return Err(Error::Invalid(format!(
                "logistic probe: the loss became {new_loss} at L2 {l2}; the embeddings hold non-finite values"
            )));
        }
        let s: Vec<f64> = trial.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = trial_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        w.copy_from_slice(&trial);
        grad.copy_from_slice(&trial_grad);
        let converged = (loss - new_loss).abs() <= 1e-10 * loss.abs().max(1.0);
        loss = new_loss;
        if converged {
            return Ok(iteration + 1);
        }
    }
    Ok(MAX_ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Three Gaussian classes in 6 dimensions, separated along the first three.
    fn blobs(n_per: usize, seed: u64, spread: f32) -> (Vec<f32>, Vec<usize>) {
        let mut rng = crate::rng::stream(seed, "logistic/blobs");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for c in 0..3 {
            for _ in 0..n_per {
                for d in 0..6 {
                    let centre = if d == c { 2.0 } else { 0.0 };
                    x.push(centre + spread * rng.random_range(-1.0f32..1.0));
                }
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn learns_separable_classes_deterministically() {
        let (xtr, ytr) = blobs(50, 1, 1.0);
        let (xva, yva) = blobs(20, 2, 1.0);
        let (xte, yte) = blobs(20, 3, 1.0);
        let set = |x: &'static [f32], y: &'static [usize]| ProbeSet { x, y };
        let (xtr, ytr, xva, yva, xte, yte) = (
            xtr.leak(),
            ytr.leak(),
            xva.leak(),
            yva.leak(),
            xte.leak(),
            yte.leak(),
        );
        let run = || logistic_probe(6, 3, set(xtr, ytr), set(xva, yva), set(xte, yte)).unwrap();
        let a = run();
        assert!(a.test_accuracy > 0.9, "{a:?}");
        assert!(L2_GRID.contains(&a.l2));
        assert_eq!(a, run());
    }

    #[test]
    fn lbfgs_reaches_the_optimum_of_a_penalised_fit() {
        // At the optimum the gradient vanishes; check it against a finite difference too.
        let (x, y) = blobs(30, 4, 2.0);
        let p = Objective {
            x: &x,
            y: &y,
            dim: 6,
            classes: 3,
        };
        let mut w = vec![0f64; 3 * 7];
        lbfgs(&p, 0.1, &mut w).unwrap();
        let mut g = vec![0f64; w.len()];
        let f = p.loss_and_gradient(&w, 0.1, Some(&mut g));
        assert!(g.iter().all(|v| v.abs() < 1e-4), "{g:?}");
        for k in [0, 5, 19] {
            let mut moved = w.clone();
            moved[k] += 1e-3;
            assert!(p.loss_and_gradient(&moved, 0.1, None) >= f - 1e-9);
        }
        // Finite-difference check of the gradient at a non-optimal point.
        let w0: Vec<f64> = (0..w.len())
            .map(|i| (i as f64 * 0.37).sin() * 0.1)
            .collect();
        let mut g0 = vec![0f64; w.len()];
        p.loss_and_gradient(&w0, 0.1, Some(&mut g0));
        for k in [1, 8, 20] {
            let (mut up, mut down) = (w0.clone(), w0.clone());
            up[k] += 1e-5;
            down[k] -= 1e-5;
            let fd = (p.loss_and_gradient(&up, 0.1, None) - p.loss_and_gradient(&down, 0.1, None))
                / 2e-5;
            assert!((fd - g0[k]).abs() < 1e-6, "{k}: {fd} vs {}", g0[k]);
        }
    }

    #[test]
    fn logits_equal_a_dot_product_per_class_to_the_bit() {
        let (x, y) = blobs(10, 5, 3.0);
        let p = Objective {
            x: &x,
            y: &y,
            dim: 6,
            classes: 3,
        };
        let w: Vec<f64> = (0..3 * 7).map(|i| (i as f64 * 0.71).cos() / 3.0).collect();
        let wt = Transposed::of(&w, 6, 3);
        let mut out = [0f64; 3];
        for row in x.chunks_exact(6) {
            let wide: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            p.logits(&wt, &wide, &mut out);
            for (c, &o) in out.iter().enumerate() {
                let dot: f64 = w[c * 6..(c + 1) * 6]
                    .iter()
                    .zip(row)
                    .map(|(a, &v)| a * f64::from(v))
                    .sum();
                assert_eq!(o.to_bits(), (w[18 + c] + dot).to_bits());
            }
        }
    }

    /// The loss and gradient of one chunk as a row-by-row loop with a dot product per class
    /// computes them (the code before the vectorised one).
    fn reference_chunk(p: &Objective<'_>, w: &[f64], rows: &[usize], g: &mut [f64]) -> f64 {
        let (dim, classes) = (p.dim, p.classes);
        let mut loss = 0.0;
        let mut q = vec![0f64; classes];
        for &i in rows {
            let row = &p.x[i * dim..(i + 1) * dim];
            for (c, o) in q.iter_mut().enumerate() {
                let dot: f64 = w[c * dim..(c + 1) * dim]
                    .iter()
                    .zip(row)
                    .map(|(a, &v)| a * f64::from(v))
                    .sum();
                *o = w[classes * dim + c] + dot;
            }
            let max = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = q.iter().map(|v| (v - max).exp()).sum();
            loss += max + sum.ln() - q[p.y[i]];
            for v in q.iter_mut() {
                *v = (*v - max).exp() / sum;
            }
            q[p.y[i]] -= 1.0;
            for (c, &qc) in q.iter().enumerate() {
                g[classes * dim + c] += qc;
                for (gw, &v) in g[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                    *gw += qc * f64::from(v);
                }
            }
        }
        loss
    }

    #[test]
    fn the_vectorised_loss_and_gradient_equal_the_row_by_row_loop_to_the_bit() {
        // 11 classes (one padded lane block and a partial one), 7 rows (a partial row block).
        let (dim, classes, n) = (13, 11, 7);
        let x: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let y: Vec<usize> = (0..n).map(|i| i * 5 % classes).collect();
        let p = Objective {
            x: &x,
            y: &y,
            dim,
            classes,
        };
        let w: Vec<f64> = (0..classes * (dim + 1))
            .map(|i| (i as f64 * 0.29).sin() / 4.0)
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let mut expected = vec![0f64; w.len()];
        let expected_loss = reference_chunk(&p, &w, &rows, &mut expected);
        let wt = Transposed::of(&w, dim, classes);
        let mut g = vec![0f64; w.len()];
        let loss = p.chunk_widest(&wt, &rows, &mut g);
        assert_eq!(loss.to_bits(), expected_loss.to_bits());
        assert!(g
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let mut none: [f64; 0] = [];
        let only_loss = p.chunk_loss_and_gradient(&wt, &rows, &mut none);
        assert_eq!(
            only_loss.to_bits(),
            expected_loss.to_bits(),
            "the baseline build too"
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let set = ProbeSet {
            x: &[0.0; 3],
            y: &[0],
        };
        assert!(logistic_probe(2, 2, set, set, set).is_err());
    }
}
