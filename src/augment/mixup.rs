//! Log-mixup-exp with a FIFO memory bank (docs/method.md §3.2, BYOL-A's Mixup).

use std::collections::VecDeque;
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Mixup parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixupConfig {
    /// The mixing weight is `ratio * U[0, 1)`.
    pub ratio: f64,
    /// Memory bank size.
    pub bank_size: usize,
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self {
            ratio: 0.4,
            bank_size: 2048,
        }
    }
}

/// A FIFO bank of earlier (un-mixed) inputs. Entries are shared, not copied: the two views
/// of a clip push the same input, and a full bank of 2 048 such pairs holds 1 024 arrays.
#[derive(Debug, Clone, Default)]
pub struct MemoryBank {
    entries: VecDeque<Arc<[f32]>>,
    capacity: usize,
}

impl MemoryBank {
    /// An empty bank holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `x`, dropping the oldest entry when full.
    pub fn push(&mut self, x: Arc<[f32]>) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(x);
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> &VecDeque<Arc<[f32]>> {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bank is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `log((1 - alpha) exp(x) + alpha exp(z) + eps)` elementwise.
pub fn log_mixup_exp(x: &[f32], z: &[f32], alpha: f32) -> Vec<f32> {
    x.iter()
        .zip(z)
        .map(|(&a, &b)| ((1.0 - alpha) * a.exp() + alpha * b.exp() + f32::EPSILON).ln())
        .collect()
}

/// Random-partner mixup: mixes `x` with a uniformly chosen bank entry, then pushes `x`
/// (shared, not copied).
pub fn mixup(x: &Arc<[f32]>, bank: &mut MemoryBank, ratio: f64, rng: &mut impl Rng) -> Vec<f32> {
    let alpha = (ratio * rng.random::<f64>()) as f32;
    let out = if bank.is_empty() {
        x.to_vec()
    } else {
        let z = &bank.entries()[rng.random_range(0..bank.len())];
        log_mixup_exp(x, z, alpha)
    };
    bank.push(Arc::clone(x));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_call_is_identity_then_mixes_within_bounds() {
        let mut bank = MemoryBank::new(2);
        let mut rng = crate::rng::stream(1, "mixup");
        let x: Arc<[f32]> = Arc::from(vec![0.0f32; 4]);
        assert_eq!(mixup(&x, &mut bank, 0.4, &mut rng), x.to_vec());
        let y: Arc<[f32]> = Arc::from(vec![1.0f32; 4]);
        let out = mixup(&y, &mut bank, 0.4, &mut rng);
        // A weighted log-sum-exp of 1 and 0 with weight <= 0.4 on 0 lies in [ln(0.6e + 0.4), 1].
        assert!(
            out.iter()
                .all(|&v| v <= 1.0 + 1e-6 && v >= (0.6 * 1f32.exp() + 0.4).ln() - 1e-6),
            "{out:?}"
        );
        mixup(&y, &mut bank, 0.4, &mut rng);
        assert_eq!(bank.len(), 2, "bank is capped");
    }
}
