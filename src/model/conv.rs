//! 3x3 convolution, stride 1, padding 1, as im2col + matrix products on CPU, with its own
//! backward pass.
//!
//! candle 0.11 computes a convolution's input gradient with a direct-loop
//! `conv_transpose2d`, which dominated the training step once BatchNorm/ReLU/pooling were
//! fused. Here every pass is a matrix product per sample (the `gemm` crate, candle's own CPU
//! matmul, one thread per sample) with a plain-Rust im2col (forward, weight gradient) or
//! col2im (input gradient): `y_n = W · col(x_n)`, `dW = Σ_n dy_n · col(x_n)ᵀ`,
//! `dx_n = col2im(Wᵀ · dy_n)`; the bias is added in the same pass and its gradient summed
//! with the weight gradient's (candle's strided reduction for a broadcast bias was 5 % of
//! the training step). Each worker reuses one column buffer of a single sample
//! (`C*9 x H*W`, 3.5 MB for 64 channels at 32x48) instead of the whole batch's, and the
//! inputs are read in place: no batch-sized temporaries beyond the outputs.
//!
//! Determinism: outputs and input gradients are per sample; the weight gradient is summed
//! over fixed groups of samples, in order, whatever the thread count or scheduling.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// The op on (input, weight, bias).
#[derive(Debug, Clone, Copy)]
struct Conv3x3Op;

/// `conv3x3(x, weight) + bias` on the CPU (f32, contiguous), with its own backward pass.
pub fn conv3x3_cpu(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(weight, bias, Conv3x3Op)
}

/// Samples whose weight gradients one task sums (fixed, for a deterministic sum).
const WEIGHT_GRADIENT_GROUP: usize = 4;

