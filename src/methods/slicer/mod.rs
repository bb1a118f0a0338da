//! SLICER as a [`Learner`]: its step ([`slicer_step`], in `step.rs`) with its student,
//! teacher and queue.

mod config;
mod step;

pub use config::{Fidelity, InstanceLoss, SlicerConfig};

pub use step::{slicer_step, StepResult};

use candle_core::{Device, Result, Var};

use super::{init_stream, MethodSetup};
use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::error::Error;
use crate::loss::cluster_usage_entropy;
use crate::model::{Encoder, KeyQueue, SlicerNet};
use crate::train::{dropout_streams, Learner, LearnerStep, StepBatch, StepDropout};

/// SLICER's student, EMA teacher and key queue.
pub struct SlicerLearner {
    cfg: SlicerConfig,
    student: SlicerNet,
    teacher: SlicerNet,
    queue: KeyQueue,
    /// The teacher momentum of the current step (`method.ema_schedule`).
    momentum: f64,
}

impl SlicerLearner {
    /// Student from the seed, teacher a copy of it, queue from its own stream.
    pub fn new(cfg: &SlicerConfig, setup: &MethodSetup<'_>, device: &Device) -> Result<Self> {
        let n_mels = setup.n_mels;
        let student = SlicerNet::new(setup.model, n_mels, &mut init_stream(setup), device)?;
        let teacher = student.duplicate(setup.model, n_mels, device)?;
        let queue = KeyQueue::new(
            setup.model.instance_dim,
            cfg.queue_size,
            &mut crate::rng::stream(setup.seed, "queue/init"),
            device,
        )?;
        Ok(Self {
            momentum: cfg.ema_momentum,
            cfg: cfg.clone(),
            student,
            teacher,
            queue,
        })
    }
}

impl Learner for SlicerLearner {
    fn params(&self) -> Vec<Var> {
        self.student
            .named_params()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep> {
        self.momentum = self
            .cfg
            .ema_schedule
            .momentum(self.cfg.ema_momentum, batch.progress);
        let mut streams = dropout_streams(batch.seed, batch.draw);
        let result = slicer_step(
            &self.cfg,
            (&self.student, &self.teacher),
            &mut self.queue,
            batch,
            self.momentum,
            StepDropout::sampled(&mut streams),
        )?;
        Ok(LearnerStep {
            losses: result.losses.named(),
            grads: result.grads,
            cluster_usage_entropy: Some(cluster_usage_entropy(&result.student[0].c)?),
        })
    }

    fn after_update(&mut self) -> Result<()> {
        // The official order updates the teacher inside the step (docs/method.md §12.2).
        if self.cfg.fidelity == Fidelity::Corrected {
            self.teacher.ema_from(&self.student, self.momentum)?;
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>> {
        Ok(vec![
            ("student", self.student.state()?),
            ("teacher", self.teacher.state()?),
            ("queue", self.queue.state()?),
        ])
    }

    fn encoders(&self) -> Vec<&Encoder> {
        vec![&self.student.encoder, &self.teacher.encoder]
    }

    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()> {
        self.student
            .load_state(saved.file("student")?)
            .map_err(Error::tensor("restoring the student"))?;
        self.teacher
            .load_state(saved.file("teacher")?)
            .map_err(Error::tensor("restoring the teacher"))?;
        self.queue
            .load_state(saved.file("queue")?)
            .map_err(Error::tensor("restoring the queue"))
    }

    /// SLICER enqueues both views' keys: two per clip and epoch.
    fn corpus_warning(&self, clips_per_epoch: usize) -> Option<String> {
        self.cfg.queue_warning(clips_per_epoch)
    }
}
