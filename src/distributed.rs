//! Data-parallel pre-training across processes, one per GPU. The collectives sit behind
//! [`Communicator`]; a single process is the same code with [`SingleProcess`] (world size
//! one, every collective the identity). With the `nccl` feature, [`from_env`] joins the NCCL
//! group that `experiment launch --gpus N` set up.
//!
//! What is shared, as the official DDP code does: gradients are averaged over ranks before
//! the optimiser step, so the students (and therefore the EMA teachers) stay identical;
//! the keys every rank computes are gathered and enqueued on every rank in rank order, so the
//! queues stay identical. BatchNorm uses each rank's own part of the batch (no SyncBN, and
//! no shuffle-BN: SPEC 12.5). Only rank 0 writes checkpoints, metrics and result tables.

use std::sync::{Arc, Condvar, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

use crate::model::Encoder;

/// Environment variables `experiment launch` sets for each process.
pub const RANK_VAR: &str = "SLICER_RANK";
/// World size (number of processes).
pub const WORLD_SIZE_VAR: &str = "SLICER_WORLD_SIZE";
/// File through which rank 0 hands the NCCL unique id to the others.
pub const NCCL_ID_VAR: &str = "SLICER_NCCL_ID_FILE";

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

/// Ranks as threads of one process, exchanging tensors through shared memory. It runs the
/// data-parallel path (sharded batches, averaged gradients, gathered keys) without GPUs or
/// NCCL: the tests check with it that ranks stay in step, and it replays a multi-GPU run's
/// arithmetic on one machine for debugging. A member dropped early (its rank failed) makes
/// every collective of the others fail instead of waiting forever.
pub struct LocalGroup {
    rank: usize,
    world: usize,
    shared: Arc<(Mutex<Rendezvous>, Condvar)>,
}

/// The state of a [`LocalGroup`]'s current collective.
struct Rendezvous {
    /// What each rank brought to the collective under way.
    slots: Vec<Option<Tensor>>,
    /// How many ranks have brought theirs.
    arrived: usize,
    /// Collectives completed so far.
    generation: u64,
    /// Every rank's tensor from the last completed collective, in rank order.
    last: Arc<Vec<Tensor>>,
    /// A member was dropped while ranks could still be waiting for it.
    broken: bool,
}

impl LocalGroup {
    /// The `world` members of a new group; member r belongs to the thread of rank r.
    pub fn new(world: usize) -> Vec<LocalGroup> {
        let shared = Arc::new((
            Mutex::new(Rendezvous {
                slots: vec![None; world],
                arrived: 0,
                generation: 0,
                last: Arc::new(Vec::new()),
                broken: false,
            }),
            Condvar::new(),
        ));
        (0..world)
            .map(|rank| LocalGroup {
                rank,
                world,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Brings `t` to the collective and returns every rank's tensor, in rank order.
    fn exchange(&self, t: &Tensor) -> Result<Arc<Vec<Tensor>>> {
        let (lock, ready) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.broken {
            candle_core::bail!("rank {}: another rank of the local group failed", self.rank);
        }
        state.slots[self.rank] = Some(t.clone());
        state.arrived += 1;
        if state.arrived == self.world {
            let all: Vec<Tensor> = state.slots.iter_mut().filter_map(Option::take).collect();
            state.last = Arc::new(all);
            state.arrived = 0;
            state.generation += 1;
            ready.notify_all();
            return Ok(state.last.clone());
        }
        let generation = state.generation;
        while state.generation == generation {
            if state.broken {
                candle_core::bail!("rank {}: another rank of the local group failed", self.rank);
            }
            state = ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        Ok(state.last.clone())
    }
}

impl Drop for LocalGroup {
    fn drop(&mut self) {
        let (lock, ready) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        state.broken = true;
        ready.notify_all();
    }
}

impl Communicator for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.exchange(t)?;
        // Summed in rank order on every rank, so every rank gets the same bits.
        let mut sum = all[0].to_device(t.device())?;
        for other in &all[1..] {
            sum = (sum + other.to_device(t.device())?)?;
        }
        Ok(sum)
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.exchange(t)?;
        let on_device = all
            .iter()
            .map(|x| x.to_device(t.device()))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&on_device, 0)
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
    let tensor = crate::error::Error::tensor;
    let mine = Tensor::from_vec(words, (1, 6), device).map_err(tensor)?;
    let all: Vec<Vec<f32>> = comm
        .all_gather(&mine)
        .and_then(|t| t.to_vec2())
        .map_err(tensor)?;
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

/// The communicator of this process: [`SingleProcess`] outside a launch, else the NCCL
/// group on `device` (which must be this rank's GPU).
pub fn from_env(device: &Device) -> crate::Result<Box<dyn Communicator>> {
    match rank_from_env()? {
        None | Some((_, 1)) => Ok(Box::new(SingleProcess)),
        Some((rank, world)) => connect(rank, world, device),
    }
}

#[cfg(feature = "nccl")]
fn connect(rank: usize, world: usize, device: &Device) -> crate::Result<Box<dyn Communicator>> {
    let id_file = std::env::var(NCCL_ID_VAR).map_err(|_| {
        crate::Error::Invalid(format!(
            "{NCCL_ID_VAR} is not set; start ranks with `experiment launch`"
        ))
    })?;
    Ok(Box::new(nccl::Nccl::connect(
        rank,
        world,
        device,
        std::path::Path::new(&id_file),
    )?))
}

#[cfg(not(feature = "nccl"))]
fn connect(_: usize, world: usize, _: &Device) -> crate::Result<Box<dyn Communicator>> {
    Err(crate::Error::Invalid(format!(
        "a {world}-process job needs NCCL: rebuild with `cargo build --release --features nccl`"
    )))
}

#[cfg(feature = "nccl")]
mod nccl {
    //! NCCL through cudarc's bindings (as candle's multi-process example): the collectives
    //! are custom ops on CUDA storage, f32 and contiguous.

    use std::path::Path;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};

    use super::Communicator;

    /// One rank of an NCCL group.
    pub struct Nccl {
        comm: Rc<Comm>,
    }

    impl Nccl {
        /// Joins the group: rank 0 writes a fresh unique id to `id_file` (atomically), the
        /// others wait for it (up to 10 minutes).
        pub fn connect(
            rank: usize,
            world: usize,
            device: &Device,
            id_file: &Path,
        ) -> crate::Result<Self> {
            let Device::Cuda(cuda) = device else {
                return Err(crate::Error::Invalid(
                    "multi-process training runs on CUDA devices only; set `device: cuda`".into(),
                ));
            };
            let nccl_err = |e| crate::Error::Invalid(format!("NCCL: {e:?}"));
            let id = if rank == 0 {
                let id = Id::new().map_err(nccl_err)?;
                let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
                crate::atomic::write(id_file, &bytes)?;
                id
            } else {
                let start = Instant::now();
                loop {
                    if let Ok(bytes) = std::fs::read(id_file) {
                        if bytes.len() == 128 {
                            let mut internal = [0 as std::ffi::c_char; 128];
                            for (slot, b) in internal.iter_mut().zip(bytes) {
                                *slot = b as std::ffi::c_char;
                            }
                            break Id::uninit(internal);
                        }
                    }
                    if start.elapsed() > Duration::from_secs(600) {
                        return Err(crate::Error::Invalid(format!(
                            "rank {rank}: rank 0 wrote no NCCL id to {} in 10 minutes",
                            id_file.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            };
            let comm = Comm::from_rank(cuda.cuda_stream(), rank, world, id).map_err(nccl_err)?;
            tracing::info!("rank {rank} of {world} joined the NCCL group");
            Ok(Self {
                comm: Rc::new(comm),
            })
        }
    }

    impl Communicator for Nccl {
        fn rank(&self) -> usize {
            self.comm.rank()
        }
        fn world_size(&self) -> usize {
            self.comm.world_size()
        }
        fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
            t.contiguous()?.apply_op1_no_bwd(&Collective {
                comm: self.comm.clone(),
                gather: false,
            })
        }
        fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
            t.contiguous()?.apply_op1_no_bwd(&Collective {
                comm: self.comm.clone(),
                gather: true,
            })
        }
    }

    /// All-reduce (sum) or all-gather (along dimension 0) of an f32 tensor.
    struct Collective {
        comm: Rc<Comm>,
        gather: bool,
    }

    // SAFETY: the op is created, applied and dropped on the rank's own thread; candle only
    // requires the bounds of the trait.
    unsafe impl Send for Collective {}
    unsafe impl Sync for Collective {}

    impl CustomOp1 for Collective {
        fn name(&self) -> &'static str {
            if self.gather {
                "nccl-all-gather"
            } else {
                "nccl-all-reduce"
            }
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("{} runs on CUDA tensors only", self.name())
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
            let dev = s.device.clone();
            let src = s.as_cuda_slice::<f32>()?;
            let src = match l.contiguous_offsets() {
                Some((0, end)) if end == src.len() => src,
                _ => candle_core::bail!("{}: the input must be contiguous", self.name()),
            };
            let n = l.shape().elem_count();
            let world = self.comm.world_size();
            let (len, shape) = if self.gather {
                let mut dims = l.dims().to_vec();
                dims[0] *= world;
                (n * world, Shape::from(dims))
            } else {
                (n, l.shape().clone())
            };
            // SAFETY: NCCL writes every element before anything reads the buffer.
            let mut dst = unsafe { dev.alloc::<f32>(len) }?;
            if self.gather {
                self.comm.all_gather(src, &mut dst)
            } else {
                self.comm.all_reduce(src, &mut dst, &ReduceOp::Sum)
            }
            .map_err(candle_core::Error::debug)?;
            Ok((CudaStorage::wrap_cuda_slice(dst, dev), shape))
        }
    }
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

    #[test]
    fn a_local_group_sums_and_gathers_in_rank_order() {
        let results = on_ranks(3, |comm| {
            let r = comm.rank() as f32;
            let mine = Tensor::new(&[[r, 10.0 * r]], &Device::Cpu).unwrap();
            // Two rounds, to check that a round does not see the previous one's tensors.
            let sum = comm
                .all_reduce_sum(&mine)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let gathered = comm.all_gather(&(mine + 1.0).unwrap()).unwrap();
            (sum, gathered.to_vec2::<f32>().unwrap())
        });
        for (sum, gathered) in results {
            assert_eq!(sum, [[3.0, 30.0]]);
            assert_eq!(gathered, [[1.0, 1.0], [2.0, 11.0], [3.0, 21.0]]);
        }
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
