//! One SLICER training step (docs/method.md §7.4): two directions of MoCo InfoNCE against the queue,
//! the cluster loss between the student's two views, the EMA teacher and the enqueues, in
//! the official order or in the corrected one (docs/method.md §12.1, 12.2, 13).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::distributed::Communicator;
use crate::loss::{cluster_entropy_term, cluster_loss, info_nce, l2_normalize, nt_xent};
use crate::model::{Dropout, KeyQueue, SlicerNet, SlicerOutput};

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

/// What every learner's step receives besides its own state.
#[derive(Clone, Copy)]
pub struct StepBatch<'a> {
    /// View 1 of this rank's clips, `[B, 1, n_mels, T]`.
    pub x1: &'a Tensor,
    /// View 2.
    pub x2: &'a Tensor,
    /// The corpus clip of every row of the global batch, all ranks in rank order (this
    /// rank's rows are its slice): the ids of the keys every rank enqueues.
    pub clips: &'a [usize],
    /// The ranks of the job.
    pub comm: &'a dyn Communicator,
    /// Master seed (dropout streams).
    pub seed: u64,
    /// Index of this rank's random draws ([`rank_draw`]).
    pub draw: u64,
    /// Share of the run done before this step, `step / total` (momentum schedules).
    pub progress: f64,
}

impl StepBatch<'_> {
    /// The clips of this rank's rows.
    pub fn local_clips(&self) -> Result<&[usize]> {
        let per_rank = self.x1.dim(0)?;
        let first = self.comm.rank() * per_rank;
        self.clips.get(first..first + per_rank).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{} clip ids for rank {} of {} with {per_rank} rows each",
                self.clips.len(),
                self.comm.rank(),
                self.comm.world_size()
            ))
        })
    }

    /// The additive `[B, K]` mask that keeps this rank's own clips out of `queue`'s
    /// negatives, when `enabled`.
    pub fn same_clip_mask(&self, queue: &KeyQueue, enabled: bool) -> Result<Option<Tensor>> {
        if !enabled {
            return Ok(None);
        }
        queue
            .same_clip_mask(self.local_clips()?, self.x1.dtype())
            .map(Some)
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

/// Dropout sources of the four forwards of a step: student on view 1 and 2, teacher on view 2 and 1.
pub struct StepDropout<'a> {
    /// Student forward on view 1.
    pub student_v1: Dropout<'a>,
    /// Student forward on view 2.
    pub student_v2: Dropout<'a>,
    /// Teacher forward on view 2.
    pub teacher_v2: Dropout<'a>,
    /// Teacher forward on view 1.
    pub teacher_v1: Dropout<'a>,
}

/// The four seeded dropout streams of draw `draw` under master `seed`.
pub fn dropout_streams(seed: u64, draw: u64) -> [rand_chacha::ChaCha8Rng; 4] {
    ["s1", "s2", "t2", "t1"]
        .map(|k| crate::rng::stream_indexed(seed, &format!("train/dropout/{k}"), draw))
}

/// The index of the random draws (dropout, augmentation) of `rank` at `step` (or epoch) of a
/// `world`-rank job: the ranks interleave, so each draws its own masks and augmentations
/// instead of repeating rank 0's on other clips, and a one-process run draws index `step`.
pub fn rank_draw(step: u64, rank: usize, world: usize) -> u64 {
    step * world as u64 + rank as u64
}

impl<'a> StepDropout<'a> {
    /// Dropout sampled from the four streams of [`dropout_streams`].
    pub fn sampled(streams: &'a mut [rand_chacha::ChaCha8Rng; 4]) -> Self {
        let [s1, s2, t2, t1] = streams;
        Self {
            student_v1: Dropout::Sample(s1),
            student_v2: Dropout::Sample(s2),
            teacher_v2: Dropout::Sample(t2),
            teacher_v1: Dropout::Sample(t1),
        }
    }
}

/// Scalar losses of a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLosses {
    /// Direction A: student view 1 against teacher view 2.
    pub instance_a: f32,
    /// Direction B: student view 2 against teacher view 1.
    pub instance_b: f32,
    /// Cluster loss.
    pub cluster: f32,
    /// Entropy term (added with `entropy_weight`).
    pub entropy: f32,
    /// What was minimised.
    pub total: f32,
}

