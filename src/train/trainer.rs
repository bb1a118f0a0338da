//! The pre-training loop: builds the spec's learner (SLICER or a baseline, see
//! [`crate::methods`]) and the optimiser from the seed, consumes batches from the background
//! pipeline, steps, checkpoints and resumes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

use super::batches::{fit_centroids, BatchPlan};
use super::step::{rank_draw, StepBatch};
use crate::checkpoint::{self, TrainState};
use crate::data::{load_clips, pretrain_clips};
use crate::distributed::{average_gradients, average_running_stats, ensure_in_sync, Communicator};
use crate::error::{Error, Result};
use crate::features::{LogMelFrontend, NormStats};
use crate::methods::{Learner, Method};
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::results::{write_metrics, MetricRow};
use crate::spec::ExperimentSpec;

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

/// Pre-trains per `spec` in `run_dir` (checkpoints in `run_dir/checkpoints`, metrics in
/// `run_dir/metrics.parquet`) on the spec's device, as one rank of the job `experiment
/// launch` started or as the only process. With `resume`, continues from the newest
/// checkpoint there.
pub fn pretrain(
    spec: &ExperimentSpec,
    run_dir: &Path,
    norm: NormStats,
    resume: bool,
    progress: &dyn Progress,
) -> Result<Pretrained> {
    let device = spec.device.open()?;
    let comm = crate::distributed::from_env(&device)?;
    pretrain_on(
        spec,
        run_dir,
        norm,
        resume,
        progress,
        &device,
        comm.as_ref(),
    )
}

