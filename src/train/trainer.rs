//! The pre-training loop as a type: a [`Trainer`] loads the corpus and plans the batches,
//! resumes from a checkpoint, steps its learner (SLICER or a baseline, built by
//! [`crate::methods::learner`]) with the optimiser, and checkpoints; [`Trainer::run`] is the
//! whole loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};

use super::batches::{fit_centroids, Batch, BatchPlan, Batches};
use super::config::PretrainSetup;
use super::learner::{rank_draw, Learner, StepBatch};
use crate::checkpoint::{self, TrainState};
use crate::data::{pretrain_clips, PretrainCorpus};
use crate::distributed::{average_gradients, average_running_stats, ensure_in_sync, Communicator};
use crate::error::{Error, Result};
use crate::features::{LogMelFrontend, NormStats};
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::results::{write_metrics, MetricRow};

/// What a pre-training run produced (the weights are in the run's checkpoints).
#[derive(Debug)]
pub struct Pretrained {
    /// Steps completed.
    pub steps: u64,
    /// The step's metrics, in order.
    pub metrics: Vec<MetricRow>,
    /// Digest of the final training state ([`checkpoint::digest`]); equal on every rank.
    pub state_digest: String,
}

/// Pre-training as rank `comm.rank()` of `comm.world_size()` on `device`: each rank trains on
/// its shard of every batch, and only rank 0 writes (checkpoints and `metrics.parquet` in the
/// run folder). At every checkpoint the ranks check that their states are identical
/// ([`crate::distributed::ensure_in_sync`]).
pub struct Trainer<'a> {
    setup: PretrainSetup<'a>,
    learner: Box<dyn Learner>,
    params: Vec<Var>,
    optimizer: Optimizer,
    state: TrainState,
    metrics: Vec<MetricRow>,
    run_dir: PathBuf,
    plan: BatchPlan,
    total: u64,
    device: &'a Device,
    comm: &'a dyn Communicator,
    last_step: Instant,
}

impl<'a> Trainer<'a> {
    /// Decodes the corpus, fits the k-mix centroids and plans the batches of this rank;
    /// starts at step 0 with a fresh optimiser.
    pub fn new(
        setup: PretrainSetup<'a>,
        learner: Box<dyn Learner>,
        run_dir: &Path,
        norm: NormStats,
        (device, comm): (&'a Device, &'a dyn Communicator),
        progress: &dyn Progress,
    ) -> Result<Self> {
        let cfg = setup.train;
        let frontend = Arc::new(LogMelFrontend::new(setup.frontend));
        let window = setup.frontend.samples(setup.data.window_seconds);
        let clips = pretrain_clips(&setup.data.pretrain, setup.seed)?;
        let corpus = Arc::new(PretrainCorpus::open(
            &clips,
            setup.frontend.sample_rate,
            setup.data.loading,
            setup.data.skip_bad_files,
            progress,
        )?);
        if corpus.len() < cfg.batch_size {
            return Err(Error::Invalid(format!(
                "the pre-training corpus has {} usable clips, fewer than train.batch_size = {}",
                corpus.len(),
                cfg.batch_size
            )));
        }
        let centroids = match &setup.augment.kmix {
            Some(k) => Some(fit_centroids(
                &corpus, &frontend, &norm, window, k, setup.seed,
            )?),
            None => None,
        };
        let (rank, world) = (comm.rank(), comm.world_size());
        if cfg.batch_size % world != 0 {
            return Err(Error::Invalid(format!(
                "train.batch_size = {} is not divisible by the {world} ranks of this job",
                cfg.batch_size
            )));
        }
        let params = learner.params();
        let optimizer = Optimizer::new(setup.optimizer.clone(), params.len());
        let plan = BatchPlan {
            corpus,
            frontend,
            norm,
            augment: setup.augment.clone(),
            centroids,
            window,
            batch_size: cfg.batch_size,
            epochs: cfg.epochs,
            seed: setup.seed,
            shard: (rank, world),
            workers: cfg.workers,
        };
        let steps_per_epoch = plan.steps_per_epoch();
        if let Some(warning) = learner.corpus_warning(steps_per_epoch * cfg.batch_size) {
            tracing::warn!("{warning}");
        }
        let total = cfg
            .max_steps
            .unwrap_or(u64::MAX)
            .min((cfg.epochs * steps_per_epoch) as u64);
        if let Some(late) = setup.kept_steps.iter().find(|&&s| s > total) {
            return Err(Error::Invalid(format!(
                "eval.at_steps: step {late} is past this run's last step, {total} ({} epochs of {steps_per_epoch} steps{}); lower it or raise train.epochs",
                cfg.epochs,
                cfg.max_steps.map_or(String::new(), |m| format!(", train.max_steps {m}"))
            )));
        }
        let state = TrainState {
            step: 0,
            epoch: 0,
            step_in_epoch: 0,
            spec_hash: setup.spec_hash.clone(),
            seed: setup.seed,
        };
        Ok(Self {
            setup,
            learner,
            params,
            optimizer,
            state,
            metrics: Vec::new(),
            run_dir: run_dir.to_owned(),
            plan,
            total,
            device,
            comm,
            last_step: Instant::now(),
        })
    }

