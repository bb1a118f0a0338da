//! The evaluation stages of one run: task features, the probe floor, frozen embeddings,
//! probes and fine-tuning, written to the run's `scores.parquet`.

use crate::cache::{EmbeddingCache, FeatureCache};
use crate::data::Task;
use crate::error::Result;
use crate::eval::{lape_table, EncoderChoice, ProbeConfig, Protocol, ScoreContext};
use crate::features::NormStats;
use crate::progress::Progress;
use crate::results::ScoreRow;
use crate::run::RunDir;
use crate::spec::ExperimentSpec;

use super::eval_pipeline::{self, TaskFeatures};
use super::{Report, Stage};

/// Features, then (per stage) the floor, embeddings and probes; writes `features.json` and
/// `scores.parquet` in the run folder. With `rescored`, only those protocols are probed and
/// the run's other score rows are kept.
pub(super) fn evaluate(
    stage: Stage,
    spec: &ExperimentSpec,
    rescored: Option<&[Protocol]>,
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
            eval_pipeline::task_features(spec, t, &feature_cache, progress)
        })
        .collect::<Result<Vec<_>>>()?;
    run.write_json("features.json", &feature_sizes(&features))?;
    let ctx = ScoreContext {
        run: run.id.clone(),
        spec: spec.name.clone(),
        spec_hash: spec.hash()[..8].to_owned(),
        seed: spec.seed,
    };
    // The rows keep the spec's hash; only the probing below sees the narrower protocol list.
    let narrowed;
    let spec = match rescored {
        Some(protocols) => {
            narrowed = ExperimentSpec {
                probe: ProbeConfig {
                    protocols: protocols.to_vec(),
                    ..spec.probe.clone()
                },
                ..spec.clone()
            };
            &narrowed
        }
        None => spec,
    };
    let mut scores = Vec::new();
    if matches!(stage, Stage::Floor | Stage::Probe | Stage::All) && spec.eval.floor {
        for f in &features {
            let _span = tracing::info_span!("floor", task = %f.task).entered();
            scores.extend(eval_pipeline::floor_scores(spec, &ctx, f)?);
        }
    }
    if matches!(stage, Stage::Embed | Stage::Probe | Stage::All) {
        let embedding_cache = EmbeddingCache::new(cache_root.join("embeddings"));
        // Log-mels per front end: the spec's, and each external encoder's own (once each).
        let mut by_frontend = vec![(spec.frontend.clone(), features)];
        for encoder in eval_pipeline::encoders_to_evaluate(spec, &run.path)? {
            let k = match by_frontend.iter().position(|(f, _)| *f == encoder.frontend) {
                Some(k) => k,
                None => {
                    let own = tasks
                        .iter()
                        .map(|t| {
                            eval_pipeline::task_features_with(
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
                let embeddings = eval_pipeline::task_embeddings(
                    spec,
                    &encoder,
                    f,
                    stats,
                    &embedding_cache,
                    progress,
                )?;
                if stage != Stage::Embed {
                    let mut rows =
                        eval_pipeline::embedding_scores(spec, &ctx, &encoder.name, f, &embeddings)?;
                    rows.extend(eval_pipeline::finetune_task_scores(
                        spec, &ctx, &encoder, f, stats, progress,
                    )?);
                    scores.extend(rows.into_iter().map(|row| ScoreRow {
                        step: encoder.step,
                        ..row
                    }));
                }
            }
        }
        if stage != Stage::Embed {
            // Embeddings made elsewhere: the same probes on the same clips (the spec's tasks).
            for choice in &spec.eval.encoders {
                let EncoderChoice::Precomputed { precomputed } = choice else {
                    continue;
                };
                for f in &by_frontend[0].1 {
                    let _span = tracing::info_span!("evaluate", encoder = %precomputed.name, task = %f.task).entered();
                    let embeddings = eval_pipeline::precomputed_embeddings(precomputed, f)?;
                    scores.extend(eval_pipeline::embedding_scores(
                        spec,
                        &ctx,
                        &precomputed.name,
                        f,
                        &embeddings,
                    )?);
                }
            }
        }
    }
    let mut report = Report::default();
    if !scores.is_empty() {
        let path = run.file("scores.parquet");
        if let Some(protocols) = rescored {
            scores = rescored_rows(&path, protocols, scores)?;
        }
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

/// The rows of `path` (a run's `scores.parquet`) with those of the `rescored` protocols
/// replaced by `fresh`: see [`replace_rows`].
fn rescored_rows(
    path: &std::path::Path,
    rescored: &[Protocol],
    fresh: Vec<ScoreRow>,
) -> Result<Vec<ScoreRow>> {
    Ok(replace_rows(
        crate::results::read_scores(path)?,
        rescored,
        fresh,
    ))
}

/// `old` with its rows of the `rescored` protocols replaced by `fresh`, in place: each
/// (encoder, task)'s fresh rows go where its first replaced row was, so tables built in row
/// order keep their order; fresh rows of a pair `old` lacked go at the end.
fn replace_rows(old: Vec<ScoreRow>, rescored: &[Protocol], fresh: Vec<ScoreRow>) -> Vec<ScoreRow> {
    let is_rescored = |row: &ScoreRow| rescored.iter().any(|p| p.owns_row(&row.protocol));
    let pair = |row: &ScoreRow| (row.encoder.clone(), row.task.clone());
    let mut fresh_by_pair: Vec<((String, String), Vec<ScoreRow>)> = Vec::new();
    for row in fresh {
        let key = pair(&row);
        match fresh_by_pair.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(row),
            None => fresh_by_pair.push((key, vec![row])),
        }
    }
    let mut out = Vec::new();
    for row in old {
        if !is_rescored(&row) {
            out.push(row);
            continue;
        }
        let key = pair(&row);
        if let Some(k) = fresh_by_pair.iter().position(|(p, _)| *p == key) {
            out.extend(fresh_by_pair.remove(k).1);
        }
    }
    out.extend(fresh_by_pair.into_iter().flat_map(|(_, rows)| rows));
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(encoder: &str, task: &str, protocol: Protocol, value: f64) -> ScoreRow {
        ScoreRow::example(encoder, task, protocol.name(), "test_accuracy", 0, value)
    }

    #[test]
    fn rescored_rows_replace_the_old_ones_in_place() {
        use Protocol::{Linear, Logistic};
        let old = vec![
            row("a", "t1", Logistic, 1.0),
            row("a", "t1", Linear, 2.0),
            row("a", "t1", Linear, 3.0),
            row("a", "t2", Logistic, 4.0),
            row("a", "t2", Linear, 5.0),
        ];
        let fresh = vec![
            row("a", "t1", Linear, 20.0),
            row("a", "t1", Linear, 30.0),
            row("a", "t2", Linear, 50.0),
            row("b", "t1", Linear, 60.0),
        ];
        let values: Vec<f64> = replace_rows(old, &[Linear], fresh)
            .iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(values, [1.0, 20.0, 30.0, 4.0, 50.0, 60.0]);
    }
}
