//! `experiment SPEC`: runs the stages of an experiment spec and prints the results;
//! `experiment embed|export|convert`: the model tools (see `tools.rs`).

mod bars;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use slicer::cache::{EmbeddingCache, FeatureCache};
use slicer::data::Task;
use slicer::eval::{lape_table, latest_scores, EncoderChoice, ScoreContext};
use slicer::features::NormStats;
use slicer::pipeline;

use bars::Bars;
use slicer::run::RunDir;
use slicer::spec::{ExperimentSpec, LoadedSpec};

/// Pre-train and evaluate audio representations from a YAML experiment spec; or embed
/// audio, export a run's encoder, or convert a PyTorch checkpoint (subcommands).
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<tools::Command>,
    /// The experiment spec (YAML), e.g. experiments/slicer.yaml.
    #[arg(required = true)]
    spec: Option<PathBuf>,
    /// Override a spec value: `a.b=v` (must exist), `+a.b=v` (add), `~a.b` (delete). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Which stage to run.
    #[arg(long, value_enum, default_value_t = Stage::All)]
    stage: Stage,
    /// Print the resolved spec (defaults filled in, overrides applied) and exit.
    #[arg(long)]
    print_config: bool,
    /// Continue the run in this folder from its newest checkpoint (same spec required).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stage {
    /// Normalisation statistics and cached task features.
    Features,
    /// Features, then the bag-of-frames probe floor of every task (scores.parquet).
    Floor,
    /// Normalisation statistics, then SLICER pre-training.
    Pretrain,
    /// Features, then cached frozen-encoder embeddings of every task.
    Embed,
    /// Embeddings (from the cache when present), the floor and every probe protocol:
    /// scores.parquet, then the summary.
    Probe,
    /// The LAPE table over all runs under output.root: lape_table.parquet and .md.
    Summary,
    /// Pre-training, then probe and summary.
    All,
}

impl Stage {
    fn needs_features(self) -> bool {
        !matches!(self, Stage::Pretrain | Stage::Summary)
    }
}

