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
    let problem = |x, y| Problem {
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
struct Problem<'a> {
    x: &'a [f32],
    y: &'a [usize],
    dim: usize,
    classes: usize,
}

impl Problem<'_> {
    fn logits(&self, w: &[f64], row: &[f32], out: &mut [f64]) {
        let bias = &w[self.classes * self.dim..];
        for (c, o) in out.iter_mut().enumerate() {
            let weights = &w[c * self.dim..(c + 1) * self.dim];
            *o = bias[c]
                + weights
                    .iter()
                    .zip(row)
                    .map(|(a, &v)| a * f64::from(v))
                    .sum::<f64>();
        }
    }

    /// Mean cross-entropy plus `l2/2 |W|^2` (bias not penalised); fills `grad` when given.
    fn loss_and_gradient(&self, w: &[f64], l2: f64, grad: Option<&mut [f64]>) -> f64 {
        let n = self.y.len();
        let rows: Vec<usize> = (0..n).collect();
        let gradient_len = if grad.is_some() { w.len() } else { 0 };
        let per_chunk = |chunk: &[usize]| {
            let mut g = vec![0f64; gradient_len];
            let mut p = vec![0f64; self.classes];
            let mut loss = 0.0;
            for &i in chunk {
                let row = &self.x[i * self.dim..(i + 1) * self.dim];
                self.logits(w, row, &mut p);
                let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = p.iter().map(|v| (v - max).exp()).sum();
                loss += max + sum.ln() - p[self.y[i]];
                if g.is_empty() {
                    continue;
                }
                for v in p.iter_mut() {
                    *v = (*v - max).exp() / sum;
                }
                p[self.y[i]] -= 1.0;
                let bias = self.classes * self.dim;
                for (c, &pc) in p.iter().enumerate() {
                    g[bias + c] += pc;
                    for (gw, &v) in g[c * self.dim..(c + 1) * self.dim].iter_mut().zip(row) {
                        *gw += pc * f64::from(v);
                    }
                }
            }
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
        let mut p = vec![0f64; self.classes];
        let correct = self
            .x
            .chunks_exact(self.dim)
            .zip(self.y)
            .filter(|(row, &label)| {
                self.logits(w, row, &mut p);
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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises the penalised loss from `w` in place; returns the iterations used.
fn lbfgs(problem: &Problem<'_>, l2: f64, w: &mut [f64]) -> Result<usize> {
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
        let p = Problem {
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
    fn bad_shapes_are_errors() {
        let set = ProbeSet {
            x: &[0.0; 3],
            y: &[0],
        };
        assert!(logistic_probe(2, 2, set, set, set).is_err());
    }
}
