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
use slicer::experiment::launch::{ClusterRank, LaunchPlan, Ranks};
use slicer::spec::LoadedSpec;

use crate::bars::Bars;

/// `experiment launch` arguments.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Number of GPUs, one process each (needs the `nccl` feature for more than one); the
    /// spec's `device` must be `cuda:0` (rank r runs on the r-th GPU).
    #[arg(long, conflicts_with = "processes")]
    gpus: Option<usize>,
    /// Number of CPU processes on this machine, for a CPU spec, joined over loopback TCP:
    /// the multi-process path without GPUs, for tests and debugging. Each gets an equal
    /// share of the cores (RAYON_NUM_THREADS) unless RAYON_NUM_THREADS is set.
    #[arg(long)]
    processes: Option<usize>,
    /// The experiment spec. Without --gpus or --processes, this process is one rank of a
    /// cluster job: SLURM's srun or a torchrun-style launcher started it, and RANK,
    /// WORLD_SIZE, LOCAL_RANK (or SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), MASTER_ADDR and
    /// MASTER_PORT say which.
    spec: PathBuf,
    /// Override a spec value, as for a plain run. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Starts the ranks and waits for them; the first failure stops the others.
pub fn launch(args: LaunchArgs, bars: &Bars) -> anyhow::Result<()> {
    let ranks = match (args.gpus, args.processes) {
        (Some(gpus), _) => Ranks::Gpus(gpus),
        (None, Some(processes)) => Ranks::Processes(processes),
        (None, None) => Ranks::Cluster(ClusterRank::from_env()?.ok_or_else(|| {
            anyhow::anyhow!("give --gpus N or --processes N, or start one `experiment launch` per rank with srun or torchrun (which set RANK or SLURM_PROCID)")
        })?),
    };
    let loaded = LoadedSpec::load(&args.spec, &args.set)?;
    let plan = LaunchPlan::new(&loaded, ranks, bars)?;
    let run = &plan.run;
    let exe = std::env::current_exe().context("locating the experiment binary")?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    let ranks = plan.world_size();
    for rank in plan.local_ranks() {
        let mut cmd = Command::new(&exe);
        cmd.arg(&args.spec);
        for s in args.set.iter().chain(&plan.overrides) {
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
    println!(
        "launched {} of {ranks} ranks on run {}",
        children.len(),
        run.path.display()
    );
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
    if let Some(scratch) = &plan.scratch {
        let _ = std::fs::remove_dir_all(scratch);
    }
    Ok(())
}
