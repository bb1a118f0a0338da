//! Setting up a data-parallel launch: the checks, the run folder and its normalisation
//! statistics, and each rank's environment. The binary starts the processes (see the
//! README's multi-GPU section and [`crate::distributed`]).

use std::path::PathBuf;

use crate::device::DeviceSpec;
use crate::distributed::{RANK_VAR, RENDEZVOUS_VAR, WORLD_SIZE_VAR};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::RunDir;
use crate::spec::LoadedSpec;

/// Where the ranks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranks {
    /// One process per local GPU (the spec's device must be `cuda:0`).
    Gpus(usize),
    /// CPU processes on this machine, joined over loopback TCP (the spec's device must be
    /// `cpu`).
    Processes(usize),
}

impl Ranks {
    /// The number of ranks.
    pub fn count(self) -> usize {
        match self {
            Ranks::Gpus(n) | Ranks::Processes(n) => n,
        }
    }
}

/// A checked launch with its run folder created: what each rank's process needs.
#[derive(Debug)]
pub struct LaunchPlan {
    /// The run all ranks resume.
    pub run: RunDir,
    ranks: Ranks,
}

impl LaunchPlan {
    /// Checks that `loaded` can run on `ranks`, then creates the run folder and its
    /// normalisation statistics (the ranks resume it).
    pub fn new(loaded: &LoadedSpec, ranks: Ranks, progress: &dyn Progress) -> Result<Self> {
        let spec = &loaded.spec;
        let n = ranks.count();
        if n == 0 {
            return Err(Error::Invalid(
                "--gpus or --processes must be at least 1".into(),
            ));
        }
        match ranks {
            Ranks::Gpus(_) if spec.device != DeviceSpec::Cuda(0) => {
                return Err(Error::Invalid(format!(
                    "{}: launch --gpus runs rank r on the r-th GPU and needs `device: cuda:0` (found `{}`); add --set +device=cuda:0",
                    loaded.path.display(),
                    spec.device
                )));
            }
            Ranks::Processes(_) if spec.device != DeviceSpec::Cpu => {
                return Err(Error::Invalid(format!(
                    "{}: launch --processes runs CPU processes and needs `device: cpu` (found `{}`); use --gpus for a CUDA spec",
                    loaded.path.display(),
                    spec.device
                )));
            }
            _ => {}
        }
        if spec.train.batch_size % n != 0 {
            return Err(Error::Invalid(format!(
                "train.batch_size = {} does not split over {n} ranks",
                spec.train.batch_size,
            )));
        }
        let experiment = super::Experiment::create(loaded, progress)?;
        Ok(Self {
            run: experiment.run,
            ranks,
        })
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.ranks.count()
    }

    /// The environment of `rank`'s process: rank, world size, rendezvous file, and its GPU
    /// (the rank-th entry of an inherited `CUDA_VISIBLE_DEVICES`, else `rank`) or its share
    /// of the cores (unless `RAYON_NUM_THREADS` is set).
    pub fn rank_env(&self, rank: usize) -> Vec<(String, String)> {
        let mut env = vec![
            (RANK_VAR.to_owned(), rank.to_string()),
            (WORLD_SIZE_VAR.to_owned(), self.world_size().to_string()),
            (
                RENDEZVOUS_VAR.to_owned(),
                self.rendezvous().display().to_string(),
            ),
        ];
        match self.ranks {
            Ranks::Gpus(_) => env.push(("CUDA_VISIBLE_DEVICES".into(), visible_device(rank))),
            Ranks::Processes(n) if std::env::var_os("RAYON_NUM_THREADS").is_none() => {
                let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
                env.push(("RAYON_NUM_THREADS".into(), (cores / n).max(1).to_string()));
            }
            Ranks::Processes(_) => {}
        }
        env
    }

    /// The file through which the ranks exchange their rendezvous.
    pub fn rendezvous(&self) -> PathBuf {
        self.run.file("rendezvous")
    }
}

/// The GPU of `rank`: the rank-th entry of an inherited CUDA_VISIBLE_DEVICES, else `rank`.
fn visible_device(rank: usize) -> String {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|v| v.split(',').nth(rank).map(str::to_owned))
        .unwrap_or_else(|| rank.to_string())
}
