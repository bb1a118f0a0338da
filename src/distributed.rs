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

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

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
}