/// `[C, H, W] -> [C*9, H*W]` into `col`: row `c*9 + ky*3 + kx` holds `x[c, y+ky-1, x+kx-1]`
/// (0 outside), the layout of PyTorch's `[O, C, 3, 3]` weight rows.
fn im2col(plane_stack: &[f32], [c, h, w]: [usize; 3], col: &mut [f32]) {
    let hw = h * w;
    for (ch, rows) in col.chunks_mut(9 * hw).enumerate().take(c) {
        let plane = &plane_stack[ch * hw..][..hw];
        for (k, row) in rows.chunks_mut(hw).enumerate() {
            let (dy, dx) = (k / 3, k % 3);
            for yo in 0..h {
                let yi = yo + dy;
                let dst = &mut row[yo * w..][..w];
                if yi < 1 || yi > h {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[(yi - 1) * w..][..w];
                // dst[xo] = src[xo + dx - 1] where in range.
                match dx {
                    0 => {
                        dst[0] = 0.0;
                        dst[1..].copy_from_slice(&src[..w - 1]);
                    }
                    1 => dst.copy_from_slice(src),
                    _ => {
                        dst[..w - 1].copy_from_slice(&src[1..]);
                        dst[w - 1] = 0.0;
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: sums `[C*9, H*W]` into `[C, H, W]` (overwriting it).
fn col2im(col: &[f32], [c, h, w]: [usize; 3], planes: &mut [f32]) {
    let hw = h * w;
    planes.fill(0.0);
    for (ch, plane) in planes.chunks_mut(hw).enumerate().take(c) {
        let rows = &col[ch * 9 * hw..][..9 * hw];
        for (k, row) in rows.chunks(hw).enumerate() {
            let (dy, dx) = (k / 3, k % 3);
            for yo in 0..h {
                let yi = yo + dy;
                if yi < 1 || yi > h {
                    continue;
                }
                let dst = &mut plane[(yi - 1) * w..][..w];
                let src = &row[yo * w..][..w];
                let (dst, src) = match dx {
                    0 => (&mut dst[..w - 1], &src[1..]),
                    1 => (&mut dst[..], src),
                    _ => (&mut dst[1..], &src[..w - 1]),
                };
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// A matrix operand: data, rows x cols, and its row and column strides.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (a view: strides swapped).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element the strides address lies in `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` with `accumulate`), `dst` row-major, on the
/// calling thread.
fn matmul_into(dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && dst.len() == m * n && lhs.in_bounds() && rhs.in_bounds(),
        "conv3x3: matrix shapes"
    );
    // SAFETY: the assertion above keeps every address the strides reach inside the three
    // slices, and `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `[B, C, H, W] * [O, C, 3, 3] + [O] -> [B, O, H, W]`.
pub(super) fn conv_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    [b, c, h, w]: [usize; 4],
    o: usize,
) -> Vec<f32> {
    let (hw, k) = (h * w, c * 9);
    let mut y = vec![0f32; b * o * hw];
    y.par_chunks_mut(o * hw).enumerate().for_each_init(
        || vec![0f32; k * hw],
        |col, (n, yn)| {
            for (row, &bo) in yn.chunks_mut(hw).zip(bias) {
                row.fill(bo);
            }
            im2col(&x[n * c * hw..][..c * hw], [c, h, w], col);
            matmul_into(yn, Mat::new(weight, o, k), Mat::new(col, k, hw), true);
        },
    );
    y
}

/// The weight and bias gradients `Σ_n dy_n · col(x_n)ᵀ` (`[O, C*9]`) and `Σ_n Σ_hw dy_n`
/// (`[O]`), summed per fixed group of samples and then over groups in order.
pub(super) fn conv_parameter_gradients(
    x: &[f32],
    dy: &[f32],
    [b, c, h, w]: [usize; 4],
    o: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (hw, k) = (h * w, c * 9);
    let groups: Vec<usize> = (0..b).step_by(WEIGHT_GRADIENT_GROUP).collect();
    let partial: Vec<(Vec<f32>, Vec<f32>)> = groups
        .par_iter()
        .map(|&first| {
            let (mut dw, mut db) = (vec![0f32; o * k], vec![0f32; o]);
            let mut col = vec![0f32; k * hw];
            for n in first..(first + WEIGHT_GRADIENT_GROUP).min(b) {
                im2col(&x[n * c * hw..][..c * hw], [c, h, w], &mut col);
                let dy_n = &dy[n * o * hw..][..o * hw];
                matmul_into(
                    &mut dw,
                    Mat::new(dy_n, o, hw),
                    Mat::new(&col, k, hw).t(),
                    n > first,
                );
                for (d, row) in db.iter_mut().zip(dy_n.chunks(hw)) {
                    *d += row.iter().sum::<f32>();
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw_total, mut db_total) = (vec![0f32; o * k], vec![0f32; o]);
    for (dw, db) in &partial {
        for (t, v) in dw_total.iter_mut().zip(dw) {
            *t += v;
        }
        for (t, v) in db_total.iter_mut().zip(db) {
            *t += v;
        }
    }
    (dw_total, db_total)
}

/// The input gradient `col2im(Wᵀ · dy_n)` per sample.
pub(super) fn conv_input_gradient(
    dy: &[f32],
    weight: &[f32],
    [b, c, h, w]: [usize; 4],
    o: usize,
) -> Vec<f32> {
    let (hw, k) = (h * w, c * 9);
    let mut dx = vec![0f32; b * c * hw];
    dx.par_chunks_mut(c * hw).enumerate().for_each_init(
        || vec![0f32; k * hw],
        |dcol, (n, dxn)| {
            let dyn_ = Mat::new(&dy[n * o * hw..][..o * hw], o, hw);
            matmul_into(dcol, Mat::new(weight, o, k).t(), dyn_, false);
            col2im(dcol, [c, h, w], dxn);
        },
    );
    dx
}

/// The contiguous f32 data of a custom op's CPU argument, or an error naming op and argument.
pub(super) fn f32_data<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
    what: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: {what} must be f32");
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: {what} must be contiguous"),
    }
}

/// `f` on the contiguous f32 data of a CPU tensor, read in place.
pub(super) fn with_cpu_data<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("a fused CPU op's {what} must be on the CPU");
    };
    Ok(f(f32_data(cpu, layout, "fused CPU op", what)?))
}

impl CustomOp3 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (o, c2, kh, kw) = l2.shape().dims4()?;
        if (c2, kh, kw) != (c, 3, 3) || l3.shape().dims() != [o] {
            candle_core::bail!(
                "conv3x3: weight {:?} and bias {:?} for input {:?}",
                l2.shape(),
                l3.shape(),
                l1.shape()
            );
        }
        let x = f32_data(s1, l1, self.name(), "input")?;
        let weight = f32_data(s2, l2, self.name(), "weight")?;
        let bias = f32_data(s3, l3, self.name(), "bias")?;
        Ok((
            CpuStorage::F32(conv_forward(x, weight, bias, [b, c, h, w], o)),
            Shape::from((b, o, h, w)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let o = weight.dim(0)?;
        let dims = [b, c, h, w];
        let device = x.device();
        // The first layer's input is data: no gradient to compute for it.
        let needs_dx = x.track_op();
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let (dw, db) = with_cpu_data(&x, "input", |xs| {
            with_cpu_data(&grad, "gradient", |dy| {
                conv_parameter_gradients(xs, dy, dims, o)
            })
        })??;
        let dx = if needs_dx {
            let dx = with_cpu_data(weight, "weight", |ws| {
                with_cpu_data(&grad, "gradient", |dy| conv_input_gradient(dy, ws, dims, o))
            })??;
            Some(Tensor::from_vec(dx, (b, c, h, w), device)?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, (o, c, 3, 3), device)?),
            Some(Tensor::from_vec(db, o, device)?),
        ))
    }
}

/// 3x3 convolution (stride 1, padding 1) on any device whose gradients are themselves
/// forward convolutions, so that with cuDNN every convolution of a training step, forward
/// and backward, runs through cuDNN (candle 0.11 computes conv2d's input gradient with its
/// own `conv_transpose2d` kernel):
///
/// - input gradient: `dx = conv2d(dy, flip(W)^T)`, the kernel flipped in both spatial axes
///   with its in/out channels swapped (padding k-1-p = 1);
/// - weight gradient: `dW^T = conv2d(x^T, dy^T)` over tensors with batch and channel axes
///   swapped (`[C, B, H, W]` by a `[O, B, H, W]` kernel, padding 1, gives `[C, O, 3, 3]`).
///
/// The forward is candle's `conv2d` on detached inputs; [`ConvGradients`] passes its result
/// through and owns the backward pass.
pub fn conv3x3_forward_gradients(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let y = x.detach().conv2d(&weight.detach(), 1, 1, 1, 1)?;
    y.apply_op3(x, weight, ConvGradients)
}

/// The identity on its first argument (the forward convolution of the other two) with the
/// backward pass of [`conv3x3_forward_gradients`].
#[derive(Debug, Clone, Copy)]
pub struct ConvGradients;

/// A copy of a contiguous tensor's storage, or an error naming the op.
fn pass_through<S: BackendStorage>(s: &S, l: &Layout) -> Result<(S, Shape)> {
    if !l.is_contiguous() || l.start_offset() != 0 {
        candle_core::bail!("conv3x3 gradients: the forward result must be contiguous");
    }
    Ok((s.try_clone(l)?, l.shape().clone()))
}

impl CustomOp3 for ConvGradients {
    fn name(&self) -> &'static str {
        "conv3x3-gradients-by-forward-convolutions"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        pass_through(s1, l1)
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        pass_through(s1, l1)
    }

    fn bwd(
        &self,
        _y: &Tensor,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let reversed = Tensor::new(&[2u32, 1, 0], weight.device())?;
        let flipped = weight
            .index_select(&reversed, 2)?
            .index_select(&reversed, 3)?
            .transpose(0, 1)?
            .contiguous()?;
        let dx = grad.conv2d(&flipped, 1, 1, 1, 1)?;
        let dw = x
            .transpose(0, 1)?
            .contiguous()?
            .conv2d(&grad.transpose(0, 1)?.contiguous()?, 1, 1, 1, 1)?
            .transpose(0, 1)?
            .contiguous()?;
        Ok((None, Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::testing::{max_diff, random};
    use candle_core::backprop::GradStore;
    use candle_core::{Tensor, Var};

    use super::{conv3x3_cpu, conv3x3_forward_gradients};

    /// The gradients of `sum(y * upstream)`.
    fn gradients(y: Tensor, upstream: &Tensor) -> GradStore {
        (y * upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    }

    /// The device-generic op: values and both gradients equal the im2col op's and candle's.
    #[test]
    fn forward_convolution_gradients_match_im2col_and_candle() {
        let x = Var::from_tensor(&random(&[3, 4, 5, 7], 1.0, 4)).unwrap();
        let w = Var::from_tensor(&random(&[6, 4, 3, 3], 1.0, 5)).unwrap();
        let upstream = random(&[3, 6, 5, 7], 1.0, 6);
        let generic = conv3x3_forward_gradients(&x, &w).unwrap();
        let zero = Tensor::zeros(6, candle_core::DType::F32, x.device()).unwrap();
        let im2col = conv3x3_cpu(&x, &w, &zero).unwrap();
        let candle = x.conv2d(&w, 1, 1, 1, 1).unwrap();
        assert!(max_diff(&generic, &im2col) < 1e-5);
        assert!(max_diff(&generic, &candle) < 1e-5);
        let grads = |y| gradients(y, &upstream);
        let (g, i, c) = (grads(generic), grads(im2col), grads(candle));
        for reference in [&i, &c] {
            assert!(max_diff(g.get(&x).unwrap(), reference.get(&x).unwrap()) < 1e-5);
            assert!(max_diff(g.get(&w).unwrap(), reference.get(&w).unwrap()) < 1e-4);
        }
    }

    /// Output and the input, weight and bias gradients agree with candle's conv2d plus a
    /// broadcast bias (a batch of 9: two whole weight-gradient groups and a partial one).
    #[test]
    fn matches_candle_conv2d() {
        let x = Var::from_tensor(&random(&[9, 4, 5, 7], 1.0, 1)).unwrap();
        let w = Var::from_tensor(&random(&[6, 4, 3, 3], 1.0, 2)).unwrap();
        let b = Var::from_tensor(&random(&[6], 1.0, 7)).unwrap();
        let upstream = random(&[9, 6, 5, 7], 1.0, 3);
        let ours = conv3x3_cpu(&x, &w, &b).unwrap();
        let reference = x
            .conv2d(&w, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 6, 1, 1)).unwrap())
            .unwrap();
        assert!(max_diff(&ours, &reference) < 1e-5);
        let (g1, g2) = (gradients(ours, &upstream), gradients(reference, &upstream));
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
        assert!(max_diff(g1.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-4);
        assert!(max_diff(g1.get(&b).unwrap(), g2.get(&b).unwrap()) < 1e-4);
    }
}
