//! DeLoRes-M (docs/method.md §11.2): MoCo in one direction (student on view 1 against the EMA teacher's
//! key of view 2 and the queue) plus a Barlow-Twins loss on the time-averaged output of each
//! conv block, student view 1 against teacher view 2, through a trainable projector per
//! block shared by both sides.

use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::heads::Mlp;
use super::teacher::{
    momentum_problem, queue_problem, queue_warning, temperature_problem, EmaSchedule,
};
use super::{init_stream, load_network, network_state, new_encoder, MethodSetup};
use crate::checkpoint::{CheckpointTensors, NamedTensors};
use crate::error::Error;
use crate::loss::{barlow_twins, info_nce, l2_normalize};
use crate::methods::BarlowTwinsConfig;
use crate::model::CHANNELS;
use crate::model::{copy_params, ema_update, pool_max_mean, Dropout, Encoder, KeyQueue, Linear};
use crate::problems::Problem;
use crate::train::{dropout_streams, Learner, LearnerStep, NamedLosses, StepBatch};

/// DeLoRes-M's settings (docs/method.md §11.2): the `method:` block of `type: delores_m`. The MoCo
/// part's teacher and queue, then the Barlow-Twins part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeloresMConfig {
    /// Teacher EMA momentum.
    pub ema_momentum: f64,
    /// How the teacher momentum moves over the run.
    pub ema_schedule: EmaSchedule,
    /// MoCo temperature.
    pub temperature: f64,
    /// Queue length (a multiple of the batch size).
    pub queue_size: usize,
    /// Keep keys of a query's own clip out of its negatives.
    pub mask_same_clip: bool,
    /// The per-block Barlow-Twins projectors and weight.
    pub barlow: BarlowTwinsConfig,
}

impl Default for DeloresMConfig {
    fn default() -> Self {
        Self {
            ema_momentum: 0.999,
            ema_schedule: EmaSchedule::Constant,
            temperature: 0.07,
            queue_size: 65_536,
            mask_same_clip: false,
            barlow: BarlowTwinsConfig::default(),
        }
    }
}

impl DeloresMConfig {
    /// Every bad value, with keys relative to the `method:` block.
    pub fn problems(&self, batch_size: usize) -> Vec<Problem> {
        queue_problem(self.queue_size, batch_size)
            .into_iter()
            .chain(momentum_problem("ema_momentum", self.ema_momentum))
            .chain(temperature_problem("temperature", self.temperature))
            .collect()
    }
}

/// Encoder and instance projector (the part the teacher copies).
struct InstanceBranch {
    encoder: Encoder,
    instance_projector: Linear,
}

impl InstanceBranch {
    /// The normalised instance projection and each block's time-averaged features
    /// (`[B, 64 * n_mels / 2^l]`).
    fn forward(&self, x: &Tensor, dropout: &mut Dropout<'_>) -> Result<(Tensor, Vec<Tensor>)> {
        let (frames, blocks) = self.encoder.forward_with_blocks(x, true, dropout)?;
        let q = l2_normalize(&self.instance_projector.forward(&pool_max_mean(&frames)?)?)?;
        let averaged = blocks
            .iter()
            .map(|b| {
                let (n, c, f, _) = b.dims4()?;
                b.mean(3)?.reshape((n, c * f))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((q, averaged))
    }

    fn head_params(&self) -> Vec<(String, Var)> {
        self.instance_projector.named_params("instance_projector")
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        let mut out = self.encoder.named_params("encoder.");
        out.extend(self.head_params());
        out
    }
}

/// Student, EMA teacher, queue and the per-block Barlow projectors.
pub struct DeloresMLearner {
    cfg: DeloresMConfig,
    student: InstanceBranch,
    teacher: InstanceBranch,
    projectors: Vec<Mlp>,
    queue: KeyQueue,
    /// The teacher momentum of the current step.
    momentum: f64,
}

impl DeloresMLearner {
    /// Networks from the seed (encoder, instance projector, block projectors), the teacher a
    /// copy of the student.
    pub fn new(cfg: &DeloresMConfig, setup: &MethodSetup<'_>, device: &Device) -> Result<Self> {
        let mut rng = init_stream(setup);
        let build = |rng: &mut rand_chacha::ChaCha8Rng| -> Result<InstanceBranch> {
            Ok(InstanceBranch {
                encoder: new_encoder(setup, rng, device)?,
                instance_projector: Linear::new(
                    setup.model.d,
                    setup.model.instance_dim,
                    rng,
                    device,
                )?,
            })
        };
        let student = build(&mut rng)?;
        let projectors = (1..=3)
            .map(|l| {
                let inputs = CHANNELS * (setup.n_mels >> l);
                cfg.barlow.projector(inputs, &mut rng, device)
            })
            .collect::<Result<Vec<_>>>()?;
        let teacher = build(&mut crate::rng::stream(0, "model/duplicate"))?;
        copy_params(&teacher.named_params(), &student.named_params())?;
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
            projectors,
            queue,
        })
    }

