//! Helpers for the model's unit tests.

use candle_core::{Device, Tensor};
use rand::Rng;

/// A tensor of `shape` with values uniform in ±`bound`, from a seeded stream.
pub(crate) fn random(shape: &[usize], bound: f32, seed: u64) -> Tensor {
    let mut rng = crate::rng::stream(seed, "model/testing");
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest absolute difference.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
