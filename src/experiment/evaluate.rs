//! The evaluation stages of one run: task features, the probe floor, frozen embeddings,
//! probes and fine-tuning, written to the run's `scores.parquet`.

use crate::cache::{EmbeddingCache, FeatureCache};
use crate::data::Task;
use crate::error::Result;
use crate::eval::{lape_table, ScoreContext};
use crate::features::NormStats;
use crate::progress::Progress;
use crate::run::RunDir;
use crate::spec::ExperimentSpec;

use super::pipeline::{self, TaskFeatures};
use super::{Report, Stage};

/// Features, then (per stage) the floor, embeddings and probes; writes `features.json` and
/// `scores.parquet` in the run folder.
pub(super) fn evaluate(
    stage: Stage,
    spec: &ExperimentSpec,
    tasks: &[Task],
    run: &RunDir,
    stats: &NormStats,
    progress: &dyn Progress,
) -> Result<Report> {
    let cache_root = spec.output.root.join("cache");
    let feature_cache = FeatureCache::new(cache_root.join("features"));
    let features = tasks
        .iter()
        .map(|t| {
            let _span = tracing::info_span!("features", task = %t.name).entered();
            pipeline::task_features(spec, t, &feature_cache, progress)
        })
        .collect::<Result<Vec<_>>>()?;
    run.write_json("features.json", &feature_sizes(&features))?;
    let ctx = ScoreContext {
        run: run.id.clone(),
        spec: spec.name.clone(),
        spec_hash: spec.hash()[..8].to_owned(),
        seed: spec.seed,
    };
    let mut scores = Vec::new();
    if matches!(stage, Stage::Floor | Stage::Probe | Stage::All) && spec.eval.floor {
        for f in &features {
            let _span = tracing::info_span!("floor", task = %f.task).entered();
            scores.extend(pipeline::floor_scores(spec, &ctx, f)?);
        }
    }
    if matches!(stage, Stage::Embed | Stage::Probe | Stage::All) {
        let embedding_cache = EmbeddingCache::new(cache_root.join("embeddings"));
        // Log-mels per front end: the spec's, and each external encoder's own (once each).
        let mut by_frontend = vec![(spec.frontend.clone(), features)];
        for encoder in pipeline::encoders_to_evaluate(spec, &run.path)? {
            let k = match by_frontend.iter().position(|(f, _)| *f == encoder.frontend) {
                Some(k) => k,
                None => {
                    let own = tasks
                        .iter()
                        .map(|t| {
                            pipeline::task_features_with(
                                spec,
                                &encoder.frontend,
                                t,
                                &feature_cache,
                                progress,
                            )
                        })
                        .collect::<Result<Vec<_>>>()?;
                    by_frontend.push((encoder.frontend.clone(), own));
                    by_frontend.len() - 1
                }
            };
            for f in &by_frontend[k].1 {
                let _span =
                    tracing::info_span!("evaluate", encoder = %encoder.name, task = %f.task)
                        .entered();
                let embeddings = pipeline::task_embeddings(
                    spec,
                    &encoder,
                    f,
                    stats,
                    &embedding_cache,
                    progress,
                )?;
                if stage != Stage::Embed {
                    scores.extend(pipeline::embedding_scores(
                        spec,
                        &ctx,
                        &encoder.name,
                        f,
                        &embeddings,
                    )?);
                    scores.extend(pipeline::finetune_task_scores(
                        spec, &ctx, &encoder, f, stats, progress,
                    )?);
                }
            }
        }
    }
    let mut report = Report::default();
    if !scores.is_empty() {
        let path = run.file("scores.parquet");
        crate::results::write_scores(&path, &scores)?;
        tracing::info!("{} scores -> {}", scores.len(), path.display());
        report.say(format!(
            "this run, test accuracy %:\n\n{}",
            lape_table(&scores).to_markdown()
        ));
        report.scores = scores;
    }
    Ok(report)
}

/// Each task's clip and skipped-clip counts per split (`features.json`).
fn feature_sizes(features: &[TaskFeatures]) -> Vec<serde_json::Value> {
    features
        .iter()
        .map(|f| {
            serde_json::json!({
                "task": f.task,
                "clips": f.splits.each_ref().map(|s| s.labels.len()),
                "skipped": f.splits.each_ref().map(|s| s.skipped),
            })
        })
        .collect()
}