    fn student_heads(&self) -> Vec<(String, Var)> {
        let mut out = self.student.head_params();
        for (l, p) in self.projectors.iter().enumerate() {
            out.extend(p.named_params(&format!("barlow_projector_{}", l + 1)));
        }
        out
    }
}

impl Learner for DeloresMLearner {
    fn params(&self) -> Vec<Var> {
        let mut out = self.student.encoder.named_params("encoder.");
        out.extend(self.student_heads());
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn step(&mut self, batch: &StepBatch<'_>) -> Result<LearnerStep> {
        let StepBatch {
            x1,
            x2,
            comm,
            seed,
            draw,
            ..
        } = *batch;
        self.momentum = self
            .cfg
            .ema_schedule
            .momentum(self.cfg.ema_momentum, batch.progress);
        let [mut s1, _, mut t2, _] = dropout_streams(seed, draw);
        let (q, student_blocks) = self.student.forward(x1, &mut Dropout::Sample(&mut s1))?;
        let (k, teacher_blocks) = self.teacher.forward(x2, &mut Dropout::Sample(&mut t2))?;
        let k = k.detach();
        let mask = batch.same_clip_mask(&self.queue, self.cfg.mask_same_clip)?;
        let instance = info_nce(
            &q,
            &k,
            &self.queue.keys,
            self.cfg.temperature,
            mask.as_ref(),
        )?;
        self.queue.enqueue(&comm.all_gather(&k)?, batch.clips)?;
        let mut decorrelation = instance.zeros_like()?;
        for ((projector, s), t) in self
            .projectors
            .iter()
            .zip(&student_blocks)
            .zip(&teacher_blocks)
        {
            let term = barlow_twins(
                &projector.forward(s)?,
                &projector.forward(&t.detach())?,
                self.cfg.barlow.weight(),
            )?;
            decorrelation = (decorrelation + term)?;
        }
        let total = (&instance + &decorrelation)?;
        let scalar = |t: &Tensor| t.to_scalar::<f32>();
        Ok(LearnerStep {
            losses: NamedLosses {
                total: scalar(&total)?,
                terms: vec![
                    ("loss_info_nce", scalar(&instance)?),
                    ("loss_barlow_twins", scalar(&decorrelation)?),
                ],
            },
            grads: total.backward()?,
            cluster_usage_entropy: None,
        })
    }

    fn after_update(&mut self) -> Result<()> {
        ema_update(
            &self.teacher.named_params(),
            &self.student.named_params(),
            self.momentum,
        )
    }

    fn checkpoint(&self) -> Result<Vec<(&'static str, NamedTensors)>> {
        Ok(vec![
            (
                "student",
                network_state(&self.student.encoder, &self.student_heads())?,
            ),
            (
                "teacher",
                network_state(&self.teacher.encoder, &self.teacher.head_params())?,
            ),
            ("queue", self.queue.state()?),
        ])
    }

    fn encoders(&self) -> Vec<&Encoder> {
        vec![&self.student.encoder, &self.teacher.encoder]
    }

    fn restore(&mut self, saved: &CheckpointTensors) -> crate::Result<()> {
        load_network(
            &self.student.encoder,
            &self.student_heads(),
            saved.file("student")?,
        )
        .map_err(Error::tensor("restoring the student"))?;
        load_network(
            &self.teacher.encoder,
            &self.teacher.head_params(),
            saved.file("teacher")?,
        )
        .map_err(Error::tensor("restoring the teacher"))?;
        self.queue
            .load_state(saved.file("queue")?)
            .map_err(Error::tensor("restoring the queue"))
    }

    /// DeLoRes-M enqueues one key per clip and epoch.
    fn corpus_warning(&self, clips_per_epoch: usize) -> Option<String> {
        queue_warning(
            self.cfg.queue_size,
            self.cfg.mask_same_clip,
            1,
            clips_per_epoch,
        )
    }
}
