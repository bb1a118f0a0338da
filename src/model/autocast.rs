//! Mixed precision as `torch.autocast` does it: inside an [`autocast`] scope the
//! convolutions and matrix products of the layers run in the scope's dtype (bf16), with their
//! inputs and weights cast on the way in and the result cast back to f32. Everything else
//! (BatchNorm statistics, softmax, the losses, the optimiser and the master weights) stays
//! f32, and gradients reach the f32 weights through the casts. The scope is per thread.
//! On the CPU the convolutions stay f32 (candle's CPU backend has no bf16 convolution), so
//! specs accept bf16 only with a CUDA device; the unit test below checks the casts on a
//! matmul, which the CPU backend does support.

use std::cell::Cell;

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Arithmetic precision of convolutions and matmuls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Convolutions and matmuls in bf16, the rest in f32.
    Bf16,
}

impl Precision {
    /// Whether this is f32 (the default, left out of resolved specs and their hashes).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The compute dtype of convolutions and matmuls.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

thread_local! {
    static COMPUTE: Cell<DType> = const { Cell::new(DType::F32) };
}

/// Restores the previous compute dtype when dropped.
#[must_use = "the scope ends when this guard is dropped"]
pub struct AutocastGuard {
    previous: DType,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        COMPUTE.with(|c| c.set(self.previous));
    }
}

/// Runs convolutions and matmuls of this thread in `precision` until the guard is dropped.
pub fn autocast(precision: Precision) -> AutocastGuard {
    let previous = COMPUTE.with(|c| c.replace(precision.dtype()));
    AutocastGuard { previous }
}

/// The compute dtype of the current scope (f32 outside any scope).
pub fn compute_dtype() -> DType {
    COMPUTE.with(Cell::get)
}

/// `op(x, w)` in the scope's compute dtype, the result in `x`'s dtype.
pub(crate) fn in_compute_dtype(
    x: &Tensor,
    w: &Tensor,
    op: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let dtype = compute_dtype();
    if dtype == x.dtype() && dtype == w.dtype() {
        return op(x, w);
    }
    op(&x.to_dtype(dtype)?, &w.to_dtype(dtype)?)?.to_dtype(x.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn bf16_scope_casts_the_product_and_keeps_f32_gradients() {
        let device = Device::Cpu;
        let x = Tensor::new(&[[1.001f32, 2.0], [3.0, -4.0]], &device).unwrap();
        let w = Var::new(&[[0.5f32, 0.25], [1.0 / 3.0, 2.0]], &device).unwrap();
        let exact = x.matmul(w.as_tensor()).unwrap();
        let (cast, grad) = {
            let _scope = autocast(Precision::Bf16);
            assert_eq!(compute_dtype(), DType::BF16);
            let y = in_compute_dtype(&x, w.as_tensor(), |a, b| a.matmul(b)).unwrap();
            let grads = y.sum_all().unwrap().backward().unwrap();
            (y, grads.get(w.as_tensor()).unwrap().clone())
        };
        assert_eq!(compute_dtype(), DType::F32, "the scope ends with its guard");
        assert_eq!(cast.dtype(), DType::F32);
        assert_eq!(grad.dtype(), DType::F32);
        let (a, b) = (
            exact.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cast.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        // bf16 keeps 8 significant bits: close, and not bit-identical to f32.
        assert!(a
            .iter()
            .zip(&b)
            .all(|(p, q)| (p - q).abs() <= 0.02 * p.abs().max(1.0)));
        assert_ne!(a, b);
        // d(sum xW)/dW = x^T 1: column sums of x in each row of the gradient.
        let g = grad.to_vec2::<f32>().unwrap();
        assert!(
            (g[0][0] - 4.001).abs() < 0.02 && (g[1][1] + 2.0).abs() < 0.02,
            "{g:?}"
        );
    }
}
