//! The pre-training data pipeline: a background thread turns the in-memory corpus into
//! batches of two augmented views and hands them over through a bounded queue, so augmentation
//! overlaps the model's step. Every random choice is a function of (seed, epoch, step,
//! item), and the augmentation banks restart every epoch (as the official workers do), so a
//! resumed run replays the epoch's augmentations up to its position and continues with
//! exactly the batches of an uninterrupted run.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::audio::{fixed_window, WindowMode};
use crate::augment::{AugmentConfig, Kmix, TwoViews};
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
}

/// Everything the producer needs.
pub struct BatchPlan {
    /// Decoded clips at the model rate.
    pub corpus: Arc<Vec<Vec<f32>>>,
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
    ) -> Vec<Vec<f32>> {
        clips
            .par_iter()
            .enumerate()
            .map(|(k, &clip)| {
                let position = first + k;
                let id =
                    ((epoch * self.steps_per_epoch() + step) * self.batch_size + position) as u64;
                let mut crop = stream_indexed(self.seed, "train/window", id);
                let window = fixed_window(
                    &self.corpus[clip],
                    self.window,
                    WindowMode::Random(&mut crop),
                );
                let mut values = self.frontend.compute(&window).data;
                self.norm.apply(&mut values);
                values
            })
            .collect()
    }

    /// Starts the producer at (`epoch`, `step_in_epoch`), replaying that epoch's earlier
    /// augmentations silently; `prefetch` batches are buffered.
    pub fn spawn(
        self,
        epoch: usize,
        step_in_epoch: usize,
        prefetch: usize,
    ) -> (Receiver<Batch>, JoinHandle<()>) {
        let (tx, rx) = sync_channel(prefetch);
        let handle = std::thread::spawn(move || {
            let n_mels = self.frontend.config().n_mels;
            let frames = self.frontend.config().n_frames(self.window);
            for e in epoch..self.epochs {
                let kmix = match (&self.augment.kmix, &self.centroids) {
                    (Some(cfg), Some(c)) => Some(Kmix::new(cfg.clone(), c.clone(), n_mels)),
                    _ => None,
                };
                let mut views = TwoViews::new(self.augment.clone(), kmix, n_mels, frames);
                let (rank, world) = self.shard;
                let draw = super::step::rank_draw(e as u64, rank, world);
                let mut rng = stream_indexed(self.seed, "train/augment", draw);
                let order = self.order(e);
                let first = if e == epoch { step_in_epoch } else { 0 };
                let per_rank = self.batch_size / world;
                for s in 0..self.steps_per_epoch() {
                    let offset = s * self.batch_size + rank * per_rank;
                    let clips = &order[offset..offset + per_rank];
                    let specs = self.spectrograms(e, s, rank * per_rank, clips);
                    let mut view1 = Vec::with_capacity(specs.len() * n_mels * frames);
                    let mut view2 = Vec::with_capacity(specs.len() * n_mels * frames);
                    for spec in &specs {
                        let (a, b) = views.views(spec, &mut rng);
                        view1.extend_from_slice(&a);
                        view2.extend_from_slice(&b);
                    }
                    if s >= first
                        && tx
                            .send(Batch {
                                epoch: e,
                                step_in_epoch: s,
                                view1,
                                view2,
                            })
                            .is_err()
                    {
                        return;
                    }
                }
            }
        });
        (rx, handle)
    }
}

/// k-mix centroids from a seeded sample of the corpus (SPEC 3.3.1 with the SPEC 13 fix:
/// descriptors are time-means of *normalised* log-mels, L2-normalised, so centroids live in
/// the space they are used in). At most `clusters * 256` points, as faiss subsamples.
pub fn fit_centroids(
    corpus: &[Vec<f32>],
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
            let mut values = frontend
                .compute(&fixed_window(
                    &corpus[i],
                    window,
                    WindowMode::Random(&mut crop),
                ))
                .data;
            norm.apply(&mut values);
            crate::augment::descriptor(&values, n_mels)
        })
        .collect();
    Ok(crate::augment::spherical_kmeans(
        &descriptors,
        cfg.clusters,
        cfg.iterations,
        &mut stream(seed, "kmix/kmeans"),
    ))
}
