//! What the teacher-student methods share: the EMA schedule of the teacher (SLICER, BYOL-A,
//! DeLoRes-M) and the warning for a key queue longer than an epoch (SLICER, DeLoRes-M).

use serde::{Deserialize, Serialize};

use crate::problems::Problem;

/// A queue of `queue_size` keys that is empty or not written in whole batches of
/// `batch_size` (key relative to the `method:` block). A zero batch size is `train`'s problem.
pub fn queue_problem(queue_size: usize, batch_size: usize) -> Option<Problem> {
    const HINT: &str =
        "the queue is written in whole batches (docs/method.md §6); e.g. 65536 with a power-of-two batch";
    if queue_size == 0 {
        return Some(Problem::new(
            "queue_size",
            "must be a positive multiple of train.batch_size",
            HINT,
        ));
    }
    (batch_size != 0 && queue_size % batch_size != 0).then(|| {
        Problem::new(
            "queue_size",
            format!("{queue_size} is not a multiple of train.batch_size ({batch_size})"),
            HINT,
        )
    })
}

/// A teacher momentum (`key`) outside [0, 1]: the EMA would leave the convex hull of the
/// student's weights and diverge.
pub fn momentum_problem(key: &str, momentum: f64) -> Option<Problem> {
    (!(0.0..=1.0).contains(&momentum)).then(|| {
        Problem::new(
            key,
            format!("{momentum} is not a momentum in [0, 1]"),
            "docs/method.md §13 uses 0.999 (BYOL-A's target: 0.99)",
        )
    })
}

/// A softmax temperature (`key`) that is not positive and finite: the logits would be infinite.
pub fn temperature_problem(key: &str, temperature: f64) -> Option<Problem> {
    (!(temperature.is_finite() && temperature > 0.0)).then(|| {
        Problem::new(
            key,
            format!("{temperature} is not a positive temperature"),
            "docs/method.md §13 uses 0.07 (instance) and 1.0 (cluster)",
        )
    })
}

/// The warning for a key queue of `queue_size` that holds more keys than an epoch enqueues
/// (`keys_per_clip` per clip): every query then meets keys of its own clip, other crops,
/// among its negatives, unless the same-clip mask is on.
pub fn queue_warning(
    queue_size: usize,
    mask_same_clip: bool,
    keys_per_clip: usize,
    clips_per_epoch: usize,
) -> Option<String> {
    let keys_per_epoch = clips_per_epoch * keys_per_clip;
    (queue_size > keys_per_epoch && !mask_same_clip).then(|| {
        format!(
            "method.queue_size = {queue_size} holds more keys than one epoch enqueues ({keys_per_epoch} from {clips_per_epoch} clips): queries meet keys of their own clip as negatives. Set method.mask_same_clip: true, or a queue_size of at most {keys_per_epoch}"
        )
    })
}

/// The teacher's EMA momentum over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmaSchedule {
    /// The base momentum at every step (official SLICER, MoCo).
    #[default]
    Constant,
    /// From the base momentum at the first step to 1 at the end, on a half cosine (BYOL):
    /// `1 - (1 - base) (1 + cos(pi t / T)) / 2`.
    Cosine,
}

impl EmaSchedule {
    /// The momentum for a step taken after `progress` (in `[0, 1]`) of the run.
    pub fn momentum(self, base: f64, progress: f64) -> f64 {
        match self {
            EmaSchedule::Constant => base,
            EmaSchedule::Cosine => {
                1.0 - (1.0 - base) * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos())
                    / 2.0
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_momentum_runs_from_the_base_to_one() {
        let s = EmaSchedule::Cosine;
        assert_eq!(s.momentum(0.99, 0.0), 0.99);
        assert!((s.momentum(0.99, 0.5) - 0.995).abs() < 1e-12);
        assert!((s.momentum(0.99, 1.0) - 1.0).abs() < 1e-12);
        assert_eq!(EmaSchedule::Constant.momentum(0.99, 0.7), 0.99);
    }
}
