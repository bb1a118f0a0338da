//! The linear probe of docs/method.md §9.3: inputs standardised with train-split statistics, one linear
//! layer with softmax cross-entropy, Adam (lr 1e-3, batch 32), and the epoch chosen on the
//! validation split. The test accuracy at that epoch is the score; the maximum test accuracy
//! over epochs is also returned, labelled as LAPE's protocol, for comparison only.
//!
//! The gradient is written in plain Rust (a probe on a few thousand fixed vectors is a few
//! million multiply-adds per epoch, and needs no autograd); the update is the crate's one
//! optimiser, [`crate::optim::Optimizer`], as in fine-tuning and pre-training.

use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::problems::Problem;

/// Probe hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Training epochs (docs/method.md §9.1: 30).
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Number of probe seeds; scores are reported as mean and std over them.
    pub seeds: usize,
    /// Protocols scored, each a row set of the results table.
    pub protocols: Vec<Protocol>,
    /// Fine-tuning epochs (docs/method.md §9.2: 100).
    pub finetune_epochs: usize,
    /// Label budgets of `logistic_few_shot` (required by it, and only by it). Left out of the
    /// resolved spec, and so of its hash, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot: Option<FewShotConfig>,
}

/// An evaluation protocol (docs/method.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", value(rename_all = "snake_case"))]
pub enum Protocol {
    /// Linear probe on frozen embeddings, epoch chosen on the validation split (docs/method.md §9.3).
    Linear,
    /// The same probe scored as LAPE's Protocol A does: the maximum test accuracy over
    /// epochs. It selects on test; it is here only to compare with published LAPE numbers.
    LinearLape,
    /// Multinomial logistic regression fitted to convergence, L2 penalty chosen on the
    /// validation split (deterministic: one fit, no probe seeds). See [`super::logistic_probe`].
    Logistic,
    /// The `logistic` probe on a label budget: `probe.few_shot.per_class` labelled clips per
    /// class in train and in valid, over seeded draws; rows `logistic_{k}_shot`.
    LogisticFewShot,
    /// Fine-tuning the whole encoder with a linear head (docs/method.md §9.2 hyperparameters), epoch
    /// chosen on the validation split.
    Finetune,
}

impl Protocol {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Linear => "linear",
            Protocol::LinearLape => "linear_lape",
            Protocol::Logistic => "logistic",
            Protocol::LogisticFewShot => "logistic_few_shot",
            Protocol::Finetune => "finetune",
        }
    }

    /// Whether a score row whose protocol column is `row_protocol` is one of this protocol's
    /// rows (the few-shot protocol's rows carry their budget in the name).
    pub fn owns_row(self, row_protocol: &str) -> bool {
        match self {
            Protocol::LogisticFewShot => FewShotConfig::names(row_protocol),
            other => other.name() == row_protocol,
        }
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            lr: 1e-3,
            batch_size: 32,
            seeds: 3,
            protocols: vec![Protocol::Linear, Protocol::LinearLape],
            finetune_epochs: 100,
            few_shot: None,
        }
    }
}

impl ProbeConfig {
    /// Bad values, with keys relative to `probe`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Problem::zero_counts(&[
            ("epochs", self.epochs as u64, "docs/method.md §9.3 uses 30"),
            (
                "batch_size",
                self.batch_size as u64,
                "docs/method.md §9.3 uses 32",
            ),
            ("seeds", self.seeds as u64, "report at least 3 seeds"),
            (
                "finetune_epochs",
                self.finetune_epochs as u64,
                "docs/method.md §9.2 uses 100",
            ),
        ]);
        if self.protocols.is_empty() {
            p.push(Problem::new(
                "protocols",
                "no protocol to score",
                "use [linear, linear_lape]",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            p.push(Problem::new(
                "lr",
                format!("{} is not a positive learning rate", self.lr),
                "docs/method.md §9.3 uses 0.001",
            ));
        }
        let few_shot_listed = self.protocols.contains(&Protocol::LogisticFewShot);
        match &self.few_shot {
            Some(f) => p.extend(f.problems().into_iter().map(|q| q.under("few_shot"))),
            None if few_shot_listed => p.push(Problem::new(
                "few_shot",
                "`logistic_few_shot` is in probe.protocols but its label budgets are not set",
                "add `few_shot: {per_class: [5, 20], draws: 10}` under probe",
            )),
            None => {}
        }
        if self.few_shot.is_some() && !few_shot_listed {
            p.push(Problem::new(
                "few_shot",
                "label budgets are set but `logistic_few_shot` is not in probe.protocols",
                "add logistic_few_shot to probe.protocols, or drop probe.few_shot",
            ));
        }
        p
    }
}

