//! One SLICER training step (docs/method.md §7.4): two directions of MoCo InfoNCE against the queue,
//! the cluster loss between the student's two views, the EMA teacher and the enqueues, in
//! the official order or in the corrected one (docs/method.md §12.1, 12.2, 13).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

use super::config::{Fidelity, InstanceLoss, SlicerConfig};
use crate::loss::{cluster_entropy_term, cluster_loss, info_nce, l2_normalize, nt_xent};
use crate::model::{KeyQueue, SlicerNet, SlicerOutput};
use crate::train::{StepBatch, StepDropout, StepLosses};

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
    cfg: &SlicerConfig,
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
    .unwrap_or_else(|| candle_core::bail!("method: every loss weight is 0"))?;
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
