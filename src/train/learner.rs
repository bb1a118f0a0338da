//! The interface between the trainer and a pre-training method: what a step receives
//! ([`StepBatch`], with its seeded dropout streams and draw index), what it returns
//! ([`LearnerStep`], [`StepLosses`]) and the [`Learner`] trait every method implements.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::distributed::Communicator;
use crate::model::{Dropout, Encoder, KeyQueue};

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

/// A step's losses under the names its method gives them (the columns of
/// `metrics.parquet`, see [`crate::results::MetricRow`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedLosses {
    /// What was minimised.
    pub total: f32,
    /// Each loss term, named, in the method's order.
    pub terms: Vec<(&'static str, f32)>,
}

impl StepLosses {
    /// SLICER's losses under their `metrics.parquet` names.
    pub fn named(&self) -> NamedLosses {
        NamedLosses {
            total: self.total,
            terms: vec![
                ("loss_instance_a", self.instance_a),
                ("loss_instance_b", self.instance_b),
                ("loss_cluster", self.cluster),
                ("entropy_term", self.entropy),
            ],
        }
    }
}

/// What one step of a learner computed.
pub struct LearnerStep {
    /// The step's losses, named by the method.
    pub losses: NamedLosses,
    /// Gradients of the total loss.
    pub grads: GradStore,
    /// Entropy of the batch's mean cluster assignment, for methods with a cluster head.
    pub cluster_usage_entropy: Option<f32>,
}

/// A pre-training method's networks and step. The trainer owns the optimiser, the loop, the
/// data and the checkpoints; a learner owns everything else.
pub trait Learner {
    /// Trainable parameters in optimiser (and checkpoint) order.
    fn params(&self) -> Vec<Var>;

    /// Forwards, losses and backward on this rank's part of a batch of two views
    /// (`[B, 1, n_mels, T]` each); keys for a queue are gathered over `batch.comm`.
    /// `batch.seed` and `batch.draw` select the dropout streams (see
    /// [`rank_draw`]); `batch.progress` sets a scheduled EMA momentum.
    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep>;

    /// Runs after the optimiser update (the EMA of a teacher, at the momentum of the step).
    fn after_update(&mut self) -> Result<()>;

    /// The checkpoint files: `student` (with the encoder under `encoder.`), and `teacher`
    /// and `queue` where the method has them.
    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>>;

    /// The encoders whose BatchNorm running statistics the learner updates (student first).
    fn encoders(&self) -> Vec<&Encoder>;

    /// Restores the state [`Learner::checkpoint`] wrote.
    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()>;

    /// A warning about this method's settings on a corpus of `clips_per_epoch` clips per
    /// epoch (a key queue that outlasts an epoch), if there is one.
    fn corpus_warning(&self, _clips_per_epoch: usize) -> Option<String> {
        None
    }
}
