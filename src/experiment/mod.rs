//! The experiment layer: one spec's run, stage by stage, as library calls, and suites of
//! specs above it. The `experiment` binary parses its arguments, calls these and prints the
//! [`Report`]; notebooks and tests call them directly.
//!
//! ```no_run
//! use slicer::experiment::{Experiment, Stage};
//! use slicer::progress::Silent;
//! use slicer::spec::LoadedSpec;
//!
//! let spec = LoadedSpec::load("experiments/smoke.yaml".as_ref(), &[])?;
//! let experiment = Experiment::create(&spec, &Silent)?;
//! let report = experiment.run(Stage::All, &Silent)?;
//! println!("{report}");
//! # Ok::<(), slicer::Error>(())
//! ```
//!
//! Below this layer the crate has two halves: pre-training ([`crate::train`], its
//! checkpoints and metrics) and evaluation ([`crate::eval`], with the cached features and
//! embeddings of [`crate::cache`]); [`eval_pipeline`] holds the per-task steps that join the
//! data, the front end and the encoders for evaluation.

pub mod eval_pipeline;
mod evaluate;
pub mod launch;
mod report;
mod run_log;
pub mod suite;
mod suite_run;

use std::path::Path;

use crate::data::Task;
use crate::error::{Error, Result};
use crate::eval::{lape_table, EncoderChoice, LapeTable, Protocol};
use crate::features::NormStats;
use crate::progress::Progress;
use crate::run::{latest_scores, RunDir};
use crate::spec::{ExperimentSpec, LoadedSpec};

pub use report::Report;
pub use run_log::RunLog;
pub use suite_run::{run_suite, SuiteOptions};

/// A stage of an experiment. Each runs what it needs before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Stage {
    /// Normalisation statistics and cached task features.
    Features,
    /// Features, then the bag-of-frames probe floor of every task (scores.parquet).
    Floor,
    /// Normalisation statistics, then SLICER pre-training.
    Pretrain,
    /// Features, then cached frozen-encoder embeddings of every task.
    Embed,
    /// Embeddings (from the cache when present), the floor and every probe protocol:
    /// scores.parquet and the run's own table.
    Probe,
    /// The LAPE table over all runs under output.root: lape_table.parquet and .md.
    Summary,
    /// Pre-training, then probe.
    All,
}

impl Stage {
    /// Checks that this stage can run on `spec` in a new run (`resuming: false`) or a
    /// resumed one: embedding and probing a pre-trained encoder need its run.
    pub fn check(self, spec: &ExperimentSpec, resuming: bool) -> Result<()> {
        let needs_checkpoint =
            spec.method.pretrains() && spec.eval.encoders.contains(&EncoderChoice::PRETRAINED);
        if matches!(self, Stage::Embed | Stage::Probe) && needs_checkpoint && !resuming {
            return Err(Error::Invalid(format!(
                "stage {self:?} evaluates a pre-trained run: resume one (--resume results/runs/<run-id>), or run stage all"
            )));
        }
        Ok(())
    }

    fn pretrains(self) -> bool {
        matches!(self, Stage::Pretrain | Stage::All)
    }

    fn evaluates(self) -> bool {
        !matches!(self, Stage::Pretrain | Stage::Summary)
    }

    fn scores(self) -> bool {
        matches!(self, Stage::Probe | Stage::All)
    }
}

/// One run of one spec: its folder, its normalisation statistics and its tasks.
#[derive(Debug)]
pub struct Experiment {
    loaded: LoadedSpec,
    run: RunDir,
    stats: NormStats,
    tasks: Vec<Task>,
    resumed: bool,
    rescored: Option<Vec<Protocol>>,
}

impl Experiment {
    /// A new run folder for `loaded` (spec and provenance written), with the normalisation
    /// statistics of its pre-training corpus (`norm_stats.json`).
    pub fn create(loaded: &LoadedSpec, progress: &dyn Progress) -> Result<Self> {
        loaded.check_paths()?;
        let tasks = tasks(loaded)?;
        let run = RunDir::create(loaded)?;
        run_log::log_to(&run.file("run.log"))?;
        tracing::info!("run {} in {}", run.id, run.path.display());
        let stats = eval_pipeline::normalization_stats(&loaded.spec, progress)?;
        run.write_json("norm_stats.json", &stats)?;
        Ok(Self::opened(loaded, run, stats, tasks, false))
    }

    /// The run in `dir`, made by the same spec, continued: its saved statistics, and
    /// pre-training from its newest checkpoint.
    pub fn resume(loaded: &LoadedSpec, dir: &Path) -> Result<Self> {
        loaded.check_paths()?;
        let tasks = tasks(loaded)?;
        let run = RunDir::open(dir)?;
        run_log::log_to(&run.file("run.log"))?;
        tracing::info!("run {} in {} (resumed)", run.id, run.path.display());
        let stats = run.read_json("norm_stats.json")?;
        Ok(Self::opened(loaded, run, stats, tasks, true))
    }

    fn opened(
        loaded: &LoadedSpec,
        run: RunDir,
        stats: NormStats,
        tasks: Vec<Task>,
        resumed: bool,
    ) -> Self {
        tracing::info!(
            "normalisation: mean {:.4}, std {:.4} over {} clips",
            stats.mean,
            stats.std,
            stats.n_clips
        );
        Self {
            loaded: loaded.clone(),
            run,
            stats,
            tasks,
            resumed,
            rescored: None,
        }
    }

