//! The MoCo key queue (docs/method.md §6): `[dim, K]` unit columns written as a ring buffer, each with
//! the pre-training clip it came from, so that a query's own clip can be kept out of its
//! negatives (`method.mask_same_clip`).

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
    /// The corpus clip of each column (`-1`: a random initial key).
    pub ids: Vec<i64>,
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
            ids: vec![-1; size],
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

    /// Writes `keys` (`[B, dim]`, already normalised) of the corpus clips `clips` at the
    /// pointer and advances it. Requires `K % B == 0`, as the official code.
    pub fn enqueue(&mut self, keys: &Tensor, clips: &[usize]) -> Result<()> {
        let b = keys.dims()[0];
        if self.len() % b != 0 {
            candle_core::bail!(
                "queue size {} is not a multiple of the batch size {b}",
                self.len()
            );
        }
        if clips.len() != b {
            candle_core::bail!("{b} keys enqueued with {} clip ids", clips.len());
        }
        for (slot, &clip) in self.ids[self.ptr..self.ptr + b].iter_mut().zip(clips) {
            *slot = clip as i64;
        }
        self.keys = self.keys.slice_assign(
            &[0..self.keys.dims()[0], self.ptr..self.ptr + b],
            &keys.detach().t()?,
        )?;
        self.ptr = (self.ptr + b) % self.len();
        Ok(())
    }

    /// `[B, K]`: 0 where column `j` may serve as a negative for the query of clip
    /// `query_clips[i]`, and a large negative number (added to the logits) where it holds a
    /// key of that same clip.
    pub fn same_clip_mask(&self, query_clips: &[usize], dtype: DType) -> Result<Tensor> {
        let values: Vec<f32> = query_clips
            .iter()
            .flat_map(|&clip| {
                self.ids
                    .iter()
                    .map(move |&id| if id == clip as i64 { -1e9 } else { 0.0 })
            })
            .collect();
        Tensor::from_vec(values, (query_clips.len(), self.len()), self.keys.device())?
            .to_dtype(dtype)
    }

    /// `keys`, the write pointer `ptr` (an i64 scalar) and the clip `ids`, for checkpoints.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("keys".to_owned(), self.keys.clone()),
            (
                "ids".to_owned(),
                Tensor::from_vec(self.ids.clone(), self.ids.len(), self.keys.device())?,
            ),
            (
                "ptr".to_owned(),
                Tensor::new(self.ptr as i64, self.keys.device())?,
            ),
        ])
    }

    /// Restores what [`KeyQueue::state`] saved; the shape must match. A checkpoint written
    /// before clip ids were kept restores them as unknown (`-1`).
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
        self.ids = match state.get("ids") {
            Some(ids) => ids.to_dtype(DType::I64)?.to_vec1::<i64>()?,
            None => vec![-1; self.len()],
        };
        if self.ids.len() != self.len() {
            candle_core::bail!(
                "queue ids hold {} entries for {} keys",
                self.ids.len(),
                self.len()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_hides_keys_of_the_query_clip_and_survives_a_checkpoint() {
        let device = Device::Cpu;
        let mut queue = KeyQueue::new(3, 4, &mut crate::rng::stream(1, "q"), &device).unwrap();
        let keys = Tensor::ones((2, 3), DType::F32, &device).unwrap();
        queue.enqueue(&keys, &[7, 9]).unwrap();
        let mask = queue.same_clip_mask(&[9, 5], DType::F32).unwrap();
        let mask = mask.to_vec2::<f32>().unwrap();
        assert_eq!(mask[0], vec![0.0, -1e9, 0.0, 0.0]);
        assert_eq!(mask[1], vec![0.0; 4]);
        assert!(queue.enqueue(&keys, &[1]).is_err());
        let saved: HashMap<String, Tensor> = queue.state().unwrap().into_iter().collect();
        let mut restored = KeyQueue::new(3, 4, &mut crate::rng::stream(2, "q"), &device).unwrap();
        restored.load_state(&saved).unwrap();
        assert_eq!((restored.ptr, &restored.ids), (2, &vec![7, 9, -1, -1]));
    }
}
