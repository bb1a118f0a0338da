//! [`TcpGroup`]: ranks as CPU processes exchanging tensors over TCP (loopback on one
//! machine, or the network between nodes).

use std::io::{Read, Write};
use std::net::TcpStream;

use candle_core::{DType, Device, Result, Tensor};

use super::{Communicator, Rendezvous};

/// Ranks as processes on one machine exchanging CPU tensors over loopback TCP: the CPU
/// counterpart of the NCCL group, as gloo is PyTorch's. `experiment launch --processes N`
/// uses it, which is how the multi-process path (launcher, rendezvous, rank 0 writing) is
/// tested without GPUs. Rank 0 is the hub: it receives every rank's tensor, combines them in
/// rank order and sends the result back, so every rank gets the same bits.
pub struct TcpGroup {
    rank: usize,
    world: usize,
    /// Rank 0: the links to ranks 1..world, in rank order; the others: the link to rank 0.
    links: Vec<TcpStream>,
}

impl TcpGroup {
    /// Joins the group through `rendezvous`: rank 0 listens (on a free loopback port named
    /// in the rendezvous file, or on the socket's port) and accepts the others, which
    /// connect and say their rank.
    pub fn connect(rank: usize, world: usize, rendezvous: &Rendezvous) -> crate::Result<Self> {
        let links = rendezvous.links(rank, world)?;
        for link in &links {
            link.set_nodelay(true)
                .map_err(|e| crate::Error::io("rendezvous link", e))?;
        }
        tracing::info!("rank {rank} of {world} joined the TCP group");
        Ok(Self { rank, world, links })
    }

    /// Every rank's `t`, combined by `combine` (given in rank order) on rank 0, which sends
    /// the result to every rank.
    fn through_hub(
        &self,
        t: &Tensor,
        combine: impl Fn(Vec<Tensor>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if self.rank == 0 {
            let mut all = vec![t.to_dtype(DType::F32)?];
            for link in &self.links {
                all.push(self.receive(link)?);
            }
            let result = combine(all)?;
            for link in &self.links {
                self.send(link, &result)?;
            }
            Ok(result)
        } else {
            self.send(&self.links[0], t)?;
            self.receive(&self.links[0])
        }
    }

    /// Sends `t` as f32: the number of dims, the dims, then the values, little-endian.
    fn send(&self, mut link: &TcpStream, t: &Tensor) -> Result<()> {
        let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut header = vec![t.rank() as u64];
        header.extend(t.dims().iter().map(|&d| d as u64));
        let bytes: Vec<u8> = header
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .chain(values.iter().flat_map(|v| v.to_le_bytes()))
            .collect();
        link.write_all(&bytes).map_err(|e| self.broken(e))
    }

    /// Receives a tensor [`TcpGroup::send`] sent, on the CPU.
    fn receive(&self, mut link: &TcpStream) -> Result<Tensor> {
        let mut word = [0u8; 8];
        let mut next = || -> Result<usize> {
            link.read_exact(&mut word).map_err(|e| self.broken(e))?;
            Ok(u64::from_le_bytes(word) as usize)
        };
        let n_dims = next()?;
        let dims = (0..n_dims).map(|_| next()).collect::<Result<Vec<_>>>()?;
        let mut bytes = vec![0u8; dims.iter().product::<usize>() * 4];
        link.read_exact(&mut bytes).map_err(|e| self.broken(e))?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Tensor::from_vec(values, dims, &Device::Cpu)
    }

    fn broken(&self, e: std::io::Error) -> candle_core::Error {
        candle_core::Error::Msg(format!(
            "rank {}: the TCP group broke ({e}); another rank probably failed",
            self.rank
        ))
    }
}

impl Communicator for TcpGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        // Summed in rank order on rank 0, like `LocalGroup`.
        self.through_hub(t, |all| {
            let mut sum = all[0].clone();
            for other in &all[1..] {
                sum = (sum + other)?;
            }
            Ok(sum)
        })
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        self.through_hub(t, |all| Tensor::cat(&all, 0))
    }
}
