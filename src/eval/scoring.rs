//! Probes turned into score rows: every seed of every requested protocol for one encoder on
//! one task.

use std::time::Instant;

use super::finetune::{finetune, FinetuneData};
use super::logistic::{logistic_probe, LogisticOutcome};
use super::probe::{linear_probe, ProbeConfig, ProbeOutcome, ProbeSet, Protocol};
use crate::error::Result;
use crate::model::Encoder;
use crate::progress::Progress;
use crate::results::ScoreRow;

/// Which run the scores belong to.
#[derive(Debug, Clone)]
pub struct ScoreContext {
    /// Run id.
    pub run: String,
    /// Spec name.
    pub spec: String,
    /// Short spec hash.
    pub spec_hash: String,
    /// Master seed (probe seed k uses `seed + k`).
    pub seed: u64,
}

/// One task's train, valid and test vectors for an encoder.
#[derive(Debug, Clone, Copy)]
pub struct ProbeInputs<'a> {
    /// Encoder or method name.
    pub encoder: &'a str,
    /// Task name.
    pub task: &'a str,
    /// Vector size.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// Train, valid, test.
    pub sets: [ProbeSet<'a>; 3],
}

/// Mean and population standard deviation.
pub fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The rows of one outcome: test/valid/train accuracy at the epoch chosen on valid under
/// `selected`, and (when `max_test` names a protocol) the maximum test accuracy over epochs.
fn outcome_rows(
    ctx: &ScoreContext,
    inputs: &ProbeInputs<'_>,
    selected: Option<Protocol>,
    max_test: Option<Protocol>,
    o: &ProbeOutcome,
    wall_s: f64,
) -> Vec<ScoreRow> {
    let [train, valid, test] = inputs.sets;
    let row = |protocol: Protocol, metric: &str, value, epoch: usize| ScoreRow {
        run: ctx.run.clone(),
        spec: ctx.spec.clone(),
        spec_hash: ctx.spec_hash.clone(),
        encoder: inputs.encoder.to_owned(),
        task: inputs.task.to_owned(),
        protocol: protocol.name().to_owned(),
        seed: o.seed,
        metric: metric.to_owned(),
        value,
        n_train: train.y.len() as u64,
        n_valid: valid.y.len() as u64,
        n_test: test.y.len() as u64,
        best_epoch: epoch as u64,
        wall_s,
        step: None,
    };
    let mut rows = Vec::new();
    if let Some(protocol) = selected {
        for (metric, value) in [
            ("test_accuracy", o.test_accuracy),
            ("valid_accuracy", o.valid_accuracy),
            ("train_accuracy", o.train_accuracy),
        ] {
            rows.push(row(protocol, metric, value, o.best_epoch));
        }
    }
    if let Some(protocol) = max_test {
        rows.push(row(
            protocol,
            "test_accuracy",
            o.max_test_accuracy,
            o.max_test_epoch,
        ));
    }
    rows
}

/// Fits `cfg.seeds` linear probes and returns the rows of the linear protocols in
/// `cfg.protocols`: for `linear`, test/valid/train accuracy at the epoch chosen on valid;
/// for `linear_lape`, the maximum test accuracy over epochs (one training serves both).
pub fn linear_scores(
    cfg: &ProbeConfig,
    ctx: &ScoreContext,
    inputs: ProbeInputs<'_>,
) -> Result<Vec<ScoreRow>> {
    let wants = |p| cfg.protocols.contains(&p).then_some(p);
    let (selected, max_test) = (wants(Protocol::Linear), wants(Protocol::LinearLape));
    if selected.is_none() && max_test.is_none() {
        return Ok(Vec::new());
    }
    let [train, valid, test] = inputs.sets;
    let mut rows = Vec::new();
    for k in 0..cfg.seeds as u64 {
        let started = Instant::now();
        let o = linear_probe(
            cfg,
            inputs.dim,
            inputs.classes,
            train,
            valid,
            test,
            ctx.seed.wrapping_add(k),
        )?;
        let wall = started.elapsed().as_secs_f64();
        rows.extend(outcome_rows(ctx, &inputs, selected, max_test, &o, wall));
    }
    Ok(rows)
}

/// The `logistic` protocol's rows (when `cfg.protocols` has it): test/valid/train accuracy
/// at the L2 penalty chosen on valid, and that penalty as the metric `l2_penalty`. The fit is
/// deterministic, so it is one row set under the master seed.
pub fn logistic_scores(
    cfg: &ProbeConfig,
    ctx: &ScoreContext,
    inputs: ProbeInputs<'_>,
) -> Result<Vec<ScoreRow>> {
    if !cfg.protocols.contains(&Protocol::Logistic) {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let [train, valid, test] = inputs.sets;
    let fit = logistic_probe(inputs.dim, inputs.classes, train, valid, test)?;
    tracing::debug!(
        "{} {}: logistic probe chose L2 {} ({} iterations)",
        inputs.encoder,
        inputs.task,
        fit.l2,
        fit.iterations
    );
    let wall = started.elapsed().as_secs_f64();
    Ok(logistic_rows(ctx, &inputs, ctx.seed, &fit, wall))
}

/// The `logistic` rows of one fit: test/valid/train accuracy and the chosen `l2_penalty`,
/// under probe seed `seed`.
pub(super) fn logistic_rows(
    ctx: &ScoreContext,
    inputs: &ProbeInputs<'_>,
    seed: u64,
    fit: &LogisticOutcome,
    wall_s: f64,
) -> Vec<ScoreRow> {
    let outcome = ProbeOutcome {
        seed,
        best_epoch: 0,
        train_accuracy: fit.train_accuracy,
        valid_accuracy: fit.valid_accuracy,
        test_accuracy: fit.test_accuracy,
        max_test_accuracy: 0.0,
        max_test_epoch: 0,
    };
    let mut rows = outcome_rows(
        ctx,
        inputs,
        Some(Protocol::Logistic),
        None,
        &outcome,
        wall_s,
    );
    let mut penalty = rows[0].clone();
    penalty.metric = "l2_penalty".into();
    penalty.value = fit.l2;
    rows.push(penalty);
    rows
}

/// Fine-tunes `encoder` once per probe seed (when `cfg.protocols` has `finetune`) and
/// returns the `finetune` rows, epoch chosen on valid. `inputs.sets` only supplies the
/// labels and sizes; the spectrograms come with `data`.
pub fn finetune_scores(
    cfg: &ProbeConfig,
    ctx: &ScoreContext,
    inputs: ProbeInputs<'_>,
    encoder: &Encoder,
    n_mels: usize,
    data: FinetuneData<'_>,
    progress: &dyn Progress,
) -> Result<Vec<ScoreRow>> {
    if !cfg.protocols.contains(&Protocol::Finetune) {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for k in 0..cfg.seeds as u64 {
        let started = Instant::now();
        let o = finetune(
            cfg,
            encoder,
            n_mels,
            data,
            ctx.seed.wrapping_add(k),
            progress,
        )?;
        let wall = started.elapsed().as_secs_f64();
        rows.extend(outcome_rows(
            ctx,
            &inputs,
            Some(Protocol::Finetune),
            None,
            &o,
            wall,
        ));
    }
    Ok(rows)
}
