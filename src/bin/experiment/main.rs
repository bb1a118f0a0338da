//! `experiment SPEC`: runs the stages of an experiment spec and prints the results;
//! `experiment embed|export|convert`: the model tools (see `tools.rs`).

mod bars;
mod launch;
mod logging;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slicer::device::DeviceSpec;
use slicer::eval::Protocol;
use slicer::experiment::suite::{is_suite, Suite};
use slicer::experiment::{run_suite, summary_report, Experiment, Stage, SuiteOptions};
use slicer::spec::LoadedSpec;

use bars::Bars;

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
    /// With `--stage probe --resume RUN_DIR`: probe only these protocols (comma-separated,
    /// e.g. `linear,linear_lape`) and keep the run's other score rows.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PROTOCOLS")]
    protocols: Vec<Protocol>,
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

fn main() -> ExitCode {
    slicer::allocator::keep_freed_buffers();
    logging::init();
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
    let suite = if is_suite(&spec_path) {
        Some(Suite::load_seeded(&spec_path, &cli.set, seeds)?)
    } else {
        seeds
            .map(|seeds| Suite::of_spec(&spec_path, &cli.set, seeds))
            .transpose()?
    };
    let bars = Bars::default();
    let report = match suite {
        Some(suite) => {
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
            if cli.resume.is_some()
                || !cli.protocols.is_empty()
                || !matches!(cli.stage, Stage::All | Stage::Summary)
            {
                anyhow::bail!("a suite runs every stage of each member (and resumes interrupted members by itself): drop --stage, --resume and --protocols, or run a member's spec alone");
            }
            let options = SuiteOptions {
                rerun: cli.rerun,
                members: cli.members,
                tables_only: cli.stage == Stage::Summary,
            };
            run_suite(&suite, &options, &bars)?
        }
        None => {
            let loaded = LoadedSpec::load(&spec_path, &cli.set)?;
            if cli.print_config {
                print!("{}", loaded.resolved_yaml());
                return Ok(());
            }
            if cli.stage == Stage::Summary {
                summary_report(&loaded.spec.output.root)?
            } else {
                cli.stage.check(&loaded.spec, cli.resume.is_some())?;
                let mut experiment = match &cli.resume {
                    Some(dir) => Experiment::resume(&loaded, dir)?,
                    None => Experiment::create(&loaded, &bars)?,
                };
                if !cli.protocols.is_empty() {
                    experiment = experiment.rescoring(cli.protocols)?;
                }
                experiment.run(cli.stage, &bars)?
            }
        }
    };
    print!("{report}");
    Ok(())
}
