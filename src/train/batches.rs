//! The pre-training data pipeline: background workers (`train.workers`, each making whole
//! batches as a PyTorch DataLoader worker does) turn the corpus (in memory or streamed from
//! disk, [`PretrainCorpus`]) into batches of two
//! augmented views and hand them over through bounded queues, so augmentation overlaps the
//! model's step. Every random choice is a function of (seed, epoch, step, item, worker),
//! and the augmentation banks restart every epoch (as the official workers do), so a resumed
//! run replays the epoch's augmentations up to its position and continues with exactly the
//! batches of an uninterrupted run.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::learner::rank_draw;
use crate::augment::{AugmentConfig, Kmix, TwoViews};
use crate::data::PretrainCorpus;
use crate::error::Result;
use crate::features::{LogMelFrontend, NormStats};
use crate::rng::{stream, stream_indexed};

/// One training batch: two views, `[B, n_mels, frames]` each, flattened.
#[derive(Debug)]
pub struct Batch {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step_in_epoch: usize,
    /// View 1.
    pub view1: Vec<f32>,
    /// View 2.
    pub view2: Vec<f32>,
    /// The corpus index of every clip of the global batch (all ranks, in rank order).
    pub clips: Vec<usize>,
}

/// Everything the producer needs.
#[derive(Clone)]
pub struct BatchPlan {
    /// The clips, in memory or streamed.
    pub corpus: Arc<PretrainCorpus>,
    /// Front end.
    pub frontend: Arc<LogMelFrontend>,
    /// Normalisation statistics.
    pub norm: NormStats,
    /// Augmentations.
    pub augment: AugmentConfig,
    /// k-mix centroids (when k-mix is on).
    pub centroids: Option<Vec<Vec<f32>>>,
    /// Window length in samples.
    pub window: usize,
    /// Clips per batch.
    pub batch_size: usize,
    /// Epochs to produce.
    pub epochs: usize,
    /// Master seed.
    pub seed: u64,
    /// This process's rank and the number of ranks: each rank prepares its own
    /// `batch_size / world` clips of every global batch (1 rank: the whole batch), with
    /// its own augmentation stream; crops stay a function of the clip's global position.
    pub shard: (usize, usize),
    /// Augmentation workers (`train.workers`).
    pub workers: usize,
}

impl BatchPlan {
    /// Full batches per epoch (the last partial batch is dropped: the queue takes whole batches).
    pub fn steps_per_epoch(&self) -> usize {
        self.corpus.len() / self.batch_size
    }

