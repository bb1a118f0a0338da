//! `experiment launch --gpus N SPEC`: data-parallel pre-training, one process per GPU (or
//! `--processes N` CPU processes joined over loopback TCP, the same path without GPUs). The
//! launcher creates the run folder and the normalisation statistics, then starts one
//! `experiment SPEC --resume RUN` per rank with the rank, the world size and the rendezvous
//! file in its environment, and only its own GPU visible. Rank 0 trains, evaluates and
//! writes; the other ranks train and exit (see `slicer::distributed`).

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::Context;
use clap::Args;
use slicer::device::DeviceSpec;
use slicer::distributed::{RANK_VAR, RENDEZVOUS_VAR, WORLD_SIZE_VAR};
use slicer::pipeline;
use slicer::run::RunDir;
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

/// The GPU of `rank`: the rank-th entry of an inherited CUDA_VISIBLE_DEVICES, else `rank`.
fn visible_device(rank: usize) -> String {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').nth(rank).map(str::to_owned))
        .unwrap_or_else(|| rank.to_string())
}

/// Starts the ranks and waits for them; the first failure stops the others.
pub fn launch(args: LaunchArgs, bars: &Bars) -> anyhow::Result<()> {
    let (ranks, on_gpus) = match (args.gpus, args.processes) {
        (Some(gpus), _) => (gpus, true),
        (None, processes) => (processes.unwrap_or(0), false),
    };
    if ranks == 0 {
        anyhow::bail!("--gpus or --processes must be at least 1");
    }
    let loaded = LoadedSpec::load(&args.spec, &args.set)?;
    let spec = &loaded.spec;
    if on_gpus && spec.device != DeviceSpec::Cuda(0) {
        anyhow::bail!(
            "{}: launch --gpus runs rank r on the r-th GPU and needs `device: cuda:0` (found `{}`); add --set +device=cuda:0",
            args.spec.display(),
            spec.device
        );
    }
    if !on_gpus && spec.device != DeviceSpec::Cpu {
        anyhow::bail!(
            "{}: launch --processes runs CPU processes and needs `device: cpu` (found `{}`); use --gpus for a CUDA spec",
            args.spec.display(),
            spec.device
        );
    }
    if spec.train.batch_size % ranks != 0 {
        anyhow::bail!(
            "train.batch_size = {} does not split over {ranks} ranks",
            spec.train.batch_size,
        );
    }
    loaded.check_paths()?;
    let run = RunDir::create(&loaded)?;
    let stats = pipeline::normalization_stats(spec, bars)?;
    run.write_json("norm_stats.json", &stats)?;
    let exe = std::env::current_exe().context("locating the experiment binary")?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    let threads_each = (std::thread::available_parallelism().map_or(1, |n| n.get()) / ranks).max(1);
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
        cmd.env(RANK_VAR, rank.to_string())
            .env(WORLD_SIZE_VAR, ranks.to_string())
            .env(RENDEZVOUS_VAR, run.file("rendezvous"));
        if on_gpus {
            cmd.env("CUDA_VISIBLE_DEVICES", visible_device(rank));
        } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            cmd.env("RAYON_NUM_THREADS", threads_each.to_string());
        }
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
