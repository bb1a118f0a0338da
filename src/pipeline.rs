//! The stages of an experiment that exist so far, as library functions the binary calls:
//! task features (decode, window, log-mel, cache), normalisation statistics from the
//! pre-training corpus, and the bag-of-frames floor.

use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::audio::{fixed_window, WindowMode};
use crate::cache::{FeatureCache, SplitFeatures};
use crate::data::{load_clips, pretrain_clips, ClipAudio, Split, Task};
use crate::error::{Error, Result};
use crate::eval::{bag_of_frames, linear_probe, ProbeOutcome, ProbeSet};
use crate::features::{LogMelFrontend, NormStats, NormalizationConfig};
use crate::progress::Progress;
use crate::spec::ExperimentSpec;

/// The train, valid and test features of one task.
#[derive(Debug, Clone)]
pub struct TaskFeatures {
    /// Task name.
    pub task: String,
    /// Train, valid, test.
    pub splits: [SplitFeatures; 3],
}

/// Computes (or reads from `cache`) the log-mel of every clip of `task`, one deterministic
/// centred window per clip.
pub fn task_features(
    spec: &ExperimentSpec,
    task: &Task,
    cache: &FeatureCache,
    progress: &dyn Progress,
) -> Result<TaskFeatures> {
    let frontend = LogMelFrontend::new(&spec.frontend);
    let window = spec.frontend.samples(task.window_seconds);
    let splits = Split::ALL.map(|split| -> Result<SplitFeatures> {
        let path = cache.path(&spec.frontend, task, split, spec.data.skip_bad_files);
        if let Some(hit) = cache.load(&path) {
            tracing::info!(
                "{} {split}: {} clips from cache {}",
                task.name,
                hit.labels.len(),
                path.display()
            );
            return Ok(hit);
        }
        let clips: Vec<_> = task.split(split).collect();
        let audio: Vec<ClipAudio> = clips.iter().map(|c| c.audio.clone()).collect();
        let loaded = load_clips(
            &audio,
            spec.frontend.sample_rate,
            spec.data.skip_bad_files,
            &format!("{} {split}", task.name),
            progress,
        )?;
        if loaded.loaded.is_empty() {
            return Err(Error::Invalid(format!(
                "task `{}` {split}: every clip was unreadable",
                task.name
            )));
        }
        let windows: Vec<Vec<f32>> = loaded
            .loaded
            .iter()
            .map(|(_, s)| fixed_window::<rand_chacha::ChaCha8Rng>(s, window, WindowMode::Centre))
            .collect();
        let features = SplitFeatures {
            task: task.name.clone(),
            split,
            classes: task.classes.clone(),
            ids: loaded
                .loaded
                .iter()
                .map(|(i, _)| clips[*i].audio.id())
                .collect(),
            labels: loaded.loaded.iter().map(|(i, _)| clips[*i].label).collect(),
            spectrograms: frontend.compute_batch(&windows),
            skipped: loaded.skipped.len(),
        };
        cache.store(&path, &features)?;
        tracing::info!(
            "{} {split}: {} clips -> {}",
            task.name,
            features.labels.len(),
            path.display()
        );
        Ok(features)
    });
    let [train, valid, test] = splits;
    Ok(TaskFeatures {
        task: task.name.clone(),
        splits: [train?, valid?, test?],
    })
}

/// Global scalar mean/std of log-mel values over a seeded sample of pre-training clips, one
/// random pre-training window each (SPEC 2.4 option b).
pub fn normalization_stats(spec: &ExperimentSpec, progress: &dyn Progress) -> Result<NormStats> {
    let NormalizationConfig::Precomputed { sample_clips } = spec.normalization;
    let corpus = pretrain_clips(&spec.data.pretrain, spec.seed)?;
    let mut rng = crate::rng::stream(spec.seed, "normalization/sample");
    let mut chosen = sample(&mut rng, corpus.len(), sample_clips.min(corpus.len())).into_vec();
    chosen.sort_unstable();
    let picked: Vec<ClipAudio> = chosen.iter().map(|&i| corpus[i].clone()).collect();
    let loaded = load_clips(
        &picked,
        spec.frontend.sample_rate,
        spec.data.skip_bad_files,
        "normalisation sample",
        progress,
    )?;
    let window = spec.frontend.samples(spec.data.window_seconds);
    let windows: Vec<Vec<f32>> = loaded
        .loaded
        .iter()
        .map(|(i, s)| {
            let mut crop =
                crate::rng::stream_indexed(spec.seed, "normalization/window", chosen[*i] as u64);
            fixed_window(s, window, WindowMode::Random(&mut crop))
        })
        .collect();
    let spectrograms = LogMelFrontend::new(&spec.frontend).compute_batch(&windows);
    NormStats::from_spectrograms(&spectrograms)
}

/// The floor of one task: a linear probe on bag-of-frames features, per seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorResult {
    /// Task name.
    pub task: String,
    /// Number of classes.
    pub classes: usize,
    /// Clips in train, valid, test.
    pub sizes: [usize; 3],
    /// One probe per seed.
    pub seeds: Vec<ProbeOutcome>,
}

impl FloorResult {
    /// Mean and (population) standard deviation of the test accuracy over seeds.
    pub fn test_accuracy(&self) -> (f64, f64) {
        mean_std(self.seeds.iter().map(|s| s.test_accuracy))
    }
}

/// Mean and population standard deviation.
pub fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Fits the bag-of-frames probe of a task with every probe seed.
pub fn bag_of_frames_floor(spec: &ExperimentSpec, features: &TaskFeatures) -> Result<FloorResult> {
    let sets: Vec<(Vec<f32>, Vec<usize>)> = features
        .splits
        .iter()
        .map(|s| {
            (
                s.spectrograms.iter().flat_map(bag_of_frames).collect(),
                s.labels.clone(),
            )
        })
        .collect();
    let dim = 2 * spec.frontend.n_mels;
    let view = |i: usize| ProbeSet {
        x: &sets[i].0,
        y: &sets[i].1,
    };
    let classes = features.splits[0].classes.len();
    let seeds = (0..spec.probe.seeds as u64)
        .map(|k| {
            linear_probe(
                &spec.probe,
                dim,
                classes,
                view(0),
                view(1),
                view(2),
                spec.seed.wrapping_add(k),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FloorResult {
        task: features.task.clone(),
        classes,
        sizes: [sets[0].1.len(), sets[1].1.len(), sets[2].1.len()],
        seeds,
    })
}
