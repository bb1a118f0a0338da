//! The stages of an experiment as library functions the binary calls: task features
//! (decode, window, log-mel, cache), normalisation statistics from the pre-training corpus,
//! the bag-of-frames floor, and frozen-encoder embeddings scored by linear probes.

use std::path::{Path, PathBuf};

use rand::seq::index::sample;

use crate::audio::{fixed_window, real_span, WindowMode};
use crate::cache::{
    CachedClip, EmbeddingCache, Embeddings, FeatureCache, SplitFeatures, SplitHeader,
};
use crate::checkpoint;
use crate::data::{map_clips, pretrain_clips, ClipAudio, ClipLoad, Split, Task};
use crate::error::{Error, Result};
use crate::eval::{
    bag_of_frames, embed_spectrograms, encoder_hash, few_shot_scores, finetune_scores,
    linear_scores, logistic_scores, read_precomputed, recalibrated, BuiltinEncoder, EncoderChoice,
    EvalConfig, FinetuneData, InputNormalization, PrecomputedEmbeddings, ProbeInputs, ProbeSet,
    Protocol, ScoreContext, FLOOR_ENCODER,
};
use crate::features::{batches, FrontendConfig, LogMelFrontend, NormStats, NormalizationConfig};
use crate::methods::initial_encoder;
use crate::model::Encoder;
use crate::pretrained::PretrainedEncoder;
use crate::progress::Progress;
use crate::results::ScoreRow;
use crate::spec::ExperimentSpec;

/// The train, valid and test features of one task.
#[derive(Debug, Clone)]
pub struct TaskFeatures {
    /// Task name.
    pub task: String,
    /// Train, valid, test.
    pub splits: [SplitFeatures; 3],
    /// Their feature-cache files (the embedding cache keys on them).
    pub paths: [PathBuf; 3],
}

/// Computes (or reads from `cache`) the log-mel of every clip of `task` with the spec's
/// front end, one deterministic centred window per clip.
pub fn task_features(
    spec: &ExperimentSpec,
    task: &Task,
    cache: &FeatureCache,
    progress: &dyn Progress,
) -> Result<TaskFeatures> {
    task_features_with(spec, &spec.frontend, task, cache, progress)
}

/// [`task_features`] with another front end (an external encoder's own).
pub fn task_features_with(
    spec: &ExperimentSpec,
    frontend_config: &FrontendConfig,
    task: &Task,
    cache: &FeatureCache,
    progress: &dyn Progress,
) -> Result<TaskFeatures> {
    let paths = Split::ALL.map(|split| {
        cache.path(
            frontend_config,
            task,
            split,
            spec.data.skip_bad_files,
            spec.eval.feature_precision,
        )
    });
    let mut splits = Vec::with_capacity(3);
    for (split, path) in Split::ALL.into_iter().zip(&paths) {
        let features = match cache.load(path) {
            Some(hit) => {
                tracing::info!(
                    "{} {split}: {} clips from cache {}",
                    task.name,
                    hit.labels.len(),
                    path.display()
                );
                hit
            }
            None => split_features(spec, frontend_config, task, split, cache, path, progress)?,
        };
        splits.push(features);
    }
    Ok(TaskFeatures {
        task: task.name.clone(),
        splits: splits.try_into().expect("three splits"),
        paths,
    })
}

