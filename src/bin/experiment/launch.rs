//! `experiment launch --gpus N SPEC`: data-parallel pre-training, one process per GPU (or
//! `--processes N` CPU processes joined over loopback TCP, the same path without GPUs). The
//! library's `LaunchPlan` checks the spec and creates the run folder and the normalisation
//! statistics; this starts one `experiment SPEC --resume RUN` per rank with the
//! environment the plan gives it (rank, world size, rendezvous file, its own GPU). Rank 0 trains, evaluates and
//! writes; the other ranks train and exit (see `slicer::distributed`).

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::Context;
use clap::Args;
use slicer::experiment::launch::{LaunchPlan, Ranks};
use slicer::spec::LoadedSpec;

use crate::bars::Bars;

/// `experiment launch` arguments.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Number of GPUs, one process each (needs the `nccl` feature for more than one); the
    /// spec's `device` must be `cuda:0` (rank r runs on the r-th GPU).
    #[arg(
        long,
        required_unless_present = "processes",
        conflicts_with = "processes"
    )]
    gpus: Option<usize>,
    /// Number of CPU processes on this machine, for a CPU spec, joined over loopback TCP:
    /// the multi-process path without GPUs, for tests and debugging. Each gets an equal
    /// share of the cores (RAYON_NUM_THREADS) unless RAYON_NUM_THREADS is set.
    #[arg(long)]
    processes: Option<usize>,
    /// The experiment spec.
    spec: PathBuf,
    /// Override a spec value, as for a plain run. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Starts the ranks and waits for them; the first failure stops the others.
pub fn launch(args: LaunchArgs, bars: &Bars) -> anyhow::Result<()> {
    let ranks = match (args.gpus, args.processes) {
        (Some(gpus), _) => Ranks::Gpus(gpus),
        (None, processes) => Ranks::Processes(processes.unwrap_or(0)),
    };
    let loaded = LoadedSpec::load(&args.spec, &args.set)?;
    let plan = LaunchPlan::new(&loaded, ranks, bars)?;
    let run = &plan.run;
    let exe = std::env::current_exe().context("locating the experiment binary")?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    let ranks = plan.world_size();
    for rank in 0..ranks {
        let mut cmd = Command::new(&exe);
        cmd.arg(&args.spec);
        for s in &args.set {
            cmd.arg("--set").arg(s);
        }
        cmd.arg("--resume").arg(&run.path);
        if rank > 0 {
            cmd.args(["--stage", "pretrain"]);
        }
        cmd.envs(plan.rank_env(rank));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting rank {rank}"))?;
        children.push((rank, child));
    }
    println!("launched {ranks} ranks on run {}", run.path.display());
    let mut failed = None;
    while !children.is_empty() {
        let mut still = Vec::new();
        for (rank, mut child) in children {
            match child.try_wait()? {
                Some(status) if !status.success() => failed = failed.or(Some((rank, status))),
                Some(_) => {}
                None => still.push((rank, child)),
            }
        }
        if failed.is_some() {
            for (_, child) in &mut still {
                let _ = child.kill();
                let _ = child.wait();
            }
            break;
        }
        children = still;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    if let Some((rank, status)) = failed {
        anyhow::bail!(
            "rank {rank} failed ({status}); the other ranks were stopped. Resume with `experiment launch` on a new run, or `experiment {} --resume {}` on one GPU",
            args.spec.display(),
            run.path.display()
        );
    }
    Ok(())
}