fn main() -> ExitCode {
    slicer::allocator::keep_freed_buffers();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(command) = cli.command {
        return tools::run(command, &Bars::default());
    }
    let spec_path = cli
        .spec
        .clone()
        .expect("clap requires SPEC without a subcommand");
    let loaded = LoadedSpec::load(&spec_path, &cli.set)?;
    if cli.print_config {
        print!("{}", loaded.resolved_yaml());
        return Ok(());
    }
    let spec = &loaded.spec;
    if cli.stage == Stage::Summary {
        return summary(&spec.output.root);
    }
    let needs_checkpoint = spec.eval.encoders.contains(&EncoderChoice::PRETRAINED);
    if matches!(cli.stage, Stage::Embed | Stage::Probe) && needs_checkpoint && cli.resume.is_none()
    {
        anyhow::bail!(
            "--stage {:?} evaluates a pre-trained run: pass --resume results/runs/<run-id>, or use --stage all",
            cli.stage
        );
    }
    loaded.check_paths()?;
    let tasks = spec
        .data
        .tasks
        .iter()
        .map(|t| Task::from_config(t, spec.seed).with_context(|| format!("task `{}`", t.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = match &cli.resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::create(&loaded)?,
    };
    tracing::info!("run {} in {}", run.id, run.path.display());
    let bars = Bars::default();

    let stats = if cli.resume.is_some() {
        run.read_json("norm_stats.json")?
    } else {
        let stats = pipeline::normalization_stats(spec, &bars)?;
        run.write_json("norm_stats.json", &stats)?;
        stats
    };
    tracing::info!(
        "normalisation: mean {:.4}, std {:.4} over {} clips",
        stats.mean,
        stats.std,
        stats.n_clips
    );
    if matches!(cli.stage, Stage::Pretrain | Stage::All) {
        let trained = slicer::train::pretrain(spec, &run.path, stats, cli.resume.is_some(), &bars)?;
        if let (Some(first), Some(last)) = (trained.metrics.first(), trained.metrics.last()) {
            println!(
                "pre-training: {} steps, loss {:.4} -> {:.4}, cluster usage entropy {:.3} (max {:.3})",
                trained.steps,
                first.loss_total,
                last.loss_total,
                last.cluster_usage_entropy,
                (spec.model.n_clusters as f64).ln()
            );
        }
    }
    if cli.stage.needs_features() {
        evaluate(&cli, spec, &tasks, &run, &stats, &bars)?;
    }
    println!("run folder: {}", run.path.display());
    if matches!(cli.stage, Stage::Probe | Stage::All) {
        summary(&spec.output.root)?;
    }
    Ok(())
}

/// Features, then (per stage) the floor, embeddings and probes; writes scores.parquet.
fn evaluate(
    cli: &Cli,
    spec: &ExperimentSpec,
    tasks: &[Task],
    run: &RunDir,
    stats: &NormStats,
    bars: &Bars,
) -> anyhow::Result<()> {
    let cache_root = spec.output.root.join("cache");
    let feature_cache = FeatureCache::new(cache_root.join("features"));
    let features = tasks
        .iter()
        .map(|t| pipeline::task_features(spec, t, &feature_cache, bars))
        .collect::<slicer::Result<Vec<_>>>()?;
    let sizes: Vec<_> = features
        .iter()
        .map(|f| serde_json::json!({"task": f.task, "clips": f.splits.each_ref().map(|s| s.labels.len()), "skipped": f.splits.each_ref().map(|s| s.skipped)}))
        .collect();
    run.write_json("features.json", &sizes)?;
    let ctx = ScoreContext {
        run: run.id.clone(),
        spec: spec.name.clone(),
        spec_hash: spec.hash()[..8].to_owned(),
        seed: spec.seed,
    };
    let mut scores = Vec::new();
    if matches!(cli.stage, Stage::Floor | Stage::Probe | Stage::All) && spec.eval.floor {
        for f in &features {
            scores.extend(pipeline::floor_scores(spec, &ctx, f)?);
        }
    }
    if matches!(cli.stage, Stage::Embed | Stage::Probe | Stage::All) {
        let embedding_cache = EmbeddingCache::new(cache_root.join("embeddings"));
        for encoder in pipeline::encoders_to_evaluate(spec, &run.path)? {
            for f in &features {
                let embeddings =
                    pipeline::task_embeddings(spec, &encoder, f, stats, &embedding_cache, bars)?;
                if cli.stage != Stage::Embed {
                    scores.extend(pipeline::embedding_scores(
                        spec,
                        &ctx,
                        &encoder.name,
                        f,
                        &embeddings,
                    )?);
                    scores.extend(pipeline::finetune_task_scores(
                        spec, &ctx, &encoder, f, stats, bars,
                    )?);
                }
            }
        }
    }
    if !scores.is_empty() {
        let path = run.file("scores.parquet");
        slicer::results::write_scores(&path, &scores)?;
        tracing::info!("{} scores -> {}", scores.len(), path.display());
        println!(
            "this run, test accuracy %:\n\n{}",
            lape_table(&scores).to_markdown()
        );
    }
    Ok(())
}

/// Rebuilds the LAPE table from every run under `root` and prints it.
fn summary(root: &std::path::Path) -> anyhow::Result<()> {
    let scores = latest_scores(root)?;
    if scores.is_empty() {
        anyhow::bail!(
            "no run under {} has scores.parquet yet; run --stage all first",
            root.join("runs").display()
        );
    }
    let table = lape_table(&scores);
    table.write(root)?;
    println!(
        "LAPE table, test accuracy % (mean ± std over probe seeds), newest run of each spec; written to {}:\n\n{}",
        root.join("lape_table.md").display(),
        table.to_markdown()
    );
    Ok(())
}