/// Decodes, windows and turns into log-mels one split of `task`, a cache chunk at a time,
/// writing each chunk before the next is decoded.
fn split_features(
    spec: &ExperimentSpec,
    frontend_config: &FrontendConfig,
    task: &Task,
    split: Split,
    cache: &FeatureCache,
    path: &Path,
    progress: &dyn Progress,
) -> Result<SplitFeatures> {
    let frontend = LogMelFrontend::new(frontend_config);
    let window = frontend_config.samples(task.window_seconds);
    let shape = (frontend_config.n_mels, frontend_config.n_frames(window));
    let clips: Vec<_> = task.split(split).collect();
    let audio: Vec<ClipAudio> = clips.iter().map(|c| c.audio.clone()).collect();
    let header = SplitHeader {
        task: task.name.clone(),
        split,
        classes: task.classes.clone(),
    };
    let mut writer = cache.writer(path, header, shape, spec.eval.feature_precision)?;
    let load = ClipLoad {
        sample_rate: frontend_config.sample_rate,
        skip_bad_files: spec.data.skip_bad_files,
        label: &format!("{} {split}", task.name),
        progress,
    };
    // Each clip keeps its log-mel and real frames: the decoded audio is dropped as soon as
    // its window is computed.
    let keep = |i: usize, samples: Vec<f32>| {
        let cut = fixed_window::<rand_chacha::ChaCha8Rng>(&samples, window, WindowMode::Centre);
        CachedClip {
            id: clips[i].audio.id(),
            label: clips[i].label,
            real_frames: frontend_config.frames_of_span(real_span(samples.len(), window), window),
            logmel: frontend.compute(&cut).data,
        }
    };
    load.in_chunks(&audio, writer.chunk_clips(), keep, |part| {
        writer.skipped(part.skipped.len());
        writer.write_chunk(part.loaded.into_iter().map(|(_, clip)| clip).collect())
    })?;
    if writer.clips() == 0 {
        return Err(Error::Invalid(format!(
            "task `{}` {split}: every clip was unreadable",
            task.name
        )));
    }
    let features = writer.finish()?;
    tracing::info!(
        "{} {split}: {} clips -> {}",
        task.name,
        features.labels.len(),
        path.display()
    );
    Ok(features)
}

/// Global scalar mean/std of log-mel values over a seeded sample of pre-training clips, one
/// random pre-training window each (docs/method.md §2.4 option b).
pub fn normalization_stats(spec: &ExperimentSpec, progress: &dyn Progress) -> Result<NormStats> {
    let NormalizationConfig::Precomputed { sample_clips } = spec.normalization;
    let corpus = pretrain_clips(&spec.data.pretrain, spec.seed)?;
    let mut rng = crate::rng::stream(spec.seed, "normalization/sample");
    let mut chosen = sample(&mut rng, corpus.len(), sample_clips.min(corpus.len())).into_vec();
    chosen.sort_unstable();
    let picked: Vec<ClipAudio> = chosen.iter().map(|&i| corpus[i].clone()).collect();
    let window = spec.frontend.samples(spec.data.window_seconds);
    let frontend = LogMelFrontend::new(&spec.frontend);
    // One window per clip, cut and turned into log-mels as each clip loads: memory holds one
    // spectrogram per sampled clip, not the clips.
    let spectrograms: Vec<Vec<f32>> = map_clips(
        &picked,
        spec.frontend.sample_rate,
        spec.data.skip_bad_files,
        "normalisation sample",
        progress,
        |i, samples: Vec<f32>| {
            let mut crop =
                crate::rng::stream_indexed(spec.seed, "normalization/window", chosen[i] as u64);
            let cut = fixed_window(&samples, window, WindowMode::Random(&mut crop));
            frontend.compute(&cut).data
        },
    )?
    .loaded
    .into_iter()
    .map(|(_, values)| values)
    .collect();
    NormStats::from_values(spectrograms.iter().map(Vec::as_slice))
}

/// The scores of the bag-of-frames floor on one task (encoder `bag_of_frames`).
pub fn floor_scores(
    spec: &ExperimentSpec,
    ctx: &ScoreContext,
    features: &TaskFeatures,
) -> Result<Vec<ScoreRow>> {
    let floor_of = |s: &SplitFeatures| -> Result<(Vec<f32>, Vec<usize>)> {
        let mut x = Vec::with_capacity(s.labels.len() * 2 * spec.frontend.n_mels);
        let batch_size = spec.eval.batch_size.max(1);
        for (k, batch) in batches(&s.spectrograms, batch_size).enumerate() {
            for (spectrogram, &real) in batch?.iter().zip(&s.real_frames[k * batch_size..]) {
                let frames = if spec.eval.exclude_padding {
                    real
                } else {
                    (0, spectrogram.n_frames)
                };
                x.extend(bag_of_frames(spectrogram, frames));
            }
        }
        Ok((x, s.labels.clone()))
    };
    let [train, valid, test] = &features.splits;
    let sets = [floor_of(train)?, floor_of(valid)?, floor_of(test)?];
    probe_sets(
        spec,
        ctx,
        FLOOR_ENCODER,
        features,
        &sets,
        2 * spec.frontend.n_mels,
    )
}

