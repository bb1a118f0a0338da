//! Running a suite: every member (finished ones skipped, interrupted ones resumed), then the
//! suite's comparison tables and the LAPE table.

use crate::error::{Error, Result};
use crate::progress::Progress;

use super::suite::{Suite, SuiteMember};
use super::{Experiment, Report, Stage};

/// Which members a suite run touches.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// Run every chosen member again, even those with a finished run of the same spec.
    pub rerun: bool,
    /// Run only these members (every seed of each); empty: all. The tables still cover
    /// every member with a finished run.
    pub members: Vec<String>,
    /// Only rebuild the tables from the finished runs.
    pub tables_only: bool,
}

/// Runs the chosen members of `suite`, then writes its seed table (seeded suites), its
/// comparison table and the LAPE table over every run under its output root.
pub fn run_suite(suite: &Suite, options: &SuiteOptions, progress: &dyn Progress) -> Result<Report> {
    let chosen = chosen_members(suite, options)?;
    let mut report = Report::default();
    if !options.tables_only {
        for (i, member) in chosen.iter().enumerate() {
            let seed = if suite.seeds.is_empty() {
                String::new()
            } else {
                format!(", pre-training seed {}", member.seed)
            };
            let heading = format!(
                "suite {}: member {}/{} `{}`{seed}",
                suite.name,
                i + 1,
                chosen.len(),
                member.name
            );
            tracing::info!("{heading}");
            report.say(heading);
            report.extend(run_member(member, options.rerun, progress)?);
        }
    }
    let dir = suite.table_dir();
    if let Some(seeds) = suite.seed_table()? {
        seeds.write(&dir)?;
        report.say(format!(
            "suite {}: scores over pre-training seeds and gains over random_init (95 % intervals); written to {}:\n\n{}",
            suite.name,
            dir.join("seed_table.md").display(),
            seeds.to_markdown()
        ));
    }
    if let Some(curves) = suite.curve_table()? {
        curves.write(&dir)?;
        report.say(format!(
            "suite {}: learning curves (gains over random_init and the floor at each evaluated step, 95 % intervals); written to {}:\n\n{}",
            suite.name,
            dir.join("curve_table.md").display(),
            curves.to_markdown()
        ));
    }
    let table = suite.table()?;
    table.write(&dir)?;
    report.say(format!(
        "suite {}, test accuracy % (mean ± std over probe seeds); written to {}:\n\n{}",
        suite.name,
        dir.join("lape_table.md").display(),
        table.to_markdown()
    ));
    Ok(report)
}

/// The members named in `options` (all when none is named), or an error naming the unknown one.
fn chosen_members<'a>(suite: &'a Suite, options: &SuiteOptions) -> Result<Vec<&'a SuiteMember>> {
    if let Some(unknown) = options
        .members
        .iter()
        .find(|name| !suite.members.iter().any(|m| &m.name == *name))
    {
        return Err(Error::Invalid(format!(
            "--members: {} has no member `{unknown}`; its members are {}",
            suite.path.display(),
            suite.member_names().join(", ")
        )));
    }
    Ok(suite
        .members
        .iter()
        .filter(|m| options.members.is_empty() || options.members.contains(&m.name))
        .collect())
}

/// One member: skipped when it has a finished run, resumed when it has an interrupted one
/// (unless `rerun`), else run afresh.
fn run_member(member: &SuiteMember, rerun: bool, progress: &dyn Progress) -> Result<Report> {
    let runs = member.runs()?;
    let scored = runs.iter().rfind(|r| r.is_scored());
    let resumable = runs.last().filter(|r| r.file("norm_stats.json").is_file());
    let experiment = match (scored, resumable) {
        (Some(run), _) if !rerun => {
            let mut report = Report::default();
            report.say(format!("already finished in {}", run.path.display()));
            return Ok(report);
        }
        (_, Some(run)) if !rerun => {
            tracing::info!("resuming {}", run.path.display());
            Experiment::resume(&member.spec, &run.path)?
        }
        _ => Experiment::create(&member.spec, progress)?,
    };
    experiment.run(Stage::All, progress)
}
