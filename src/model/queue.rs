//! The MoCo key queue (SPEC 6): `[dim, K]` unit columns written as a ring buffer.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use rand_distr::{Distribution, StandardNormal};

/// A ring buffer of L2-normalised keys, stored `[dim, K]` as in the official code.
#[derive(Debug, Clone)]
pub struct KeyQueue {
    /// The keys, one per column.
    pub keys: Tensor,
    /// Next column to write.
    pub ptr: usize,
}

impl KeyQueue {
    /// `K` columns drawn N(0, 1) from `rng` and normalised.
    pub fn new(dim: usize, size: usize, rng: &mut impl rand::Rng, device: &Device) -> Result<Self> {
        let values: Vec<f32> = (0..dim * size)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        let raw = Tensor::from_vec(values, (dim, size), device)?;
        let norms = raw.sqr()?.sum_keepdim(0)?.sqrt()?;
        Ok(Self {
            keys: raw.broadcast_div(&norms)?,
            ptr: 0,
        })
    }

    /// Number of key slots.
    pub fn len(&self) -> usize {
        self.keys.dims()[1]
    }

    /// Always false: a queue has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `keys` (`[B, dim]`, already normalised) at the pointer and advances it.
    /// Requires `K % B == 0`, as the official code.
    pub fn enqueue(&mut self, keys: &Tensor) -> Result<()> {
        let b = keys.dims()[0];
        if self.len() % b != 0 {
            candle_core::bail!(
                "queue size {} is not a multiple of the batch size {b}",
                self.len()
            );
        }
        self.keys = self.keys.slice_assign(
            &[0..self.keys.dims()[0], self.ptr..self.ptr + b],
            &keys.detach().t()?,
        )?;
        self.ptr = (self.ptr + b) % self.len();
        Ok(())
    }

    /// `keys` and the write pointer `ptr` (an i64 scalar), for checkpoints.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("keys".to_owned(), self.keys.clone()),
            (
                "ptr".to_owned(),
                Tensor::new(self.ptr as i64, self.keys.device())?,
            ),
        ])
    }

    /// Restores what [`KeyQueue::state`] saved; the shape must match.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |name: &str| {
            state
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("queue state has no `{name}`")))
        };
        let keys = get("keys")?;
        if keys.dims() != self.keys.dims() {
            candle_core::bail!(
                "queue keys {:?} where the spec makes {:?}",
                keys.dims(),
                self.keys.dims()
            );
        }
        self.keys = keys.to_device(self.keys.device())?;
        self.ptr = get("ptr")?.to_dtype(DType::I64)?.to_scalar::<i64>()? as usize;
        Ok(())
    }
}