fn probe_sets(
    spec: &ExperimentSpec,
    ctx: &ScoreContext,
    encoder: &str,
    features: &TaskFeatures,
    sets: &[(Vec<f32>, Vec<usize>); 3],
    dim: usize,
) -> Result<Vec<ScoreRow>> {
    let inputs = ProbeInputs {
        encoder,
        task: &features.task,
        dim,
        classes: features.splits[0].classes.len(),
        sets: sets.each_ref().map(|(x, y)| ProbeSet { x, y }),
    };
    let mut rows = logistic_scores(&spec.probe, ctx, inputs)?;
    rows.extend(few_shot_scores(
        &spec.probe.protocols,
        spec.probe.few_shot.as_ref(),
        ctx,
        inputs,
    )?);
    rows.extend(linear_scores(&spec.probe, ctx, inputs)?);
    Ok(rows)
}

/// An encoder to evaluate, with its name in the tables.
pub struct NamedEncoder {
    /// `slicer`, `slicer@186`, `random_init`, ...
    pub name: String,
    /// The pre-training steps behind its weights: the checkpoint's step, 0 for the seeded
    /// initial weights, `None` for weights from elsewhere.
    pub step: Option<u64>,
    /// The frozen encoder.
    pub encoder: Encoder,
    /// The pre-training statistics that came with its weights, if any.
    pub own_norm: Option<NormStats>,
    /// The front end its log-mels are made with: the spec's for the run's own encoders,
    /// the weights' own for external ones.
    pub frontend: FrontendConfig,
}

/// The networks `spec.eval.encoders` names: the run's checkpoints (the newest, and those of
/// `eval.at_steps`; student or teacher per `eval.weights`), the seeded initial weights, and
/// external weights (precomputed embeddings have no network: [`precomputed_embeddings`]).
pub fn encoders_to_evaluate(spec: &ExperimentSpec, run_dir: &Path) -> Result<Vec<NamedEncoder>> {
    let device = spec.device.open()?;
    let mut out = Vec::new();
    for choice in &spec.eval.encoders {
        let name = choice.name(spec.method.name()).to_owned();
        let named = |name: String, step, model: PretrainedEncoder, frontend| -> Result<_> {
            Ok(NamedEncoder {
                name,
                step,
                encoder: model
                    .encoder
                    .to_device(&device)
                    .map_err(Error::tensor("moving the encoder to its device"))?,
                own_norm: model.config.normalization,
                frontend,
            })
        };
        match choice {
            // `random_init`, and the "pre-trained" encoder of a method that trains nothing.
            EncoderChoice::Builtin(builtin)
                if *builtin == BuiltinEncoder::RandomInit || !spec.method.pretrains() =>
            {
                let encoder = initial_encoder(&spec.method_setup(), &device)
                    .map_err(Error::tensor("initialising the random_init encoder"))?;
                out.push(NamedEncoder {
                    name,
                    step: Some(0),
                    encoder,
                    own_norm: None,
                    frontend: spec.frontend.clone(),
                });
            }
            EncoderChoice::Builtin(_) => {
                for (step, dir) in checkpoints_to_evaluate(spec, run_dir)? {
                    let model =
                        PretrainedEncoder::from_checkpoint(run_dir, &dir, spec.eval.weights)?;
                    tracing::info!("evaluating {}", model.config.source);
                    out.push(named(step.0, Some(step.1), model, spec.frontend.clone())?);
                }
            }
            EncoderChoice::Precomputed { .. } => {}
            EncoderChoice::External { external } => {
                let source = &external.source;
                let model = PretrainedEncoder::load(source, spec.eval.weights)?;
                let own = &model.config.frontend;
                if own.n_mels != spec.frontend.n_mels {
                    return Err(Error::Invalid(format!(
                        "eval.encoders: {source} takes {} mel bands, this spec's front end makes {}; set frontend.n_mels to {}",
                        own.n_mels, spec.frontend.n_mels, own.n_mels
                    )));
                }
                if own.sample_rate != spec.frontend.sample_rate {
                    return Err(Error::Invalid(format!(
                        "eval.encoders: {source} takes {} Hz audio, this spec's front end {} Hz; set frontend.sample_rate to {}",
                        own.sample_rate, spec.frontend.sample_rate, own.sample_rate
                    )));
                }
                if own != &spec.frontend {
                    tracing::info!("{source}: evaluated on log-mels of its own front end ({:?} mels, {:?} filter normalisation)", own.mel_scale, own.mel_norm);
                }
                let frontend = own.clone();
                out.push(named(name, None, model, frontend)?);
            }
        }
    }
    Ok(out)
}

