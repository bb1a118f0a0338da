//! Data-parallel pre-training across ranks. The collectives sit behind [`Communicator`]; a
//! single process is the same code with [`SingleProcess`] (world size one, every collective
//! the identity). [`from_env`] joins the group that `experiment launch` set up: NCCL for
//! GPUs (feature `nccl`), local TCP for CPU processes ([`TcpGroup`], PyTorch's gloo
//! counterpart, which is how the multi-process path is tested without GPUs). [`LocalGroup`]
//! runs ranks as threads of one process.
//!
//! What is shared, as the official DDP code does: gradients are averaged over ranks before
//! the optimiser step, so the students (and therefore the EMA teachers) stay identical;
//! the keys every rank computes are gathered and enqueued on every rank in rank order, so the
//! queues stay identical. BatchNorm uses each rank's own part of the batch (no SyncBN, and
//! no shuffle-BN: docs/method.md §12.5); its running statistics are averaged over ranks after every
//! step. Only rank 0 writes checkpoints, metrics and result tables.

mod local;
#[cfg(feature = "nccl")]
mod nccl;
mod rendezvous;
mod tcp;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

pub use local::LocalGroup;
pub use rendezvous::Rendezvous;
pub use tcp::TcpGroup;

use crate::model::Encoder;

/// Environment variables `experiment launch` sets for each process.
pub const RANK_VAR: &str = "SLICER_RANK";
/// World size (number of processes).
pub const WORLD_SIZE_VAR: &str = "SLICER_WORLD_SIZE";
/// File through which rank 0 hands the others what they need to join (the NCCL unique id,
/// or the TCP port).
pub const RENDEZVOUS_VAR: &str = "SLICER_RENDEZVOUS_FILE";
/// `host:port` of rank 0's rendezvous socket, for ranks on nodes that share no file system
/// (set from `MASTER_ADDR` and `MASTER_PORT`); when set, it replaces the file.
pub const MASTER_VAR: &str = "SLICER_MASTER";

/// Collectives over the ranks of a data-parallel job.
pub trait Communicator {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Elementwise sum of `t` over ranks (every rank gets the sum).
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor>;
    /// `t` of every rank concatenated along dimension 0, in rank order.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
}

/// One process: rank 0 of 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
}

/// Fails unless every rank holds the state whose digest is `digest` (a hex string, see
/// [`crate::checkpoint::digest`]): the guard that the students, teachers, queues and optimiser
/// states of a data-parallel job have not drifted apart. A no-op for one process.
pub fn ensure_in_sync(
    comm: &dyn Communicator,
    digest: &str,
    step: u64,
    device: &Device,
) -> crate::Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    // The first 12 digest bytes as six 16-bit integers, exact in f32.
    let bytes: Vec<u8> = (0..12)
        .map(|i| u8::from_str_radix(&digest[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    let words: Vec<f32> = bytes
        .chunks(2)
        .map(|w| f32::from(u16::from_le_bytes([w[0], w[1]])))
        .collect();
    let tensor = || crate::error::Error::tensor("comparing the ranks' state digests");
    let mine = Tensor::from_vec(words, (1, 6), device).map_err(tensor())?;
    let all: Vec<Vec<f32>> = comm
        .all_gather(&mine)
        .and_then(|t| t.to_vec2())
        .map_err(tensor())?;
    if all.iter().any(|row| row != &all[0]) {
        return Err(crate::Error::Invalid(format!(
            "rank {}: the ranks' training states differ after step {step} (rank digests {all:?}); a collective or a seeded stream is not shared as it should be. This is a bug: please report it with the spec",
            comm.rank()
        )));
    }
    Ok(())
}

/// Replaces each parameter's gradient by its mean over ranks.
pub fn average_gradients(
    comm: &dyn Communicator,
    params: &[Var],
    grads: &mut GradStore,
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    for p in params {
        if let Some(g) = grads.get(p) {
            let mean = (comm.all_reduce_sum(&g.contiguous()?)? / world as f64)?;
            grads.insert(p, mean);
        }
    }
    Ok(())
}

/// Replaces the BatchNorm running statistics of `encoders` by their mean over ranks (one
/// all-reduce for all of them), so that every rank evaluates with the same statistics. Each
/// rank normalises its forward with its own shard's batch statistics (no SyncBN); PyTorch's
/// DDP would instead broadcast rank 0's buffers, which drops the other shards' statistics.
pub fn average_running_stats(comm: &dyn Communicator, encoders: &[&Encoder]) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let buffers: Vec<&Var> = encoders
        .iter()
        .flat_map(|e| e.batch_norms(""))
        .flat_map(|(_, bn)| [&bn.running_mean, &bn.running_var])
        .collect();
    let flat: Vec<Tensor> = buffers.iter().map(|v| v.as_tensor().clone()).collect();
    let mean = (comm.all_reduce_sum(&Tensor::cat(&flat, 0)?)? / world as f64)?;
    let mut offset = 0;
    for v in buffers {
        let n = v.elem_count();
        v.set(&mean.narrow(0, offset, n)?)?;
        offset += n;
    }
    Ok(())
}

/// This process's rank and the world size from the environment (`None` outside a launch).
pub fn rank_from_env() -> crate::Result<Option<(usize, usize)>> {
    let read = |name: &str| -> crate::Result<Option<usize>> {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse().map_err(|_| {
                    crate::Error::Invalid(format!("{name}={v} is not a non-negative integer"))
                })
            })
            .transpose()
    };
    match (read(RANK_VAR)?, read(WORLD_SIZE_VAR)?) {
        (Some(rank), Some(world)) if rank < world => Ok(Some((rank, world))),
        (None, None) => Ok(None),
        (rank, world) => Err(crate::Error::Invalid(format!(
            "{RANK_VAR}={rank:?} and {WORLD_SIZE_VAR}={world:?} do not describe a rank of a job; start ranks with `experiment launch`"
        ))),
    }
}