/// Label budgets of the `logistic_few_shot` protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShotConfig {
    /// Labelled clips per class, one budget each (a class with fewer keeps all of its own).
    pub per_class: Vec<usize>,
    /// Independent draws per budget; scores are the mean over draws.
    pub draws: usize,
}

impl FewShotConfig {
    /// Bad values, with keys relative to `probe.few_shot`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Problem::zero_counts(&[("draws", self.draws as u64, "e.g. 10")]);
        let mut distinct = self.per_class.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if self.per_class.is_empty() || self.per_class.contains(&0) {
            p.push(Problem::new(
                "per_class",
                format!(
                    "{:?} is not a list of budgets of at least 1",
                    self.per_class
                ),
                "e.g. [5, 20] labelled clips per class",
            ));
        } else if distinct.len() != self.per_class.len() {
            p.push(Problem::new(
                "per_class",
                format!("{:?} names a budget twice", self.per_class),
                "list each budget once, e.g. [5, 20]",
            ));
        }
        p
    }

    /// The row protocol name of budget `k`.
    pub fn protocol_name(k: usize) -> String {
        format!("logistic_{k}_shot")
    }

    /// Whether `protocol` is the name of one of this protocol's budgets.
    pub fn names(protocol: &str) -> bool {
        protocol
            .strip_prefix("logistic_")
            .and_then(|rest| rest.strip_suffix("_shot"))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Feature vectors (`n * dim`, row-major) and their labels.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSet<'a> {
    /// Features, one row per example.
    pub x: &'a [f32],
    /// Class indices.
    pub y: &'a [usize],
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// Probe seed.
    pub seed: u64,
    /// Epoch (1-based) with the best validation accuracy (the earliest on ties).
    pub best_epoch: usize,
    /// Training accuracy at that epoch.
    pub train_accuracy: f64,
    /// Validation accuracy at that epoch.
    pub valid_accuracy: f64,
    /// Test accuracy at that epoch: the reported score.
    pub test_accuracy: f64,
    /// Maximum test accuracy over epochs (LAPE's protocol; selects on test, do not report as the score).
    pub max_test_accuracy: f64,
    /// The epoch (1-based, earliest) of that maximum.
    pub max_test_epoch: usize,
}

/// Trains and evaluates one linear probe.
pub fn linear_probe(
    cfg: &ProbeConfig,
    dim: usize,
    n_classes: usize,
    train: ProbeSet<'_>,
    valid: ProbeSet<'_>,
    test: ProbeSet<'_>,
    seed: u64,
) -> Result<ProbeOutcome> {
    check_sets(
        dim,
        n_classes,
        [("train", train), ("valid", valid), ("test", test)],
    )?;
    let scaler = Standardizer::fit(train.x, dim);
    let (xtr, xva, xte) = (
        scaler.apply(train.x),
        scaler.apply(valid.x),
        scaler.apply(test.x),
    );
    let mut rng = crate::rng::stream(seed, "probe");
    let mut model = ProbeWeights::new(dim, n_classes, &mut rng);
    let n_params = model.params.len();
    let weights = Var::from_vec(model.params.clone(), n_params, &Device::Cpu)
        .map_err(Error::tensor("linear probe parameters"))?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(cfg.lr), 1);
    let mut order: Vec<usize> = (0..train.y.len()).collect();
    let mut selection = EpochSelection::new(seed);
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(cfg.batch_size) {
            let grad = model.gradient(&xtr, train.y, batch);
            let update = || -> candle_core::Result<Vec<f32>> {
                let grad = Tensor::from_vec(grad, n_params, &Device::Cpu)?;
                optimizer.step_with_gradients(std::slice::from_ref(&weights), &[grad], cfg.lr)?;
                weights.as_tensor().to_vec1()
            };
            model.params = update().map_err(Error::tensor("linear probe update"))?;
        }
        selection.record(
            epoch,
            model.accuracy(&xtr, train.y),
            model.accuracy(&xva, valid.y),
            model.accuracy(&xte, test.y),
        );
    }
    Ok(selection.finish().expect("at least one epoch"))
}