    fn checkpoint_root(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }

    /// Continues from the newest checkpoint of the run folder (weights, optimiser, queue,
    /// position in the data, metrics so far), or stays at step 0 when there is none. A
    /// checkpoint written by another spec is refused.
    pub fn resume(&mut self) -> Result<()> {
        let root = self.checkpoint_root();
        let Some(latest) = checkpoint::list(&root)?.pop() else {
            tracing::info!("no checkpoint in {}: starting from step 0", root.display());
            return Ok(());
        };
        let (saved, tensors) = checkpoint::load(&latest, self.device)?;
        let spec_hash = &self.setup.spec_hash;
        if saved.spec_hash != *spec_hash {
            return Err(Error::Invalid(format!(
                "{}: the checkpoint was written by spec {} but this spec hashes to {}; resume with the run's own spec.yaml",
                latest.display(),
                &saved.spec_hash[..8],
                &spec_hash[..8]
            )));
        }
        self.learner
            .restore(&tensors)
            .map_err(Error::checkpoint(&latest))?;
        self.optimizer
            .load_state(saved.step, tensors.file("optimizer")?)
            .map_err(Error::tensor("restoring the optimiser"))
            .map_err(Error::checkpoint(&latest))?;
        self.metrics = crate::results::read_metrics(&latest.join("metrics.parquet"))?;
        tracing::info!("resuming from {} (step {})", latest.display(), saved.step);
        self.state = saved;
        Ok(())
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> u64 {
        self.total
    }

    /// Starts the data workers at the trainer's position (step 0, or where [`Trainer::resume`]
    /// left it): the batches [`Trainer::step`] takes next, in order.
    pub fn batches(&mut self) -> Batches {
        self.last_step = Instant::now();
        self.plan.clone().spawn(
            self.state.epoch,
            self.state.step_in_epoch,
            self.setup.train.prefetch,
        )
    }

    /// One optimisation step on this rank's part of `batch` (which waited `data_wait_s` for
    /// the data pipeline): the learner's step, gradients averaged over the ranks, the
    /// optimiser and the learner's update after it; returns the step's metrics.
    pub fn step(&mut self, batch: Batch, data_wait_s: f64) -> Result<&MetricRow> {
        let _precision = crate::model::autocast(self.setup.precision);
        let (cfg, world) = (self.setup.train, self.comm.world_size());
        let steps_per_epoch = self.plan.steps_per_epoch();
        let frames = self.setup.frontend.n_frames(self.plan.window);
        let shape = (
            cfg.batch_size / world,
            1,
            self.setup.frontend.n_mels,
            frames,
        );
        let x1 = Tensor::from_vec(batch.view1, shape, self.device)
            .map_err(Error::tensor("view 1 batch"))?;
        let x2 = Tensor::from_vec(batch.view2, shape, self.device)
            .map_err(Error::tensor("view 2 batch"))?;
        let step = self.state.step;
        let lr = self
            .setup
            .schedule
            .lr(self.setup.optimizer.lr(), step, self.total);
        let mut result = self
            .learner
            .step(&StepBatch {
                x1: &x1,
                x2: &x2,
                clips: &batch.clips,
                comm: self.comm,
                seed: self.setup.seed,
                draw: rank_draw(step, self.comm.rank(), world),
                progress: step as f64 / self.total as f64,
            })
            .map_err(Error::tensor(format!("training step {}", step + 1)))?;
        average_gradients(self.comm, &self.params, &mut result.grads)
            .map_err(Error::tensor("averaging gradients over ranks"))?;
        let l = &result.losses;
        if !l.total.is_finite() {
            let kept = checkpoint::list(&self.checkpoint_root())?
                .pop()
                .map_or("none yet".to_owned(), |p| p.display().to_string());
            return Err(Error::Invalid(format!(
                "non-finite loss at step {} (epoch {}): {l:?}; stopped without saving. Last good checkpoint: {kept}. Try a lower learning rate.",
                step + 1,
                batch.epoch,
            )));
        }
        self.optimizer
            .step(&self.params, &result.grads, lr)
            .map_err(Error::tensor("the optimiser step"))?;
        self.learner
            .after_update()
            .map_err(Error::tensor("the update after the optimiser step"))?;
        average_running_stats(self.comm, &self.learner.encoders())
            .map_err(Error::tensor("averaging BatchNorm statistics over ranks"))?;
        let elapsed = self.last_step.elapsed().as_secs_f64();
        self.last_step = Instant::now();
        self.state.step += 1;
        self.state.epoch = batch.epoch + (batch.step_in_epoch + 1) / steps_per_epoch;
        self.state.step_in_epoch = (batch.step_in_epoch + 1) % steps_per_epoch;
        self.metrics.push(MetricRow {
            step: self.state.step,
            epoch: batch.epoch as u64,
            lr,
            loss_total: l.total,
            losses: l
                .terms
                .iter()
                .map(|&(name, value)| (name.to_owned(), value))
                .collect(),
            cluster_usage_entropy: result.cluster_usage_entropy.unwrap_or(f32::NAN),
            clips_per_s: cfg.batch_size as f64 / elapsed.max(1e-9),
            data_wait_s,
        });
        Ok(self.metrics.last().expect("just pushed"))
    }

    /// Every rank holds the same weights, optimiser state and queue (checked here when there
    /// are several); rank 0 saves them with the metrics so far.
    pub fn checkpoint(&self) -> Result<()> {
        let files = training_state(self.learner.as_ref(), &self.optimizer)?;
        if self.comm.world_size() > 1 {
            let digest = checkpoint::digest(&files)?;
            ensure_in_sync(self.comm, &digest, self.state.step, self.device)?;
        }
        if self.comm.rank() == 0 {
            let dir = checkpoint::save(
                &self.checkpoint_root(),
                &self.state,
                files,
                &self.metrics,
                checkpoint::Keep {
                    last: self.setup.train.keep_last,
                    steps: self.setup.kept_steps,
                },
            )?;
            write_metrics(&self.run_dir.join("metrics.parquet"), &self.metrics)?;
            tracing::info!("step {}: checkpoint {}", self.state.step, dir.display());
        }
        Ok(())
    }

    /// Steps until the run's last step, checkpointing every `train.checkpoint_every` steps,
    /// at the kept steps (`eval.at_steps`) and at the end.
    pub fn run(mut self, progress: &dyn Progress) -> Result<Pretrained> {
        let cfg = self.setup.train;
        progress.start(
            &format!("pre-train {}", self.setup.method),
            self.total,
            "steps",
        );
        progress.advance(self.state.step);
        let mut batches = self.batches();
        loop {
            let waiting = Instant::now();
            let Some(batch) = batches.recv() else { break };
            let batch = batch?;
            let data_wait_s = waiting.elapsed().as_secs_f64();
            if self.state.step >= self.total {
                break;
            }
            let row = self.step(batch, data_wait_s)?;
            progress.message(&format!(
                "loss {:.4} | {:.1} clips/s",
                row.loss_total, row.clips_per_s
            ));
            progress.advance(1);
            let step = self.state.step;
            if step % cfg.checkpoint_every == 0
                || step == self.total
                || self.setup.kept_steps.contains(&step)
            {
                self.checkpoint()?;
            }
        }
        batches.finish()?;
        progress.finish();
        let state_digest =
            checkpoint::digest(&training_state(self.learner.as_ref(), &self.optimizer)?)?;
        tracing::info!(
            "rank {} of {}: {} steps, final state {}",
            self.comm.rank(),
            self.comm.world_size(),
            self.state.step,
            &state_digest[..16]
        );
        Ok(Pretrained {
            steps: self.state.step,
            metrics: self.metrics,
            state_digest,
        })
    }
}

/// A whole pre-training: [`Trainer::new`], [`Trainer::resume`] when `resume`, then
/// [`Trainer::run`].
pub fn pretrain_on(
    setup: PretrainSetup<'_>,
    learner: Box<dyn Learner>,
    run_dir: &Path,
    norm: NormStats,
    resume: bool,
    progress: &dyn Progress,
    (device, comm): (&Device, &dyn Communicator),
) -> Result<Pretrained> {
    let mut trainer = Trainer::new(setup, learner, run_dir, norm, (device, comm), progress)?;
    if resume {
        trainer.resume()?;
    }
    trainer.run(progress)
}

/// Everything a checkpoint holds: the learner's files and the optimiser state.
fn training_state(
    learner: &dyn Learner,
    optimizer: &Optimizer,
) -> Result<Vec<(&'static str, checkpoint::NamedTensors)>> {
    let mut files = learner
        .checkpoint()
        .map_err(Error::tensor("collecting the checkpoint tensors"))?;
    files.push(("optimizer", optimizer.state()));
    Ok(files)
}