    /// Restricts [`Stage::Probe`] to `protocols` (each must be in the spec's
    /// `probe.protocols`): only their rows are computed again, and the run's other rows are
    /// kept from its `scores.parquet`. For re-scoring a finished run after a probe changed,
    /// without re-running the slower protocols; the spec and its hash are unchanged. The run
    /// must have been scored already.
    pub fn rescoring(mut self, protocols: Vec<Protocol>) -> Result<Self> {
        let spec = &self.loaded.spec;
        if let Some(missing) = protocols.iter().find(|p| !spec.probe.protocols.contains(p)) {
            return Err(Error::Invalid(format!(
                "--protocols {}: not among this spec's probe.protocols ({}); re-score only protocols the run scored",
                missing.name(),
                spec.probe.protocols.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            )));
        }
        let scores = self.run.file("scores.parquet");
        if !scores.is_file() {
            return Err(Error::Dataset {
                path: scores,
                message: "no scores to keep the other protocols' rows from; run --stage probe without --protocols".into(),
            });
        }
        self.rescored = Some(protocols);
        Ok(self)
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Runs `stage` (and what it needs) in this run's folder; [`Stage::Probe`] and
    /// [`Stage::All`] also write the run's own table (`lape_table.{md,parquet}` in the run
    /// folder). The table over every run under `output.root` is rebuilt only by
    /// [`Stage::Summary`], so a run leaves the published tables as they are.
    pub fn run(&self, stage: Stage, progress: &dyn Progress) -> Result<Report> {
        let spec = &self.loaded.spec;
        let _span = tracing::info_span!("experiment", spec = %spec.name, stage = ?stage).entered();
        let root = &spec.output.root;
        if stage == Stage::Summary {
            return summary_report(root);
        }
        stage.check(spec, self.resumed)?;
        if self.rescored.is_some() && stage != Stage::Probe {
            return Err(Error::Invalid(format!(
                "--protocols re-scores a finished run: use it with --stage probe, not {stage:?}"
            )));
        }
        let mut report = Report::default();
        if stage.pretrains() {
            report.say(self.pretrain(progress)?);
            if crate::distributed::rank_from_env()?.is_some_and(|(rank, _)| rank != 0) {
                return Ok(report); // rank 0 evaluates and writes the tables
            }
        }
        if stage.evaluates() {
            report.extend(evaluate::evaluate(
                stage,
                spec,
                self.rescored.as_deref(),
                &self.tasks,
                &self.run,
                &self.stats,
                progress,
            )?);
        }
        if stage.scores() && !report.scores.is_empty() {
            let table = lape_table(&report.scores);
            table.write(&self.run.path)?;
            if let Some(line) = report::headline(spec, &table) {
                report.say(line);
            }
            report.say(format!(
                "this run's table: {}\nrun folder: {}\nthe LAPE table over every run under {} is rebuilt by `--stage summary`",
                self.run.file("lape_table.md").display(),
                self.run.path.display(),
                root.display()
            ));
        } else {
            report.say(format!("run folder: {}", self.run.path.display()));
        }
        Ok(report)
    }

    /// Pre-trains (or says there is nothing to pre-train) and summarises the losses.
    fn pretrain(&self, progress: &dyn Progress) -> Result<String> {
        let spec = &self.loaded.spec;
        if !spec.method.pretrains() {
            return Ok(format!(
                "method {}: nothing to pre-train",
                spec.method.name()
            ));
        }
        let _span = tracing::info_span!("pretrain").entered();
        let device = spec.device.open()?;
        let comm = crate::distributed::from_env(&device)?;
        let learner = {
            let _precision = crate::model::autocast(spec.precision);
            crate::methods::learner(&spec.method_setup(), &device)?
        };
        let mut setup = spec.pretrain_setup();
        if self.resumed && self.run.made_by(&setup.spec_hash)? {
            // The run's checkpoints carry the hash it recorded (an older spec layout's).
            setup.spec_hash = self.run.provenance()?.spec_hash;
        }
        let trained = crate::train::pretrain_on(
            setup,
            learner,
            &self.run.path,
            self.stats,
            self.resumed,
            progress,
            (&device, comm.as_ref()),
        )?;
        Ok(report::pretraining_summary(spec, &trained))
    }
}

/// The spec's tasks, each error naming its task.
fn tasks(loaded: &LoadedSpec) -> Result<Vec<Task>> {
    let spec = &loaded.spec;
    spec.data
        .tasks
        .iter()
        .map(|t| {
            Task::from_config(t, spec.seed).map_err(|e| Error::Task {
                task: t.name.clone(),
                source: Box::new(e),
            })
        })
        .collect()
}

/// Writes the LAPE table over every run under `root` (`lape_table.{md,parquet}`).
fn write_summary(root: &Path) -> Result<LapeTable> {
    let scores = latest_scores(root)?;
    if scores.is_empty() {
        return Err(Error::Invalid(format!(
            "no run under {} has scores.parquet yet; run stage all first",
            root.join("runs").display()
        )));
    }
    let table = lape_table(&scores);
    table.write(root)?;
    Ok(table)
}

/// The LAPE table over every run under `root`, written and reported.
pub fn summary_report(root: &Path) -> Result<Report> {
    let table = write_summary(root)?;
    let mut report = Report::default();
    report.say(format!(
        "LAPE table, test accuracy % (mean ± std over probe seeds), newest run of each spec; written to {}:\n\n{}",
        root.join("lape_table.md").display(),
        table.to_markdown()
    ));
    Ok(report)
}
