//! What a stage did, for a person to read.

use std::fmt;

use crate::eval::{LapeRow, LapeTable, Protocol, BASELINE_ENCODER, FLOOR_ENCODER};
use crate::methods::MethodConfig;
use crate::results::{MetricRow, ScoreRow};
use crate::spec::ExperimentSpec;
use crate::train::Pretrained;

/// What a call of the experiment layer did: paragraphs in order (pre-training summary, score
/// tables, where things were written) and the scores it wrote.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Paragraphs for a person, in order.
    pub paragraphs: Vec<String>,
    /// The scores this call wrote (empty when it scored nothing).
    pub scores: Vec<ScoreRow>,
}

impl Report {
    /// Adds a paragraph.
    pub fn say(&mut self, paragraph: impl Into<String>) {
        self.paragraphs.push(paragraph.into());
    }

    /// Appends another report's paragraphs and scores.
    pub fn extend(&mut self, other: Report) {
        self.paragraphs.extend(other.paragraphs);
        self.scores.extend(other.scores);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for paragraph in &self.paragraphs {
            writeln!(f, "{paragraph}")?;
        }
        Ok(())
    }
}

/// One line on what a run shows: its pre-trained encoder against random init and the
/// bag-of-frames floor under the headline protocol (`logistic` when scored, else the first),
/// mean over tasks; `None` when the run has no such rows.
pub(super) fn headline(spec: &ExperimentSpec, table: &LapeTable) -> Option<String> {
    let protocols = &spec.probe.protocols;
    let protocol = if protocols.contains(&Protocol::Logistic) {
        Protocol::Logistic
    } else {
        *protocols.first()?
    }
    .name();
    let average = |encoder: &str| {
        table
            .rows
            .iter()
            .find(|r| r.encoder == encoder && r.protocol == protocol)
            .and_then(LapeRow::average)
            .map(|a| 100.0 * a)
    };
    let method = spec.method.name();
    if !spec.method.pretrains() {
        return None;
    }
    let trained = average(method)?;
    let against: Vec<String> = [
        (BASELINE_ENCODER, "random init"),
        (FLOOR_ENCODER, "the floor"),
    ]
    .into_iter()
    .filter_map(|(encoder, label)| {
        average(encoder).map(|a| format!("{label} {a:.1} ({:+.1})", trained - a))
    })
    .collect();
    (!against.is_empty()).then(|| {
        format!(
            "this run, {protocol}, mean over {} tasks: {method} {trained:.1} against {}; one pre-training seed, so a gap of a few points is within run-to-run variation (docs/findings/main-job.md)",
            table.tasks.len(),
            against.join(" and ")
        )
    })
}

/// One line on a finished pre-training: steps, losses against their chance levels, cluster
/// usage and speed.
pub(super) fn pretraining_summary(spec: &ExperimentSpec, trained: &Pretrained) -> String {
    let (Some(first), Some(last)) = (trained.metrics.first(), trained.metrics.last()) else {
        return format!(
            "pre-training ({}): {} steps, no step recorded",
            spec.method.name(),
            trained.steps
        );
    };
    let usage = if last.cluster_usage_entropy.is_finite() {
        format!(
            ", cluster usage entropy {:.3} (max {:.3})",
            last.cluster_usage_entropy,
            (spec.model.n_clusters as f64).ln()
        )
    } else {
        String::new()
    };
    let speed = crate::train::throughput(&trained.metrics, spec.train.batch_size).map_or(
        String::new(),
        |t| {
            format!(
                "; {:.1} clips/s (median step), waited for data {:.1}% of the time",
                t.median_clips_per_s,
                100.0 * t.data_wait_share
            )
        },
    );
    format!(
        "pre-training ({}): {} steps, {}{usage}{speed}",
        spec.method.name(),
        trained.steps,
        loss_summary(spec, first, last),
    )
}

/// The losses at the first and last step, with what a reader needs to judge them: for
/// SLICER, the InfoNCE of one direction (which rises while the queue fills with real keys)
/// and the cluster loss, each against its chance level.
fn loss_summary(spec: &ExperimentSpec, first: &MetricRow, last: &MetricRow) -> String {
    let slicer_terms = (
        first.loss("loss_instance_a"),
        last.loss("loss_instance_a"),
        first.loss("loss_cluster"),
        last.loss("loss_cluster"),
    );
    let (MethodConfig::Slicer(slicer), (Some(a0), Some(a1), Some(c0), Some(c1))) =
        (&spec.method, slicer_terms)
    else {
        return format!("loss {:.4} -> {:.4}", first.loss_total, last.loss_total);
    };
    let queue = slicer.queue_size;
    let keys_per_step = 2 * spec.train.batch_size;
    let clusters = spec.model.n_clusters as f64;
    format!(
        "InfoNCE per direction {:.3} -> {:.3} (chance ln {} = {:.2}; it rises while the queue's random initial keys, easy negatives, are replaced by real ones, all real from step {}), cluster loss {:.3} -> {:.3} (chance ln {} = {:.2})",
        a0,
        a1,
        queue + 1,
        ((queue + 1) as f64).ln(),
        queue.div_ceil(keys_per_step),
        c0,
        c1,
        2.0 * clusters - 1.0,
        (2.0 * clusters - 1.0).ln(),
    )
}