/// Errors for a split whose values do not fit `dim` or whose labels exceed `n_classes`.
pub(crate) fn check_sets(
    dim: usize,
    n_classes: usize,
    sets: [(&str, ProbeSet<'_>); 3],
) -> Result<()> {
    for (name, set) in sets {
        if set.y.is_empty() || set.x.len() != set.y.len() * dim {
            return Err(Error::Invalid(format!(
                "probe: {name} split has {} labels and {} values for dim {dim}",
                set.y.len(),
                set.x.len()
            )));
        }
        if let Some(bad) = set.y.iter().find(|&&c| c >= n_classes) {
            return Err(Error::Invalid(format!(
                "probe: label {bad} in {name} is out of range for {n_classes} classes"
            )));
        }
    }
    Ok(())
}

/// Model selection over epochs: the epoch with the best validation accuracy (the earliest on
/// ties) and, for LAPE's protocol, the best test accuracy over epochs.
pub(crate) struct EpochSelection {
    seed: u64,
    best: Option<ProbeOutcome>,
    max_test: (f64, usize),
}

impl EpochSelection {
    /// No epoch seen yet.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            best: None,
            max_test: (0.0, 0),
        }
    }

    /// Records the accuracies after `epoch` (1-based).
    pub(crate) fn record(&mut self, epoch: usize, train: f64, valid: f64, test: f64) {
        if test > self.max_test.0 {
            self.max_test = (test, epoch);
        }
        if self.best.as_ref().is_none_or(|b| valid > b.valid_accuracy) {
            self.best = Some(ProbeOutcome {
                seed: self.seed,
                best_epoch: epoch,
                train_accuracy: train,
                valid_accuracy: valid,
                test_accuracy: test,
                max_test_accuracy: 0.0,
                max_test_epoch: 0,
            });
        }
    }

    /// The selected epoch's outcome; `None` if no epoch was recorded.
    pub(crate) fn finish(self) -> Option<ProbeOutcome> {
        let mut best = self.best?;
        (best.max_test_accuracy, best.max_test_epoch) = self.max_test;
        Some(best)
    }
}

/// Per-dimension mean and std of the training split, applied to every split.
pub(crate) struct Standardizer {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Standardizer {
    pub(crate) fn fit(x: &[f32], dim: usize) -> Self {
        let n = (x.len() / dim) as f64;
        let mut mean = vec![0f64; dim];
        let mut sq = vec![0f64; dim];
        for row in x.chunks_exact(dim) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let inv_std = mean
            .iter()
            .zip(&sq)
            .map(|(m, s)| {
                let var = (s / n - (m / n).powi(2)).max(0.0);
                if var > 1e-12 {
                    (1.0 / var.sqrt()) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            mean: mean.iter().map(|m| (m / n) as f32).collect(),
            inv_std,
        }
    }

    pub(crate) fn apply(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        x.chunks_exact(dim)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.inv_std)
                    .map(|((v, m), s)| (v - m) * s)
            })
            .collect()
    }
}

/// `logits = W x + b`, parameters packed as `[W (classes x dim), b (classes)]`.
struct ProbeWeights {
    dim: usize,
    classes: usize,
    params: Vec<f32>,
}

impl ProbeWeights {
    /// PyTorch's default `nn.Linear` init: uniform in +-1/sqrt(dim), from our seeded stream.
    fn new(dim: usize, classes: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (dim as f32).sqrt();
        let params = (0..classes * (dim + 1))
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self {
            dim,
            classes,
            params,
        }
    }

    fn logits(&self, x: &[f32], out: &mut [f32]) {
        let (w, b) = self.params.split_at(self.classes * self.dim);
        for (c, o) in out.iter_mut().enumerate() {
            *o = b[c]
                + w[c * self.dim..(c + 1) * self.dim]
                    .iter()
                    .zip(x)
                    .map(|(a, v)| a * v)
                    .sum::<f32>();
        }
    }

    /// Mean cross-entropy gradient over the rows in `batch`.
    fn gradient(&self, x: &[f32], y: &[usize], batch: &[usize]) -> Vec<f32> {
        let mut grad = vec![0f32; self.params.len()];
        let mut p = vec![0f32; self.classes];
        let scale = 1.0 / batch.len() as f32;
        let bias_offset = self.classes * self.dim;
        for &i in batch {
            let row = &x[i * self.dim..(i + 1) * self.dim];
            self.logits(row, &mut p);
            softmax(&mut p);
            p[y[i]] -= 1.0;
            for (c, &g) in p.iter().enumerate() {
                let g = g * scale;
                grad[bias_offset + c] += g;
                for (gw, v) in grad[c * self.dim..(c + 1) * self.dim].iter_mut().zip(row) {
                    *gw += g * v;
                }
            }
        }
        grad
    }