/// The checkpoints of the run in `run_dir` to evaluate, each with its table name and step:
/// those of `eval.at_steps` before the newest (`slicer@186`), then the newest (`slicer`).
fn checkpoints_to_evaluate(
    spec: &ExperimentSpec,
    run_dir: &Path,
) -> Result<Vec<((String, u64), PathBuf)>> {
    let root = run_dir.join("checkpoints");
    let Some(latest) = checkpoint::list(&root)?.pop() else {
        return Err(Error::Dataset {
            path: root,
            message: "no checkpoint to evaluate; pre-train first (--stage pretrain) or drop `pretrained` from eval.encoders".into(),
        });
    };
    let kept = checkpoint::list(&root)?;
    let final_step = checkpoint::step_of(&latest)?;
    let method = spec.method.name();
    let mut out = Vec::new();
    for &step in spec.eval.at_steps.iter().filter(|&&s| s < final_step) {
        let dir = checkpoint::step_dir(&root, step);
        if !kept.contains(&dir) {
            return Err(Error::Dataset {
                path: dir,
                message: format!("eval.at_steps names step {step}, but the run kept no checkpoint of it (runs keep those of eval.at_steps only when the spec names them before pre-training)"),
            });
        }
        out.push((
            (EvalConfig::name_at_step(method, step, final_step), step),
            dir,
        ));
    }
    let name = EvalConfig::name_at_step(method, final_step, final_step);
    out.push(((name, final_step), latest));
    Ok(out)
}

/// The scalar statistics applied to a task's log-mels before an encoder.
/// With `pretrain`, the encoder's own statistics when its weights brought them (external
/// weights), else the run's.
fn input_norm(
    spec: &ExperimentSpec,
    encoder: &NamedEncoder,
    features: &TaskFeatures,
    pretrain_norm: &NormStats,
) -> Result<NormStats> {
    Ok(match spec.eval.input_normalization {
        InputNormalization::TaskTrain => NormStats::from_set(&features.splits[0].spectrograms)?,
        InputNormalization::Pretrain => encoder.own_norm.unwrap_or(*pretrain_norm),
    })
}

/// One task's embeddings by one encoder: `(dim, [train, valid, test] as (vectors, labels))`.
pub type TaskEmbeddings = (usize, [(Vec<f32>, Vec<usize>); 3]);