/// Everything a step computed.
pub struct StepResult {
    /// Scalar losses.
    pub losses: StepLosses,
    /// Gradients of the total loss.
    pub grads: GradStore,
    /// Student outputs on view 1 and view 2.
    pub student: [SlicerOutput; 2],
    /// Teacher outputs on view 1 and view 2 (detached).
    pub teacher: [SlicerOutput; 2],
}

/// Runs the forward passes, losses, enqueues (and, in official mode, the two EMA updates
/// with `momentum`), and the backward pass. The optimiser step (and the corrected EMA) is
/// the caller's. The keys of every rank of `batch.comm` are enqueued, in rank order.
pub fn slicer_step(
    cfg: &ObjectiveConfig,
    (student, teacher): (&SlicerNet, &SlicerNet),
    queue: &mut KeyQueue,
    batch: &StepBatch<'_>,
    momentum: f64,
    dropout: StepDropout<'_>,
) -> Result<StepResult> {
    let StepBatch { x1, x2, comm, .. } = *batch;
    let StepDropout {
        mut student_v1,
        mut student_v2,
        mut teacher_v2,
        mut teacher_v1,
    } = dropout;
    let official = cfg.fidelity == Fidelity::Official;
    let detach = |o: SlicerOutput| SlicerOutput {
        frames: o.frames.detach(),
        pooled: o.pooled.detach(),
        z: o.z.detach(),
        c: o.c.detach(),
    };

    let clips = batch.clips;
    if official {
        teacher.ema_from(student, momentum)?;
    }
    let s1 = student.forward(x1, true, &mut student_v1)?;
    let t2 = detach(teacher.forward(x2, true, &mut teacher_v2)?);
    let k2 = l2_normalize(&t2.z)?;
    let mask = batch.same_clip_mask(queue, cfg.mask_same_clip)?;
    let loss_a = info_nce(
        &l2_normalize(&s1.z)?,
        &k2,
        &queue.keys,
        cfg.temperature,
        mask.as_ref(),
    )?;
    if official {
        queue.enqueue(&comm.all_gather(&k2)?, clips)?;
        teacher.ema_from(student, momentum)?;
    }
    let s2 = student.forward(x2, true, &mut student_v2)?;
    let t1 = detach(teacher.forward(x1, true, &mut teacher_v1)?);
    let k1 = l2_normalize(&t1.z)?;
    // Official order: view 2's keys are in the queue now, and masked as their clip's.
    let mask = if official {
        batch.same_clip_mask(queue, cfg.mask_same_clip)?
    } else {
        mask
    };
    let loss_b = info_nce(
        &l2_normalize(&s2.z)?,
        &k1,
        &queue.keys,
        cfg.temperature,
        mask.as_ref(),
    )?;
    if !official {
        queue.enqueue(&comm.all_gather(&k2)?, clips)?;
    }
    queue.enqueue(&comm.all_gather(&k1)?, clips)?;

    let (loss_a, loss_b) = match cfg.instance_loss {
        InstanceLoss::Moco => (loss_a, loss_b),
        InstanceLoss::NtXent => (
            nt_xent(&s1.z, &s2.z, cfg.temperature)?,
            loss_b.zeros_like()?,
        ),
    };
    let cluster = cluster_loss(&s1.c, &s2.c, cfg.cluster_temperature)?;
    let entropy = cluster_entropy_term(&s1.c, &s2.c)?;
    // A zero weight leaves its term out of the graph altogether.
    let total = [
        ((&loss_a + &loss_b)?, cfg.instance_weight),
        (cluster.clone(), cfg.cluster_weight),
        (entropy.clone(), cfg.entropy_weight),
    ]
    .into_iter()
    .filter(|(_, w)| *w != 0.0)
    .map(|(term, w)| if w == 1.0 { Ok(term) } else { term * w })
    .reduce(|a, b| a? + b?)
    .unwrap_or_else(|| candle_core::bail!("objective: every loss weight is 0"))?;
    let scalar = |t: &Tensor| t.to_scalar::<f32>();
    let losses = StepLosses {
        instance_a: scalar(&loss_a)?,
        instance_b: scalar(&loss_b)?,
        cluster: scalar(&cluster)?,
        entropy: scalar(&entropy)?,
        total: scalar(&total)?,
    };
    let grads = total.backward()?;
    Ok(StepResult {
        losses,
        grads,
        student: [s1, s2],
        teacher: [t1, t2],
    })
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
