//! `experiment SPEC`: runs the stages of an experiment spec and prints the results;
//! `experiment embed|export|convert`: the model tools (see `tools.rs`).

mod bars;
mod launch;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use slicer::cache::{EmbeddingCache, FeatureCache};
use slicer::data::Task;
use slicer::device::DeviceSpec;
use slicer::eval::{lape_table, latest_scores, EncoderChoice, ScoreContext};
use slicer::features::NormStats;
use slicer::pipeline;

use bars::Bars;
use slicer::run::RunDir;
use slicer::spec::{ExperimentSpec, LoadedSpec};
use slicer::suite::{is_suite, Suite};

/// Pre-train and evaluate audio representations from a YAML experiment spec (or every
/// member of a suite, then their comparison table); or embed audio, export a run's encoder,
/// or convert a PyTorch checkpoint (subcommands).
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
    /// The experiment spec (YAML), e.g. experiments/slicer.yaml, or a suite of specs, e.g.
    /// experiments/baselines.yaml.
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
    /// Run on this device (`cpu`, `cuda:N`) instead of the spec's `device`.
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Suites: run every member again, even those with a finished run of the same spec.
    #[arg(long)]
    rerun: bool,
    /// Suites: run only these members (comma-separated names; every seed of each); the
    /// tables still cover every member that has a finished run.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    members: Vec<String>,
    /// Pre-training seeds (comma-separated): a spec runs once per seed, a suite's members
    /// run with these instead of its `seeds:`; then the seed table with the gains over
    /// random_init (95 % intervals over the seeds).
    #[arg(long, value_delimiter = ',', value_name = "SEEDS")]
    seeds: Vec<u64>,
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

fn run(mut cli: Cli) -> anyhow::Result<()> {
    if let Some(command) = cli.command {
        return tools::run(command, &Bars::default());
    }
    if let Some(device) = cli.device {
        cli.set.push(format!("+device={device}"));
    }
    let spec_path = cli
        .spec
        .clone()
        .expect("clap requires SPEC without a subcommand");
    let seeds = (!cli.seeds.is_empty()).then_some(cli.seeds.as_slice());
    if is_suite(&spec_path) {
        let suite = Suite::load_seeded(&spec_path, &cli.set, seeds)?;
        return run_suite(&cli, &spec_path, suite);
    }
    if let Some(seeds) = seeds {
        let suite = Suite::of_spec(&spec_path, &cli.set, seeds)?;
        return run_suite(&cli, &spec_path, suite);
    }
    let loaded = LoadedSpec::load(&spec_path, &cli.set)?;
    if cli.print_config {
        print!("{}", loaded.resolved_yaml());
        return Ok(());
    }
    let root = &loaded.spec.output.root;
    if cli.stage == Stage::Summary {
        return summary(root);
    }
    run_spec(&loaded, cli.stage, cli.resume.as_deref())?;
    if matches!(cli.stage, Stage::Probe | Stage::All) {
        write_summary(root)?;
        println!(
            "every run's newest scores (LAPE table): {}",
            root.join("lape_table.md").display()
        );
    }
    Ok(())
}

/// Every member of a suite (finished ones are skipped, interrupted ones resumed), then the
/// suite's comparison table and the LAPE table.
fn run_suite(cli: &Cli, path: &Path, suite: Suite) -> anyhow::Result<()> {
    if cli.print_config {
        for member in &suite.members {
            println!(
                "# member `{}`\n{}---",
                member.name,
                member.spec.resolved_yaml()
            );
        }
        return Ok(());
    }
    if cli.resume.is_some() || !matches!(cli.stage, Stage::All | Stage::Summary) {
        anyhow::bail!("a suite runs every stage of each member (and resumes interrupted members by itself): drop --stage and --resume, or run a member's spec alone");
    }
    if let Some(unknown) = cli
        .members
        .iter()
        .find(|name| !suite.members.iter().any(|m| &m.name == *name))
    {
        anyhow::bail!(
            "--members: {} has no member `{unknown}`; its members are {}",
            path.display(),
            suite.member_names().join(", ")
        );
    }
    let chosen: Vec<&slicer::suite::SuiteMember> = suite
        .members
        .iter()
        .filter(|m| cli.members.is_empty() || cli.members.contains(&m.name))
        .collect();
    if cli.stage == Stage::All {
        for (i, member) in chosen.iter().enumerate() {
            let seed = if suite.seeds.is_empty() {
                String::new()
            } else {
                format!(", pre-training seed {}", member.seed)
            };
            println!(
                "suite {}: member {}/{} `{}`{seed}",
                suite.name,
                i + 1,
                chosen.len(),
                member.name
            );
            let runs = member.runs()?;
            let scored = runs.iter().rfind(|r| r.is_scored());
            let resumable = runs.last().filter(|r| r.file("norm_stats.json").is_file());
            match (scored, resumable) {
                (Some(run), _) if !cli.rerun => {
                    println!("already finished in {}", run.path.display());
                }
                (_, Some(run)) if !cli.rerun => {
                    println!("resuming {}", run.path.display());
                    run_spec(&member.spec, Stage::All, Some(&run.path))?;
                }
                _ => {
                    run_spec(&member.spec, Stage::All, None)?;
                }
            }
        }
    }
    let dir = suite.table_dir();
    if let Some(seeds) = suite.seed_table()? {
        seeds.write(&dir)?;
        println!(
            "suite {}: scores over pre-training seeds and gains over random_init (95 % intervals); written to {}:\n\n{}",
            suite.name,
            dir.join("seed_table.md").display(),
            seeds.to_markdown()
        );
    }
    let table = suite.table()?;
    table.write(&dir)?;
    println!(
        "suite {}, test accuracy % (mean ± std over probe seeds); written to {}:\n\n{}",
        suite.name,
        dir.join("lape_table.md").display(),
        table.to_markdown()
    );
    let root = &suite.members[0].spec.spec.output.root;
    write_summary(root)?;
    println!(
        "LAPE table over every run: {}",
        root.join("lape_table.md").display()
    );
    Ok(())
}

