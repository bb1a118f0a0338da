//! Whether bf16 pays on this CPU through candle: the training step's matrix products (a 3x3
//! convolution's im2col product for one sample, and the encoder's fully connected layer) in
//! f32 and in bf16 (inputs rounded to bf16, as `precision: bf16` would cast them), with the
//! bf16 result's largest error relative to the f32 product's largest value. JSON lines
//! (`bench`: `cpu_matmul`), one per shape and dtype.
//!
//! `cargo bench --bench cpu_bf16 -- [--reps 5] [--warmup 1]`

mod common;

use candle_core::{DType, Device, Tensor};
use common::{arg, emit, time_reps};

fn main() -> candle_core::Result<()> {
    let (reps, warmup) = (arg("--reps", 5), arg("--warmup", 1));
    let device = Device::Cpu;
    // (name, m, k, n): conv 64 -> 64 channels on a 64x96 map; fc 1024 -> 2048 on 64 x 12 frames.
    for (name, m, k, n) in [
        ("conv3x3_64ch_64x96", 64, 576, 6144),
        ("fc_1024_2048", 768, 1024, 2048),
    ] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &device)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &device)?;
        let exact = a.matmul(&b)?;
        let scale = exact.abs()?.max_all()?.to_scalar::<f32>()?;
        for dtype in [DType::F32, DType::BF16] {
            let (x, y) = (a.to_dtype(dtype)?, b.to_dtype(dtype)?);
            let product = x.matmul(&y)?.to_dtype(DType::F32)?;
            let error = (product - &exact)?.abs()?.max_all()?.to_scalar::<f32>()? / scale;
            let times = time_reps(reps, warmup, 1.0, || {
                x.matmul(&y).expect("matmul");
            });
            let fields = serde_json::json!({
                "bench": "cpu_matmul", "shape": name, "m": m, "k": k, "n": n,
                "dtype": format!("{dtype:?}").to_lowercase(),
                "max_error_relative_to_max": error,
            });
            emit(
                fields,
                warmup,
                &times,
                (2 * m * k * n) as f64 / 1e9,
                "GFLOP",
            );
        }
    }
    Ok(())
}
