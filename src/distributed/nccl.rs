//! NCCL through cudarc's bindings (as candle's multi-process example): the collectives
//! are custom ops on CUDA storage, f32 and contiguous.

use std::rc::Rc;

use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};

use super::{Communicator, Rendezvous};

/// One rank of an NCCL group.
pub struct Nccl {
    comm: Rc<Comm>,
}

impl Nccl {
    /// Joins the group: rank 0 shares a fresh unique id through `rendezvous` (the file, or
    /// its socket), the others wait for it (up to 10 minutes).
    pub fn connect(
        rank: usize,
        world: usize,
        device: &Device,
        rendezvous: &Rendezvous,
    ) -> crate::Result<Self> {
        let Device::Cuda(cuda) = device else {
            return Err(crate::Error::Invalid(
                "multi-process training runs on CUDA devices only; set `device: cuda`".into(),
            ));
        };
        let nccl_err = |e| crate::Error::Invalid(format!("NCCL: {e:?}"));
        let bytes = rendezvous.share(
            rank,
            world,
            || {
                let id = Id::new().map_err(nccl_err)?;
                Ok(id.internal().iter().map(|&c| c as u8).collect())
            },
            |bytes| bytes.len() == 128,
        )?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (slot, &b) in internal.iter_mut().zip(&bytes) {
            *slot = b as std::ffi::c_char;
        }
        let id = Id::uninit(internal);
        let comm = Comm::from_rank(cuda.cuda_stream(), rank, world, id).map_err(nccl_err)?;
        if rank == 0 {
            // The group is complete (joining is collective): the id has served its purpose.
            rendezvous.done();
        }
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