    /// The clip order of `epoch`.
    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.corpus.len()).collect();
        order.shuffle(&mut stream_indexed(self.seed, "train/order", epoch as u64));
        order
    }

    /// Normalised log-mels of the clips of one step, computed in parallel; `first` is the
    /// position of `clips[0]` in the global batch.
    fn spectrograms(
        &self,
        epoch: usize,
        step: usize,
        first: usize,
        clips: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        clips
            .par_iter()
            .enumerate()
            .map(|(k, &clip)| {
                let position = first + k;
                let id =
                    ((epoch * self.steps_per_epoch() + step) * self.batch_size + position) as u64;
                let mut crop = stream_indexed(self.seed, "train/window", id);
                let window = self.corpus.window(clip, self.window, &mut crop)?;
                let mut values = self.frontend.compute(&window).data;
                self.norm.apply(&mut values);
                Ok(values)
            })
            .collect()
    }

    /// Starts the workers at (`epoch`, `step_in_epoch`), each replaying its own earlier
    /// augmentations of that epoch silently; about `prefetch` batches are buffered in all.
    pub fn spawn(self, epoch: usize, step_in_epoch: usize, prefetch: usize) -> Batches {
        let workers = self.workers.max(1);
        let steps_per_epoch = self.steps_per_epoch();
        let plan = Arc::new(self);
        let (queues, handles) = (0..workers)
            .map(|worker| {
                let (tx, rx) = sync_channel(prefetch.div_ceil(workers).max(1));
                let plan = plan.clone();
                let handle = std::thread::spawn(move || {
                    plan.produce(worker, epoch, step_in_epoch, &tx);
                });
                (rx, handle)
            })
            .unzip();
        Batches {
            queues,
            handles,
            next_step: step_in_epoch,
            steps_per_epoch,
        }
    }

    /// Worker `worker`'s loop: the steps `worker`, `worker + workers`, ... of every epoch
    /// from `epoch` on, sent from (`epoch`, `step_in_epoch`) on; returns when the trainer
    /// hangs up or the epochs are done.
    fn produce(
        &self,
        worker: usize,
        epoch: usize,
        step_in_epoch: usize,
        tx: &SyncSender<Result<Batch>>,
    ) {
        let n_mels = self.frontend.config().n_mels;
        let frames = self.frontend.config().n_frames(self.window);
        let workers = self.workers.max(1);
        let (rank, world) = self.shard;
        let per_rank = self.batch_size / world;
        for e in epoch..self.epochs {
            let kmix = match (&self.augment.kmix, &self.centroids) {
                (Some(cfg), Some(c)) => Some(Kmix::new(cfg.clone(), c.clone(), n_mels)),
                _ => None,
            };
            let mut views = TwoViews::new(self.augment.clone(), kmix, n_mels, frames);
            // Every worker of every rank has its own stream (one worker of one rank: `e`).
            let draw = rank_draw(e as u64, rank * workers + worker, world * workers);
            let mut rng = stream_indexed(self.seed, "train/augment", draw);
            let order = self.order(e);
            let first = if e == epoch { step_in_epoch } else { 0 };
            for s in (worker..self.steps_per_epoch()).step_by(workers) {
                let offset = s * self.batch_size + rank * per_rank;
                let clips = &order[offset..offset + per_rank];
                let specs = match self.spectrograms(e, s, rank * per_rank, clips) {
                    Ok(specs) => specs,
                    Err(err) => {
                        // The trainer reports it and hangs up.
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                let mut view1 = Vec::with_capacity(specs.len() * n_mels * frames);
                let mut view2 = Vec::with_capacity(specs.len() * n_mels * frames);
                for spec in &specs {
                    let (a, b) = views.views(spec, &mut rng);
                    view1.extend_from_slice(&a);
                    view2.extend_from_slice(&b);
                }
                let batch = Batch {
                    epoch: e,
                    step_in_epoch: s,
                    view1,
                    view2,
                    clips: order[s * self.batch_size..(s + 1) * self.batch_size].to_vec(),
                };
                if s >= first && tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
        }
    }
}

/// The trainer's end of the data workers: batches in step order, through one bounded queue
/// per worker.
pub struct Batches {
    queues: Vec<Receiver<Result<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    next_step: usize,
    steps_per_epoch: usize,
}

impl Batches {
    /// The next batch in step order, `None` when every epoch has been delivered, or the
    /// error that stopped its worker (an unreadable clip of a streamed corpus).
    pub fn recv(&mut self) -> Option<Result<Batch>> {
        let batch = self.queues[self.next_step % self.queues.len()]
            .recv()
            .ok()?;
        if let Ok(b) = &batch {
            self.next_step = (b.step_in_epoch + 1) % self.steps_per_epoch;
        }
        Some(batch)
    }

    /// Hangs up (each worker stops at its next batch) and waits for the workers; an error
    /// when one of them panicked.
    pub fn finish(self) -> crate::error::Result<()> {
        drop(self.queues);
        for handle in self.handles {
            handle
                .join()
                .map_err(|_| crate::error::Error::Invalid("a data worker panicked".into()))?;
        }
        Ok(())
    }
}

/// k-mix centroids from a seeded sample of the corpus (docs/method.md §3.3.1 with the docs/method.md §13 fix:
/// descriptors are time-means of *normalised* log-mels, L2-normalised, so centroids live in
/// the space they are used in). At most `clusters * 256` points, as faiss subsamples.
pub fn fit_centroids(
    corpus: &PretrainCorpus,
    frontend: &LogMelFrontend,
    norm: &NormStats,
    window: usize,
    cfg: &crate::augment::KmixConfig,
    seed: u64,
) -> crate::error::Result<Vec<Vec<f32>>> {
    let wanted = ((corpus.len() as f64 * cfg.sample_fraction).ceil() as usize)
        .clamp(cfg.clusters, cfg.clusters * 256)
        .min(corpus.len());
    if wanted < cfg.clusters {
        return Err(crate::error::Error::Invalid(format!(
            "k-mix needs at least {} pre-training clips for {} clusters, the corpus has {}",
            cfg.clusters,
            cfg.clusters,
            corpus.len()
        )));
    }
    let mut rng = stream(seed, "kmix/sample");
    let chosen = rand::seq::index::sample(&mut rng, corpus.len(), wanted).into_vec();
    let n_mels = frontend.config().n_mels;
    let descriptors: Vec<Vec<f32>> = chosen
        .par_iter()
        .map(|&i| {
            let mut crop = stream_indexed(seed, "kmix/window", i as u64);
            let mut values = frontend.compute(&corpus.window(i, window, &mut crop)?).data;
            norm.apply(&mut values);
            Ok(crate::augment::descriptor(&values, n_mels))
        })
        .collect::<Result<_>>()?;
    Ok(crate::augment::spherical_kmeans(
        &descriptors,
        cfg.clusters,
        cfg.iterations,
        &mut stream(seed, "kmix/kmeans"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::KmixConfig;
    use crate::features::FrontendConfig;

    /// 12 one-second noise clips, batches of 3 (4 steps per epoch), 2 epochs.
    fn plan(workers: usize) -> BatchPlan {
        let mut rng = stream(1, "test/clips");
        let corpus: Vec<Vec<f32>> = (0..12)
            .map(|_| {
                (0..16_000)
                    .map(|_| rand::Rng::random_range(&mut rng, -0.3..0.3))
                    .collect()
            })
            .collect();
        let frontend = LogMelFrontend::new(&FrontendConfig::default());
        let norm = NormStats {
            mean: -5.0,
            std: 4.0,
            n_clips: 0,
        };
        let kmix = KmixConfig {
            clusters: 2,
            warmup: 2,
            top_k: 4,
            bank_size: 8,
            sample_fraction: 0.5,
            ..KmixConfig::default()
        };
        let augment = AugmentConfig {
            kmix: Some(kmix.clone()),
            ..AugmentConfig::default()
        };
        let window = 15_200;
        let corpus = PretrainCorpus::InMemory(corpus);
        let centroids = fit_centroids(&corpus, &frontend, &norm, window, &kmix, 1).unwrap();
        BatchPlan {
            corpus: Arc::new(corpus),
            frontend: Arc::new(frontend),
            norm,
            augment,
            centroids: Some(centroids),
            window,
            batch_size: 3,
            epochs: 2,
            seed: 1,
            shard: (0, 1),
            workers,
        }
    }

    fn drain(mut batches: Batches) -> Vec<Batch> {
        let all = std::iter::from_fn(|| batches.recv().map(Result::unwrap)).collect();
        batches.finish().unwrap();
        all
    }

    #[test]
    fn workers_deliver_in_step_order_and_resume_exactly() {
        for workers in [1, 3] {
            let full = drain(plan(workers).spawn(0, 0, 2));
            let order: Vec<(usize, usize)> =
                full.iter().map(|b| (b.epoch, b.step_in_epoch)).collect();
            let expected: Vec<(usize, usize)> =
                (0..2).flat_map(|e| (0..4).map(move |s| (e, s))).collect();
            assert_eq!(order, expected, "{workers} workers");
            // Resumed at epoch 0, step 2: the same batches as the uninterrupted stream.
            let resumed = drain(plan(workers).spawn(0, 2, 2));
            assert_eq!(resumed.len(), full.len() - 2);
            for (a, b) in resumed.iter().zip(&full[2..]) {
                assert_eq!((a.epoch, a.step_in_epoch), (b.epoch, b.step_in_epoch));
                assert!(
                    a.view1 == b.view1 && a.view2 == b.view2,
                    "{workers} workers"
                );
            }
        }
    }

    #[test]
    fn each_worker_augments_with_its_own_stream() {
        // The first batch (worker 0) is the same with 1 or 3 workers; the second comes from
        // worker 1's stream and bank with 3 workers, so it differs.
        let one = drain(plan(1).spawn(0, 0, 2));
        let three = drain(plan(3).spawn(0, 0, 2));
        assert_eq!(one[0].view1, three[0].view1);
        assert_ne!(one[1].view1, three[1].view1);
    }
}
