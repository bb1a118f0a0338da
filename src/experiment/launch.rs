//! Setting up a data-parallel launch: the checks, the run folder and its normalisation
//! statistics, and each rank's environment. The binary starts the processes (see the
//! docs/gpu.md's multi-GPU section and [`crate::distributed`]).
//!
//! A launch is either local (`--gpus N`, `--processes N`: every rank on this machine,
//! meeting through a file in the run folder) or one rank of a cluster job started by
//! SLURM's `srun` or a torchrun-style launcher ([`ClusterRank`]): each such process runs
//! its own rank, and the ranks meet at rank 0's socket `MASTER_ADDR:MASTER_PORT`, so the
//! nodes need not share a file system. Rank 0 makes the run folder under `output.root` and
//! evaluates; the other ranks compute the same normalisation statistics themselves and
//! keep their (unwritten) run folder in a scratch directory.

use std::path::PathBuf;

use crate::device::DeviceSpec;
use crate::distributed::{MASTER_VAR, RANK_VAR, RENDEZVOUS_VAR, WORLD_SIZE_VAR};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::RunDir;
use crate::spec::LoadedSpec;

/// Where the ranks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranks {
    /// One process per local GPU (the spec's device must be `cuda:0`).
    Gpus(usize),
    /// CPU processes on this machine, joined over loopback TCP (the spec's device must be
    /// `cpu`).
    Processes(usize),
    /// This process is one rank of a cluster job (SLURM, torchrun).
    Cluster(ClusterRank),
}

impl Ranks {
    /// The number of ranks.
    pub fn count(&self) -> usize {
        match self {
            Ranks::Gpus(n) | Ranks::Processes(n) => *n,
            Ranks::Cluster(c) => c.world,
        }
    }

    /// The ranks this machine starts: all of them, or a cluster process's own.
    pub fn local(&self) -> Vec<usize> {
        match self {
            Ranks::Cluster(c) => vec![c.rank],
            _ => (0..self.count()).collect(),
        }
    }
}

/// One rank of a job started by a cluster launcher, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRank {
    /// This process's rank.
    pub rank: usize,
    /// Ranks in the job.
    pub world: usize,
    /// Rank on this node (which GPU).
    pub local_rank: usize,
    /// `MASTER_ADDR:MASTER_PORT`, where rank 0 listens.
    pub master: String,
}

impl ClusterRank {
    /// torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, or else SLURM's `SLURM_PROCID`,
    /// `SLURM_NTASKS`, `SLURM_LOCALID`; with `MASTER_ADDR` and `MASTER_PORT` in both cases.
    /// `None` when neither launcher's variables are set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`ClusterRank::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let names = if var("RANK").is_some() {
            ["RANK", "WORLD_SIZE", "LOCAL_RANK"]
        } else if var("SLURM_PROCID").is_some() {
            ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"]
        } else {
            return Ok(None);
        };
        let number = |name: &str| -> Result<usize> {
            let value = var(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "{} is set but {name} is not: start the job with srun or torchrun, or set it",
                    names[0]
                ))
            })?;
            value.parse().map_err(|_| {
                Error::Invalid(format!("{name}={value} is not a non-negative integer"))
            })
        };
        let (rank, world, local_rank) = (number(names[0])?, number(names[1])?, number(names[2])?);
        if rank >= world {
            return Err(Error::Invalid(format!(
                "{}={rank} is not below {}={world}",
                names[0], names[1]
            )));
        }
        let (Some(addr), Some(port)) = (var("MASTER_ADDR"), var("MASTER_PORT")) else {
            return Err(Error::Invalid(
                "MASTER_ADDR and MASTER_PORT must be set: rank 0's host and a free port on it (docs/gpu.md's multi-node section: scripts/slurm-job.sh sets them)".into(),
            ));
        };
        Ok(Some(Self {
            rank,
            world,
            local_rank,
            master: format!("{addr}:{port}"),
        }))
    }
}

