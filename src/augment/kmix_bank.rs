//! k-mix's memory bank: a FIFO of earlier k-mix inputs and their clusters that lets go of
//! the values of entries the partner rule can no longer draw.
//!
//! The partner rule walks the clusters in a fixed order per anchor cluster and stops at the
//! first one with a bank member (docs/method.md §3.3.2). An entry of cluster `c` can never be
//! drawn again once, for every anchor cluster, some cluster walked before `c` holds a newer
//! entry: that newer entry stays in the FIFO at least as long as the old one, so every walk
//! stops before `c`. (Below `warmup` entries the partner is any entry, so nothing is let go
//! until the bank reaches it; it never shrinks again.) The entry keeps its place and cluster,
//! so the candidates, their order and every random draw stay exactly as they were.

use std::collections::VecDeque;
use std::sync::Arc;

/// One bank entry: its cluster, and its values while the partner rule can still draw it.
#[derive(Debug, Clone)]
struct Entry {
    cluster: usize,
    values: Option<Arc<[f32]>>,
}

/// The k-mix bank (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct KmixBank {
    entries: VecDeque<Entry>,
    capacity: usize,
    warmup: usize,
    /// Entries pushed so far: the push index of the next one.
    pushes: u64,
    /// Per anchor cluster, every cluster in the order the partner rule walks them.
    orders: Vec<Vec<usize>>,
    /// Per cluster, the push index of its newest entry.
    newest: Vec<Option<u64>>,
    /// Per cluster, the push indices of its entries that still hold values, oldest first.
    held: Vec<VecDeque<u64>>,
}

impl KmixBank {
    /// An empty bank of at most `capacity` entries; `orders[a]` is the walk for anchor
    /// cluster `a`, over every cluster.
    pub(super) fn new(capacity: usize, warmup: usize, orders: Vec<Vec<usize>>) -> Self {
        let clusters = orders.len();
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            warmup,
            pushes: 0,
            orders,
            newest: vec![None; clusters],
            held: vec![VecDeque::new(); clusters],
        }
    }

    /// Number of entries, held or let go.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bank is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The walk for anchor cluster `anchor`.
    pub(super) fn order(&self, anchor: usize) -> &[usize] {
        &self.orders[anchor]
    }

    /// Positions (oldest first) of the entries of `cluster`.
    pub(super) fn members(&self, cluster: usize) -> impl Iterator<Item = usize> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.cluster == cluster)
            .map(|(i, _)| i)
    }

    /// The values of the entry at `position`.
    pub(super) fn values(&self, position: usize) -> &[f32] {
        self.entries[position]
            .values
            .as_deref()
            .expect("k-mix drew a bank entry its release rule had let go (a bug in kmix_bank)")
    }

    /// Appends `x` of `cluster`, dropping the oldest entry when full, then lets go of the
    /// values no walk can reach any more.
    pub(super) fn push(&mut self, x: Arc<[f32]>, cluster: usize) {
        if self.entries.len() == self.capacity {
            let oldest = self.pushes - self.entries.len() as u64;
            if let Some(e) = self.entries.pop_front() {
                let held = &mut self.held[e.cluster];
                if held.front() == Some(&oldest) {
                    held.pop_front();
                }
            }
        }
        self.entries.push_back(Entry {
            cluster,
            values: Some(x),
        });
        self.held[cluster].push_back(self.pushes);
        self.newest[cluster] = Some(self.pushes);
        self.pushes += 1;
        self.release();
    }

    /// Lets go of the values of every entry older than its cluster's reach (see the module docs).
    fn release(&mut self) {
        if self.entries.len() < self.warmup {
            return;
        }
        // reach[c]: the oldest push index a walk could still stop at in cluster `c`; `None`
        // where some walk reaches `c` before any other cluster has an entry.
        let mut reach = vec![Some(u64::MAX); self.newest.len()];
        for order in &self.orders {
            let mut before: Option<u64> = None;
            for &c in order {
                reach[c] = reach[c].min(before);
                before = before.max(self.newest[c]);
            }
        }
        let first = self.pushes - self.entries.len() as u64;
        for (c, reach) in reach.into_iter().enumerate() {
            let Some(reach) = reach else { continue };
            while let Some(&pushed) = self.held[c].front().filter(|&&p| p < reach) {
                self.held[c].pop_front();
                self.entries[(pushed - first) as usize].values = None;
            }
        }
    }

    /// Entries that still hold values.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held.iter().map(VecDeque::len).sum()
    }
}