    fn accuracy(&self, x: &[f32], y: &[usize]) -> f64 {
        let mut logits = vec![0f32; self.classes];
        let correct = x
            .chunks_exact(self.dim)
            .zip(y)
            .filter(|(row, &label)| {
                self.logits(row, &mut logits);
                argmax(&logits) == label
            })
            .count();
        correct as f64 / y.len() as f64
    }
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `logistic_few_shot` and `probe.few_shot` come together: either alone is an error that
    /// names `few_shot`; together, with good budgets, there is none.
    #[test]
    fn the_few_shot_protocol_and_its_budgets_come_together() {
        let budgets = FewShotConfig {
            per_class: vec![5, 20],
            draws: 10,
        };
        let keys = |protocols: Vec<Protocol>, few_shot: Option<FewShotConfig>| {
            ProbeConfig {
                protocols,
                few_shot,
                ..ProbeConfig::default()
            }
            .problems()
            .into_iter()
            .map(|p| p.key)
            .collect::<Vec<_>>()
        };
        assert_eq!(keys(vec![Protocol::LogisticFewShot], None), ["few_shot"]);
        assert_eq!(
            keys(vec![Protocol::Logistic], Some(budgets.clone())),
            ["few_shot"]
        );
        assert!(keys(vec![Protocol::LogisticFewShot], Some(budgets)).is_empty());
        assert!(Protocol::LogisticFewShot.owns_row("logistic_20_shot"));
        assert!(!Protocol::LogisticFewShot.owns_row("logistic"));
        assert!(Protocol::Logistic.owns_row("logistic"));
    }

    #[test]
    fn budget_names_round_trip_and_nothing_else_matches() {
        assert_eq!(FewShotConfig::protocol_name(5), "logistic_5_shot");
        assert!(FewShotConfig::names("logistic_5_shot"));
        assert!(FewShotConfig::names("logistic_120_shot"));
        for other in ["logistic", "logistic__shot", "logistic_x_shot", "linear"] {
            assert!(!FewShotConfig::names(other), "{other}");
        }
    }

    #[test]
    fn bad_budgets_name_their_key() {
        let bad = FewShotConfig {
            per_class: vec![5, 0],
            draws: 0,
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["draws", "per_class"]);
        let twice = FewShotConfig {
            per_class: vec![5, 20, 5],
            draws: 10,
        };
        let problems = twice.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("twice"),
            "{}",
            problems[0].message
        );
    }

    fn blobs(n_per: usize, seed: u64, shift: f32) -> (Vec<f32>, Vec<usize>) {
        let mut rng = crate::rng::stream(seed, "blobs");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for c in 0..3 {
            for _ in 0..n_per {
                for d in 0..4 {
                    let centre = if d == c { 3.0 + shift } else { 0.0 };
                    x.push(centre + rng.random_range(-1.0f32..1.0));
                }
                y.push(c);
            }
        }
        (x, y)
    }

    #[test]
    fn separable_classes_are_learned_and_seeds_reproduce() {
        let (xtr, ytr) = blobs(40, 1, 0.0);
        let (xva, yva) = blobs(10, 2, 0.0);
        let (xte, yte) = blobs(10, 3, 0.0);
        let cfg = ProbeConfig {
            epochs: 100,
            lr: 1e-2,
            ..ProbeConfig::default()
        };
        let run = |seed| {
            linear_probe(
                &cfg,
                4,
                3,
                ProbeSet { x: &xtr, y: &ytr },
                ProbeSet { x: &xva, y: &yva },
                ProbeSet { x: &xte, y: &yte },
                seed,
            )
            .unwrap()
        };
        let a = run(0);
        assert!(a.test_accuracy > 0.95, "{a:?}");
        assert!(a.max_test_accuracy >= a.test_accuracy);
        assert_eq!(a, run(0));
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let cfg = ProbeConfig::default();
        let set = ProbeSet {
            x: &[0.0; 3],
            y: &[0],
        };
        assert!(linear_probe(&cfg, 2, 2, set, set, set, 0).is_err());
    }
}
