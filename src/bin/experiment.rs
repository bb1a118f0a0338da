//! `experiment SPEC`: runs the stages of an experiment spec and prints the results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use slicer::cache::FeatureCache;
use slicer::data::Task;
use slicer::pipeline::{self, FloorResult};
use slicer::progress::Progress;
use slicer::run::RunDir;
use slicer::spec::LoadedSpec;

/// Pre-train and evaluate audio representations from a YAML experiment spec.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The experiment spec (YAML), e.g. experiments/slicer.yaml.
    spec: PathBuf,
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
    /// Corpus, normalisation statistics and cached task features.
    Features,
    /// Features, then the bag-of-frames probe floor of every task.
    Floor,
    /// Normalisation statistics, then SLICER pre-training.
    Pretrain,
    /// Frozen-encoder embeddings (not built yet).
    Embed,
    /// Linear probes on embeddings (not built yet).
    Probe,
    /// The LAPE table over all runs (not built yet).
    Summary,
    /// Features, floor and pre-training (every stage that is built).
    All,
}

const NOT_BUILT: &[(Stage, &str)] = &[
    (Stage::Embed, "embed: frozen-encoder embeddings (issue 4)"),
    (Stage::Probe, "probe: linear probes on embeddings (issue 4)"),
    (
        Stage::Summary,
        "summary: Parquet score tables and the LAPE table (issue 4)",
    ),
];

/// indicatif bars for the library's progress reports (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bars(Mutex<Option<ProgressBar>>);

impl Progress for Bars {
    fn start(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total).with_prefix(label.to_owned());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {pos}/{len} clips ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        *self.0.lock().expect("not poisoned") = Some(bar);
    }
    fn advance(&self, n: u64) {
        if let Some(bar) = self.0.lock().expect("not poisoned").as_ref() {
            bar.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.0.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }
    fn message(&self, status: &str) {
        if let Some(bar) = self.0.lock().expect("not poisoned").as_ref() {
            bar.set_message(status.to_owned());
        }
    }
}

fn main() -> ExitCode {
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
    let loaded = LoadedSpec::load(&cli.spec, &cli.set)?;
    if cli.print_config {
        print!("{}", loaded.resolved_yaml());
        return Ok(());
    }
    if let Some((_, what)) = NOT_BUILT.iter().find(|(stage, _)| *stage == cli.stage) {
        anyhow::bail!(
            "stage `{what}` is not built yet; run --stage features, floor, pretrain or all"
        );
    }
    loaded.check_paths()?;
    let spec = &loaded.spec;
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
    if matches!(cli.stage, Stage::Features | Stage::Floor | Stage::All) {
        let cache = FeatureCache::new(spec.output.root.join("cache").join("features"));
        let features = tasks
            .iter()
            .map(|t| pipeline::task_features(spec, t, &cache, &bars))
            .collect::<slicer::Result<Vec<_>>>()?;
        let summary: Vec<_> = features
            .iter()
            .map(|f| serde_json::json!({"task": f.task, "clips": f.splits.each_ref().map(|s| s.labels.len()), "skipped": f.splits.each_ref().map(|s| s.skipped)}))
            .collect();
        run.write_json("features.json", &summary)?;
        if cli.stage != Stage::Features {
            let floors = features
                .iter()
                .map(|f| pipeline::bag_of_frames_floor(spec, f))
                .collect::<slicer::Result<Vec<_>>>()?;
            run.write_json("floor.json", &floors)?;
            println!("{}", floor_table(&floors));
        }
    }
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
    println!("run folder: {}", run.path.display());
    if cli.stage == Stage::All {
        println!("stages not built yet:");
        for (_, what) in NOT_BUILT {
            println!("  - {what}");
        }
    }
    Ok(())
}

fn floor_table(floors: &[FloorResult]) -> String {
    let mut out = String::from(
        "bag-of-frames floor (mean+std log-mel, linear probe, epoch chosen on valid)\n\n| task | classes | train/valid/test | test acc (mean ± std) | valid acc | max-over-epochs test (LAPE protocol) | seeds |\n|---|---|---|---|---|---|---|\n",
    );
    for f in floors {
        let (mean, std) = f.test_accuracy();
        let (valid, _) = pipeline::mean_std(f.seeds.iter().map(|s| s.valid_accuracy));
        let (max_test, _) = pipeline::mean_std(f.seeds.iter().map(|s| s.max_test_accuracy));
        out += &format!(
            "| {} | {} | {}/{}/{} | {:.3} ± {:.3} | {:.3} | {:.3} | {} |\n",
            f.task,
            f.classes,
            f.sizes[0],
            f.sizes[1],
            f.sizes[2],
            mean,
            std,
            valid,
            max_test,
            f.seeds.len()
        );
    }
    out
}
