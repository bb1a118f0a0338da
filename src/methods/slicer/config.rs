//! SLICER's settings (docs/method.md §7, 12, 13): the `method:` block of `type: slicer`.

use serde::{Deserialize, Serialize};

use crate::methods::teacher::{
    momentum_problem, queue_problem, queue_warning, temperature_problem, EmaSchedule,
};
use crate::problems::Problem;

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

/// SLICER's loss, teacher and queue settings (docs/method.md §7, 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlicerConfig {
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
    /// How the teacher momentum moves over the run.
    pub ema_schedule: EmaSchedule,
}

impl SlicerConfig {
    /// The warning for a queue that holds more keys than an epoch enqueues (two per clip).
    pub fn queue_warning(&self, clips_per_epoch: usize) -> Option<String> {
        queue_warning(self.queue_size, self.mask_same_clip, 2, clips_per_epoch)
    }

    /// Every bad value, with keys relative to the `method:` block.
    pub fn problems(&self, batch_size: usize) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.instance_weight == 0.0 && self.cluster_weight == 0.0 {
            problems.push(Problem::new(
                "cluster_weight",
                "both method.instance_weight and method.cluster_weight are 0: nothing to learn",
                "ablate one loss at a time",
            ));
        }
        problems.extend(queue_problem(self.queue_size, batch_size));
        problems.extend(momentum_problem("ema_momentum", self.ema_momentum));
        problems.extend(temperature_problem("temperature", self.temperature));
        problems.extend(temperature_problem(
            "cluster_temperature",
            self.cluster_temperature,
        ));
        problems
    }
}

impl Default for SlicerConfig {
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