/// A checked launch with its run folder created: what each rank's process needs.
#[derive(Debug)]
pub struct LaunchPlan {
    /// The run the ranks of this machine resume.
    pub run: RunDir,
    /// Overrides for the ranks' processes besides the launch's own (a cluster rank other
    /// than 0 keeps its run folder under a scratch `output.root`).
    pub overrides: Vec<String>,
    /// That scratch `output.root`, to remove when the rank is done.
    pub scratch: Option<PathBuf>,
    ranks: Ranks,
    run_on_gpu: bool,
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
        match &ranks {
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
            Ranks::Cluster(_) if !matches!(spec.device, DeviceSpec::Cpu | DeviceSpec::Cuda(0)) => {
                return Err(Error::Invalid(format!(
                    "{}: a cluster rank runs on `cpu` or on its node's GPU number LOCAL_RANK and needs `device: cuda:0` (found `{}`)",
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
        let mut overrides = Vec::new();
        let mut scratch = None;
        let scratch_spec;
        let loaded = match &ranks {
            Ranks::Cluster(c) if c.rank > 0 => {
                // Rank 0 owns the run; this rank's folder only serves its own process.
                let root = std::env::temp_dir().join(format!(
                    "slicer-rank{}-{}",
                    c.rank,
                    std::process::id()
                ));
                overrides.push(format!("output.root={}", root.display()));
                scratch = Some(root);
                let mut all = loaded.overrides.clone();
                all.extend(overrides.iter().cloned());
                scratch_spec = LoadedSpec::load(&loaded.path, &all)?;
                &scratch_spec
            }
            _ => loaded,
        };
        let experiment = super::Experiment::create(loaded, progress)?;
        Ok(Self {
            run: experiment.run,
            overrides,
            scratch,
            ranks,
            run_on_gpu: !spec.device.is_cpu(),
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
        ];
        match &self.ranks {
            Ranks::Cluster(c) => env.push((MASTER_VAR.to_owned(), c.master.clone())),
            _ => env.push((
                RENDEZVOUS_VAR.to_owned(),
                self.rendezvous().display().to_string(),
            )),
        }
        match &self.ranks {
            Ranks::Gpus(_) => env.push(("CUDA_VISIBLE_DEVICES".into(), visible_device(rank))),
            Ranks::Cluster(c) if self.run_on_gpu => {
                env.push(("CUDA_VISIBLE_DEVICES".into(), visible_device(c.local_rank)))
            }
            Ranks::Processes(n) if std::env::var_os("RAYON_NUM_THREADS").is_none() => {
                let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
                env.push(("RAYON_NUM_THREADS".into(), (cores / n).max(1).to_string()));
            }
            _ => {}
        }
        env
    }

    /// The ranks this machine starts.
    pub fn local_ranks(&self) -> Vec<usize> {
        self.ranks.local()
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

#[cfg(test)]
mod tests {
    use super::ClusterRank;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            set.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    /// torchrun's and SLURM's variables give the same rank; neither is no cluster job; a
    /// missing master address or a rank out of range is an error that says what to set.
    #[test]
    fn torchrun_and_slurm_variables_name_the_rank() {
        let master = [("MASTER_ADDR", "node1"), ("MASTER_PORT", "29500")];
        let torchrun = [
            [("RANK", "3"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1")].as_slice(),
            &master,
        ]
        .concat();
        let slurm = [
            [
                ("SLURM_PROCID", "3"),
                ("SLURM_NTASKS", "8"),
                ("SLURM_LOCALID", "1"),
            ]
            .as_slice(),
            &master,
        ]
        .concat();
        let expected = ClusterRank {
            rank: 3,
            world: 8,
            local_rank: 1,
            master: "node1:29500".into(),
        };
        assert_eq!(
            ClusterRank::from_vars(vars(&torchrun)).unwrap(),
            Some(expected.clone())
        );
        assert_eq!(
            ClusterRank::from_vars(vars(&slurm)).unwrap(),
            Some(expected)
        );
        assert_eq!(ClusterRank::from_vars(vars(&master)).unwrap(), None);
        let no_master = [("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")];
        let err = ClusterRank::from_vars(vars(&no_master)).unwrap_err();
        assert!(err.to_string().contains("MASTER_ADDR"), "{err}");
        let out_of_range = [
            [("RANK", "2"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")].as_slice(),
            &master,
        ]
        .concat();
        let err = ClusterRank::from_vars(vars(&out_of_range)).unwrap_err();
        assert!(err.to_string().contains("RANK=2"), "{err}");
    }
}