/// The communicator of this process: [`SingleProcess`] outside a launch; in one, a
/// [`TcpGroup`] on CPU or the NCCL group on `device` (which must be this rank's GPU).
pub fn from_env(device: &Device) -> crate::Result<Box<dyn Communicator>> {
    match rank_from_env()? {
        None | Some((_, 1)) => Ok(Box::new(SingleProcess)),
        Some((rank, world)) if device.is_cpu() => Ok(Box::new(TcpGroup::connect(
            rank,
            world,
            &Rendezvous::from_env()?,
        )?)),
        Some((rank, world)) => connect_gpus(rank, world, device),
    }
}

#[cfg(feature = "nccl")]
fn connect_gpus(
    rank: usize,
    world: usize,
    device: &Device,
) -> crate::Result<Box<dyn Communicator>> {
    Ok(Box::new(nccl::Nccl::connect(
        rank,
        world,
        device,
        &Rendezvous::from_env()?,
    )?))
}

#[cfg(not(feature = "nccl"))]
fn connect_gpus(_: usize, world: usize, _: &Device) -> crate::Result<Box<dyn Communicator>> {
    Err(crate::Error::Invalid(format!(
        "a {world}-GPU job needs NCCL: rebuild with `cargo build --release --features nccl`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_leaves_gradients_and_keys_as_they_are() {
        let x = Var::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
        let mut grads = (x.as_tensor() * 2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        average_gradients(&SingleProcess, std::slice::from_ref(&x), &mut grads).unwrap();
        assert_eq!(
            grads.get(&x).unwrap().to_vec1::<f32>().unwrap(),
            [2.0, 2.0, 2.0]
        );
        let keys = Tensor::new(&[[1f32, 0.0]], &Device::Cpu).unwrap();
        let gathered = SingleProcess.all_gather(&keys).unwrap();
        assert_eq!(gathered.to_vec2::<f32>().unwrap(), [[1.0, 0.0]]);
        assert!(rank_from_env().unwrap().is_none());
    }

    /// Runs `body` on every member of a `world`-rank local group, one thread each.
    fn on_ranks<T: Send>(world: usize, body: impl Fn(LocalGroup) -> T + Sync) -> Vec<T> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = LocalGroup::new(world)
                .into_iter()
                .map(|member| scope.spawn(|| body(member)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// What a rank got from an all-reduce and an all-gather.
    type Collected = (Vec<Vec<f32>>, Vec<Vec<f32>>);

    /// Two rounds of collectives on 3 ranks (the second must not see the first's tensors):
    /// what every rank gets.
    fn sum_then_gather(comm: &dyn Communicator) -> Collected {
        let r = comm.rank() as f32;
        let mine = Tensor::new(&[[r, 10.0 * r]], &Device::Cpu).unwrap();
        let sum = comm.all_reduce_sum(&mine).unwrap().to_vec2().unwrap();
        let gathered = comm.all_gather(&(mine + 1.0).unwrap()).unwrap();
        (sum, gathered.to_vec2().unwrap())
    }

    fn assert_sum_then_gather(results: Vec<Collected>) {
        assert_eq!(results.len(), 3);
        for (sum, gathered) in results {
            assert_eq!(sum, [[3.0, 30.0]]);
            assert_eq!(gathered, [[1.0, 1.0], [2.0, 11.0], [3.0, 21.0]]);
        }
    }

    #[test]
    fn a_local_group_sums_and_gathers_in_rank_order() {
        assert_sum_then_gather(on_ranks(3, |comm| sum_then_gather(&comm)));
    }

    /// Three TCP ranks as threads, meeting through `rendezvous`.
    fn on_tcp_ranks(rendezvous: &Rendezvous) -> Vec<Collected> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    scope.spawn(move || {
                        sum_then_gather(&TcpGroup::connect(rank, 3, rendezvous).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn a_tcp_group_sums_and_gathers_in_rank_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rendezvous");
        assert_sum_then_gather(on_tcp_ranks(&Rendezvous::File(file.clone())));
        assert!(!file.exists(), "rank 0 removes the rendezvous file");
    }

    /// Ranks that share no file meet at rank 0's socket (`MASTER_ADDR:MASTER_PORT`).
    #[test]
    fn a_tcp_group_meets_at_rank_0s_socket() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = Rendezvous::Socket(format!("127.0.0.1:{port}"));
        assert_sum_then_gather(on_tcp_ranks(&socket));
        let shared = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let socket = &socket;
                    scope.spawn(move || {
                        socket
                            .share(rank, 3, || Ok(vec![7, 8, 9]), |b| b.len() == 3)
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(
            shared,
            vec![vec![7, 8, 9]; 3],
            "rank 0's bytes on every rank"
        );
    }

    #[test]
    fn averaged_gradients_are_the_mean_over_ranks() {
        let results = on_ranks(2, |comm| {
            let x = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
            let scale = 1.0 + comm.rank() as f64; // rank 0: d/dx = 1, rank 1: d/dx = 2
            let mut grads = (x.as_tensor() * scale)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            average_gradients(&comm, std::slice::from_ref(&x), &mut grads).unwrap();
            grads.get(&x).unwrap().to_vec1::<f32>().unwrap()
        });
        assert_eq!(results, [[1.5, 1.5], [1.5, 1.5]]);
    }

    #[test]
    fn ranks_in_step_pass_and_drifted_ranks_fail() {
        let same = "00112233445566778899aabbccddeeff";
        let checks = on_ranks(2, |comm| {
            ensure_in_sync(&comm, same, 5, &Device::Cpu).is_ok()
        });
        assert_eq!(checks, [true, true]);
        let errors = on_ranks(2, |comm| {
            let digest = if comm.rank() == 0 {
                same
            } else {
                "ff112233445566778899aabbccddeeff"
            };
            ensure_in_sync(&comm, digest, 5, &Device::Cpu)
                .unwrap_err()
                .to_string()
        });
        assert!(
            errors.iter().all(|e| e.contains("differ after step 5")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_failed_rank_releases_the_others() {
        let results = on_ranks(2, |comm| {
            if comm.rank() == 1 {
                drop(comm); // rank 1 fails before its first collective
                return true;
            }
            let t = Tensor::new(&[1f32], &Device::Cpu).unwrap();
            comm.all_reduce_sum(&t).is_err()
        });
        assert_eq!(results, [true, true]);
    }
}