/// Embeds every split of a task with `encoder`, through `cache`. `pretrain_norm` is used
/// when `eval.input_normalization` is `pretrain`.
pub fn task_embeddings(
    spec: &ExperimentSpec,
    encoder: &NamedEncoder,
    features: &TaskFeatures,
    pretrain_norm: &NormStats,
    cache: &EmbeddingCache,
    progress: &dyn Progress,
) -> Result<TaskEmbeddings> {
    let norm = input_norm(spec, encoder, features, pretrain_norm)?;
    let recalibrated_encoder = if spec.eval.bn_recalibration {
        Some(recalibrated(
            &encoder.encoder,
            &features.splits[0].spectrograms,
            &norm,
            spec.eval.batch_size,
        )?)
    } else {
        None
    };
    let model = recalibrated_encoder.as_ref().unwrap_or(&encoder.encoder);
    let hash = encoder_hash(model)?;
    let settings = (
        norm.mean,
        norm.std,
        spec.eval.pooling,
        spec.eval.exclude_padding,
    );
    let mut sets: Vec<(Vec<f32>, Vec<usize>)> = Vec::new();
    let mut dim = 0;
    for (split, path) in features.splits.iter().zip(&features.paths) {
        let entry = cache.path(&hash, path, &settings);
        let embeddings = match cache.load(&entry) {
            Some(hit) if hit.labels == split.labels => hit,
            _ => {
                let values = embed_spectrograms(
                    model,
                    &split.spectrograms,
                    spec.eval.exclude_padding.then_some(&split.real_frames[..]),
                    &norm,
                    spec.eval.pooling,
                    spec.eval.batch_size,
                    &format!("embed {} {} {}", encoder.name, features.task, split.split),
                    progress,
                )?;
                let e = Embeddings {
                    dim: values.len() / split.labels.len().max(1),
                    values,
                    labels: split.labels.clone(),
                };
                cache.store(&entry, &e)?;
                e
            }
        };
        dim = embeddings.dim;
        sets.push((embeddings.values, embeddings.labels));
    }
    Ok((dim, sets.try_into().expect("three splits")))
}

/// The embeddings of every split of a task read from `source` (made by any tool), with the
/// labels of our own clips in the same order.
pub fn precomputed_embeddings(
    source: &PrecomputedEmbeddings,
    features: &TaskFeatures,
) -> Result<TaskEmbeddings> {
    let mut dim = 0;
    let mut sets = Vec::with_capacity(3);
    for split in &features.splits {
        let (d, values) = read_precomputed(
            &source.path,
            &features.task,
            split.split,
            split.labels.len(),
        )?;
        if dim != 0 && d != dim {
            return Err(Error::Dataset {
                path: source.path.join(&features.task),
                message: format!(
                    "embeddings of {d} values in {}, {dim} in the splits before",
                    split.split
                ),
            });
        }
        dim = d;
        sets.push((values, split.labels.clone()));
    }
    Ok((dim, sets.try_into().expect("three splits")))
}

/// Scores the linear protocols on one task's embeddings.
pub fn embedding_scores(
    spec: &ExperimentSpec,
    ctx: &ScoreContext,
    encoder: &str,
    features: &TaskFeatures,
    embeddings: &TaskEmbeddings,
) -> Result<Vec<ScoreRow>> {
    probe_sets(spec, ctx, encoder, features, &embeddings.1, embeddings.0)
}

/// Fine-tunes `encoder` on one task once per probe seed, when `probe.protocols` has
/// `finetune` (docs/method.md §9.2); otherwise returns no rows.
pub fn finetune_task_scores(
    spec: &ExperimentSpec,
    ctx: &ScoreContext,
    encoder: &NamedEncoder,
    features: &TaskFeatures,
    pretrain_norm: &NormStats,
    progress: &dyn Progress,
) -> Result<Vec<ScoreRow>> {
    if !spec.probe.protocols.contains(&Protocol::Finetune) {
        return Ok(Vec::new());
    }
    let [train, valid, test] = &features.splits;
    let data = FinetuneData {
        spectrograms: [&train.spectrograms, &valid.spectrograms, &test.spectrograms],
        labels: [&train.labels, &valid.labels, &test.labels],
        classes: train.classes.len(),
        norm: input_norm(spec, encoder, features, pretrain_norm)?,
        pooling: spec.eval.pooling,
    };
    let inputs = ProbeInputs {
        encoder: &encoder.name,
        task: &features.task,
        dim: 0,
        classes: data.classes,
        sets: [train, valid, test].map(|s| ProbeSet {
            x: &[],
            y: &s.labels,
        }),
    };
    finetune_scores(
        &spec.probe,
        ctx,
        inputs,
        &encoder.encoder,
        spec.frontend.n_mels,
        data,
        progress,
    )
}
