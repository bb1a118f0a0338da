//! SLICER's objective settings (docs/method.md §7, 12, 13), shared with DeLoRes-M (queue,
//! momentum, temperature) and BYOL-A (the EMA schedule).

use serde::{Deserialize, Serialize};

/// Which behaviour of the official code to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fidelity {
    /// docs/method.md §13: one EMA update per step (after the optimiser step), both directions scored
    /// against the same pre-step queue, then the keys enqueued.
    #[default]
    Corrected,
    /// The official LAPE code: an EMA update before each direction (two per step), and the
    /// view-2 keys enqueued between the directions (a false negative in direction B).
    Official,
}

/// The instance-level objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceLoss {
    /// MoCo InfoNCE of each student view against the other view's teacher key and the queue
    /// (official SLICER).
    #[default]
    Moco,
    /// NT-Xent between the two student views (SimCLR; LAPE's `InstanceLoss`), reported as
    /// direction A with direction B 0; the teacher and queue are still updated.
    NtXent,
}

/// SLICER loss settings (docs/method.md §7, 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveConfig {
    /// Official or corrected step order.
    pub fidelity: Fidelity,
    /// Instance-level loss.
    pub instance_loss: InstanceLoss,
    /// Teacher EMA momentum.
    pub ema_momentum: f64,
    /// Instance (MoCo) temperature.
    pub temperature: f64,
    /// Cluster-loss temperature.
    pub cluster_temperature: f64,
    /// Weight of Contrastive Clustering's entropy term (official 0; CC uses 1).
    pub entropy_weight: f64,
    /// Weight of the two instance losses (0 ablates them: cluster loss only).
    pub instance_weight: f64,
    /// Weight of the cluster loss (0 ablates it: MoCo-v2 instance-only training, docs/method.md §11.6).
    pub cluster_weight: f64,
    /// Queue length (a multiple of the batch size).
    pub queue_size: usize,
    /// Keep keys of a query's own clip (other crops of it, enqueued earlier) out of its
    /// negatives. Off in the official code, where a queue larger than the corpus holds
    /// several such false negatives per query.
    pub mask_same_clip: bool,
    /// How the teacher momentum moves over the run (also BYOL-A's and DeLoRes-M's EMA).
    pub ema_schedule: EmaSchedule,
}

impl ObjectiveConfig {
    /// The warning for a key queue that holds more keys than an epoch enqueues
    /// (`keys_per_clip` per clip): every query then meets keys of its own clip, other crops,
    /// among its negatives, unless the same-clip mask is on.
    pub fn queue_warning(&self, keys_per_clip: usize, clips_per_epoch: usize) -> Option<String> {
        let keys_per_epoch = clips_per_epoch * keys_per_clip;
        (self.queue_size > keys_per_epoch && !self.mask_same_clip).then(|| {
            format!(
                "objective.queue_size = {} holds more keys than one epoch enqueues ({keys_per_epoch} from {clips_per_epoch} clips): queries meet keys of their own clip as negatives. Set objective.mask_same_clip: true, or a queue_size of at most {keys_per_epoch}",
                self.queue_size
            )
        })
    }
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

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            fidelity: Fidelity::Corrected,
            instance_loss: InstanceLoss::Moco,
            ema_momentum: 0.999,
            temperature: 0.07,
            cluster_temperature: 1.0,
            entropy_weight: 0.0,
            instance_weight: 1.0,
            cluster_weight: 1.0,
            queue_size: 65_536,
            mask_same_clip: false,
            ema_schedule: EmaSchedule::Constant,
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
