//! [`LocalGroup`]: ranks as threads of one process.

use std::sync::{Arc, Condvar, Mutex};

use candle_core::{Result, Tensor};

use super::Communicator;

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