/// Runs `stage` of one spec in a new run folder, or in `resume`.
fn run_spec(loaded: &LoadedSpec, stage: Stage, resume: Option<&Path>) -> anyhow::Result<()> {
    let spec = &loaded.spec;
    let needs_checkpoint =
        spec.method.pretrains() && spec.eval.encoders.contains(&EncoderChoice::PRETRAINED);
    if matches!(stage, Stage::Embed | Stage::Probe) && needs_checkpoint && resume.is_none() {
        anyhow::bail!(
            "--stage {stage:?} evaluates a pre-trained run: pass --resume results/runs/<run-id>, or use --stage all"
        );
    }
    loaded.check_paths()?;
    let tasks = spec
        .data
        .tasks
        .iter()
        .map(|t| Task::from_config(t, spec.seed).with_context(|| format!("task `{}`", t.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = match resume {
        Some(dir) => RunDir::open(dir)?,
        None => RunDir::create(loaded)?,
    };
    tracing::info!("run {} in {}", run.id, run.path.display());
    let bars = Bars::default();

    let stats = if resume.is_some() {
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
    if matches!(stage, Stage::Pretrain | Stage::All) {
        if spec.method.pretrains() {
            let trained = slicer::train::pretrain(spec, &run.path, stats, resume.is_some(), &bars)?;
            if let (Some(first), Some(last)) = (trained.metrics.first(), trained.metrics.last()) {
                let usage = if last.cluster_usage_entropy.is_finite() {
                    format!(
                        ", cluster usage entropy {:.3} (max {:.3})",
                        last.cluster_usage_entropy,
                        (spec.model.n_clusters as f64).ln()
                    )
                } else {
                    String::new()
                };
                let speed = slicer::train::throughput(&trained.metrics, spec.train.batch_size)
                    .map_or(String::new(), |t| {
                        format!(
                            "; {:.1} clips/s (median step), waited for data {:.1}% of the time",
                            t.median_clips_per_s,
                            100.0 * t.data_wait_share
                        )
                    });
                println!(
                    "pre-training ({}): {} steps, {}{usage}{speed}",
                    spec.method.name(),
                    trained.steps,
                    loss_summary(spec, first, last),
                );
            }
        } else {
            println!("method {}: nothing to pre-train", spec.method.name());
        }
        if slicer::distributed::rank_from_env()?.is_some_and(|(rank, _)| rank != 0) {
            return Ok(()); // rank 0 evaluates and writes the tables
        }
    }
    if stage.needs_features() {
        evaluate(stage, spec, &tasks, &run, &stats, &bars)?;
    }
    println!("run folder: {}", run.path.display());
    Ok(())
}

/// The losses at the first and last step, with what a reader needs to judge them: for
/// SLICER, the InfoNCE of one direction (which rises while the queue fills with real keys)
/// and the cluster loss, each against its chance level.
fn loss_summary(
    spec: &ExperimentSpec,
    first: &slicer::results::MetricRow,
    last: &slicer::results::MetricRow,
) -> String {
    if spec.method != slicer::methods::Method::Slicer {
        return format!("loss {:.4} -> {:.4}", first.loss_total, last.loss_total);
    }
    let queue = spec.objective.queue_size;
    let keys_per_step = 2 * spec.train.batch_size;
    let clusters = spec.model.n_clusters as f64;
    format!(
        "InfoNCE per direction {:.3} -> {:.3} (chance ln {} = {:.2}; it rises while the queue's random initial keys, easy negatives, are replaced by real ones, all real from step {}), cluster loss {:.3} -> {:.3} (chance ln {} = {:.2})",
        first.loss_instance_a,
        last.loss_instance_a,
        queue + 1,
        ((queue + 1) as f64).ln(),
        queue.div_ceil(keys_per_step),
        first.loss_cluster,
        last.loss_cluster,
        2.0 * clusters - 1.0,
        (2.0 * clusters - 1.0).ln(),
    )
}

/// Features, then (per stage) the floor, embeddings and probes; writes scores.parquet.
fn evaluate(
    stage: Stage,
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
    if matches!(stage, Stage::Floor | Stage::Probe | Stage::All) && spec.eval.floor {
        for f in &features {
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
                                bars,
                            )
                        })
                        .collect::<slicer::Result<Vec<_>>>()?;
                    by_frontend.push((encoder.frontend.clone(), own));
                    by_frontend.len() - 1
                }
            };
            for f in &by_frontend[k].1 {
                let embeddings =
                    pipeline::task_embeddings(spec, &encoder, f, stats, &embedding_cache, bars)?;
                if stage != Stage::Embed {
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
    let table = write_summary(root)?;
    println!(
        "LAPE table, test accuracy % (mean ± std over probe seeds), newest run of each spec; written to {}:\n\n{}",
        root.join("lape_table.md").display(),
        table.to_markdown()
    );
    Ok(())
}

/// Writes the LAPE table over every run under `root` (`lape_table.{md,parquet}`).
fn write_summary(root: &std::path::Path) -> anyhow::Result<slicer::eval::LapeTable> {
    let scores = latest_scores(root)?;
    if scores.is_empty() {
        anyhow::bail!(
            "no run under {} has scores.parquet yet; run --stage all first",
            root.join("runs").display()
        );
    }
    let table = lape_table(&scores);
    table.write(root)?;
    Ok(table)
}