/// [`pretrain`] as rank `comm.rank()` of `comm.world_size()` on `device`: each rank trains on
/// its shard of every batch, and only rank 0 writes. At every checkpoint the ranks check that
/// their states are identical ([`crate::distributed::ensure_in_sync`]).
pub fn pretrain_on(
    spec: &ExperimentSpec,
    run_dir: &Path,
    norm: NormStats,
    resume: bool,
    progress: &dyn Progress,
    device: &candle_core::Device,
    comm: &dyn Communicator,
) -> Result<Pretrained> {
    let _precision = crate::model::autocast(spec.precision);
    let cfg = &spec.train;
    let n_mels = spec.frontend.n_mels;
    let frontend = Arc::new(LogMelFrontend::new(&spec.frontend));
    let window = spec.frontend.samples(spec.data.window_seconds);

    let clips = pretrain_clips(&spec.data.pretrain, spec.seed)?;
    let loaded = load_clips(
        &clips,
        spec.frontend.sample_rate,
        spec.data.skip_bad_files,
        "decode pre-training audio",
        progress,
    )?;
    let corpus: Arc<Vec<Vec<f32>>> = Arc::new(loaded.loaded.into_iter().map(|(_, s)| s).collect());
    if corpus.len() < cfg.batch_size {
        return Err(Error::Invalid(format!(
            "the pre-training corpus has {} usable clips, fewer than train.batch_size = {}",
            corpus.len(),
            cfg.batch_size
        )));
    }
    let centroids = match &spec.augment.kmix {
        Some(k) => Some(fit_centroids(
            &corpus, &frontend, &norm, window, k, spec.seed,
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
    let mut learner = crate::methods::learner(spec, device)?;
    let params = learner.params();
    let mut optimizer = Optimizer::new(spec.optimizer.clone(), params.len());
    let ckpt_root = run_dir.join("checkpoints");
    let spec_hash = spec.hash();
    let mut state = TrainState {
        step: 0,
        epoch: 0,
        step_in_epoch: 0,
        spec_hash: spec_hash.clone(),
        seed: spec.seed,
    };
    let mut metrics: Vec<MetricRow> = Vec::new();
    if resume {
        if let Some(latest) = checkpoint::list(&ckpt_root)?.pop() {
            let (saved, tensors) = checkpoint::load(&latest, device)?;
            if saved.spec_hash != spec_hash {
                return Err(Error::Invalid(format!(
                    "{}: the checkpoint was written by spec {} but this spec hashes to {}; resume with the run's own spec.yaml",
                    latest.display(),
                    &saved.spec_hash[..8],
                    &spec_hash[..8]
                )));
            }
            learner
                .restore(&tensors)
                .map_err(Error::checkpoint(&latest))?;
            optimizer
                .load_state(saved.step, tensors.file("optimizer")?)
                .map_err(Error::tensor("restoring the optimiser"))
                .map_err(Error::checkpoint(&latest))?;
            metrics = crate::results::read_metrics(&latest.join("metrics.parquet"))?;
            tracing::info!("resuming from {} (step {})", latest.display(), saved.step);
            state = saved;
        } else {
            tracing::info!(
                "no checkpoint in {}: starting from step 0",
                ckpt_root.display()
            );
        }
    }

    let plan = BatchPlan {
        corpus,
        frontend: frontend.clone(),
        norm,
        augment: spec.augment.clone(),
        centroids,
        window,
        batch_size: cfg.batch_size,
        epochs: cfg.epochs,
        seed: spec.seed,
        shard: (rank, world),
        workers: cfg.workers,
    };
    let steps_per_epoch = plan.steps_per_epoch();
    if let Some(warning) = queue_warning(spec, steps_per_epoch * cfg.batch_size) {
        tracing::warn!("{warning}");
    }
    let total = cfg
        .max_steps
        .unwrap_or(u64::MAX)
        .min((cfg.epochs * steps_per_epoch) as u64);
    let frames = spec.frontend.n_frames(window);
    progress.start(&format!("pre-train {}", spec.method.name()), total, "steps");
    progress.advance(state.step);
    let mut batches = plan.spawn(state.epoch, state.step_in_epoch, cfg.prefetch);
    let mut last = Instant::now();
    loop {
        let waiting = Instant::now();
        let Some(batch) = batches.recv() else { break };
        let data_wait_s = waiting.elapsed().as_secs_f64();
        if state.step >= total {
            break;
        }
        let shape = (cfg.batch_size / world, 1, n_mels, frames);
        let x1 =
            Tensor::from_vec(batch.view1, shape, device).map_err(Error::tensor("view 1 batch"))?;
        let x2 =
            Tensor::from_vec(batch.view2, shape, device).map_err(Error::tensor("view 2 batch"))?;
        let lr = spec.schedule.lr(spec.optimizer.lr(), state.step, total);
        let mut result = learner
            .step(&StepBatch {
                x1: &x1,
                x2: &x2,
                clips: &batch.clips,
                comm,
                seed: spec.seed,
                draw: rank_draw(state.step, rank, world),
                progress: state.step as f64 / total as f64,
            })
            .map_err(Error::tensor(format!("training step {}", state.step + 1)))?;
        average_gradients(comm, &params, &mut result.grads)
            .map_err(Error::tensor("averaging gradients over ranks"))?;
        let l = result.losses;
        if !l.total.is_finite() {
            let kept = checkpoint::list(&ckpt_root)?
                .pop()
                .map_or("none yet".to_owned(), |p| p.display().to_string());
            return Err(Error::Invalid(format!(
                "non-finite loss at step {} (epoch {}): {l:?}; stopped without saving. Last good checkpoint: {kept}. Try a lower learning rate.",
                state.step + 1,
                batch.epoch,
            )));
        }
        optimizer
            .step(&params, &result.grads, lr)
            .map_err(Error::tensor("the optimiser step"))?;
        learner
            .after_update()
            .map_err(Error::tensor("the update after the optimiser step"))?;
        average_running_stats(comm, &learner.encoders())
            .map_err(Error::tensor("averaging BatchNorm statistics over ranks"))?;
        let elapsed = last.elapsed().as_secs_f64();
        last = Instant::now();
        state.step += 1;
        state.epoch = batch.epoch + (batch.step_in_epoch + 1) / steps_per_epoch;
        state.step_in_epoch = (batch.step_in_epoch + 1) % steps_per_epoch;
        let row = MetricRow {
            step: state.step,
            epoch: batch.epoch as u64,
            lr,
            loss_total: l.total,
            loss_instance_a: l.instance_a,
            loss_instance_b: l.instance_b,
            loss_cluster: l.cluster,
            entropy_term: l.entropy,
            cluster_usage_entropy: result.cluster_usage_entropy.unwrap_or(f32::NAN),
            clips_per_s: cfg.batch_size as f64 / elapsed.max(1e-9),
            data_wait_s,
        };
        progress.message(&format!(
            "loss {:.4} | {:.1} clips/s",
            row.loss_total, row.clips_per_s
        ));
        progress.advance(1);
        metrics.push(row);
        // Every rank holds the same weights, optimiser state and queue (checked here);
        // rank 0 saves them.
        if state.step % cfg.checkpoint_every == 0 || state.step == total {
            let files = training_state(learner.as_ref(), &optimizer)?;
            if world > 1 {
                ensure_in_sync(comm, &checkpoint::digest(&files)?, state.step, device)?;
            }
            if rank == 0 {
                let dir = checkpoint::save(&ckpt_root, &state, files, &metrics, cfg.keep_last)?;
                write_metrics(&run_dir.join("metrics.parquet"), &metrics)?;
                tracing::info!("step {}: checkpoint {}", state.step, dir.display());
            }
        }
    }
    batches.finish()?;
    progress.finish();
    let state_digest = checkpoint::digest(&training_state(learner.as_ref(), &optimizer)?)?;
    tracing::info!(
        "rank {rank} of {world}: {} steps, final state {}",
        state.step,
        &state_digest[..16]
    );
    Ok(Pretrained {
        steps: state.step,
        metrics,
        state_digest,
    })
}

/// The warning for a method's key queue that holds more keys than an epoch enqueues (then
/// every query meets keys of its own clip, other crops, among its negatives), unless the
/// same-clip mask is on; `None` when there is nothing to warn about.
fn queue_warning(spec: &ExperimentSpec, clips_per_epoch: usize) -> Option<String> {
    let has_queue = matches!(spec.method, Method::Slicer | Method::DeloresM);
    // SLICER enqueues both views' keys, two per clip and epoch.
    let keys_per_epoch = clips_per_epoch * if spec.method == Method::Slicer { 2 } else { 1 };
    (has_queue && spec.objective.queue_size > keys_per_epoch && !spec.objective.mask_same_clip)
        .then(|| {
            format!(
                "objective.queue_size = {} holds more keys than one epoch enqueues ({keys_per_epoch} from {clips_per_epoch} clips): queries meet keys of their own clip as negatives. Set objective.mask_same_clip: true, or a queue_size of at most {keys_per_epoch}",
                spec.objective.queue_size
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_longer_than_an_epoch_is_warned_about_unless_masked() {
        let text =
            "data:\n  pretrain: {type: synthetic, clips: 600}\nobjective: {queue_size: 4096}\n";
        let mut spec = crate::spec::LoadedSpec::from_text(
            std::path::Path::new("test.yaml"),
            text.to_owned(),
            &[],
        )
        .unwrap()
        .spec;
        let warning = queue_warning(&spec, 576).expect("4096 keys > 1152 per epoch");
        assert!(warning.contains("mask_same_clip: true") && warning.contains("at most 1152"));
        assert!(
            queue_warning(&spec, 2048).is_none(),
            "4096 keys = one epoch of 2048 clips"
        );
        spec.objective.mask_same_clip = true;
        assert!(queue_warning(&spec, 576).is_none());
        spec.objective.mask_same_clip = false;
        spec.method = Method::ByolA;
        assert!(queue_warning(&spec, 576).is_none(), "no queue");
    }
}
