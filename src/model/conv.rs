//! 3x3 convolution, stride 1, padding 1, as im2col + matrix products on CPU, with its own
//! backward pass.
//!
//! candle 0.11 computes a convolution's input gradient with a direct-loop
//! `conv_transpose2d`, which dominated the training step once BatchNorm/ReLU/pooling were
//! fused. Here every pass is a batched matrix product on candle's gemm plus a plain-Rust
//! im2col (forward, weight gradient) or col2im (input gradient):
//! `y_n = W · col(x_n)`, `dW = Σ_n dy_n · col(x_n)ᵀ`, `dx_n = col2im(Wᵀ · dy_n)`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The op; the bias is added outside it.
#[derive(Debug, Clone, Copy)]
pub struct Conv3x3Op;

/// `[B, C, H, W] -> [B, C*9, H*W]`: row `c*9 + ky*3 + kx` holds `x[c, y+ky-1, x+kx-1]` (0
/// outside), the layout of PyTorch's `[O, C, 3, 3]` weight rows.
fn im2col(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let hw = h * w;
    let mut col = vec![0f32; b * c * 9 * hw];
    col.par_chunks_mut(9 * hw)
        .enumerate()
        .for_each(|(nc, rows)| {
            let plane = &x[nc * hw..][..hw];
            for (k, row) in rows.chunks_mut(hw).enumerate() {
                let (dy, dx) = (k / 3, k % 3);
                for yo in 0..h {
                    let yi = yo + dy;
                    if yi < 1 || yi > h {
                        continue;
                    }
                    let src = &plane[(yi - 1) * w..][..w];
                    let dst = &mut row[yo * w..][..w];
                    // dst[xo] = src[xo + dx - 1] where in range.
                    match dx {
                        0 => dst[1..].copy_from_slice(&src[..w - 1]),
                        1 => dst.copy_from_slice(src),
                        _ => dst[..w - 1].copy_from_slice(&src[1..]),
                    }
                }
            }
        });
    col
}

/// The adjoint of [`im2col`]: sums `[B, C*9, H*W]` back into `[B, C, H, W]`.
fn col2im(col: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let hw = h * w;
    let mut x = vec![0f32; b * c * hw];
    x.par_chunks_mut(hw).enumerate().for_each(|(nc, plane)| {
        let rows = &col[nc * 9 * hw..][..9 * hw];
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
    });
    x
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

impl CustomOp2 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (o, c2, kh, kw) = l2.shape().dims4()?;
        if (c2, kh, kw) != (c, 3, 3) {
            candle_core::bail!(
                "conv3x3: weight {:?} for input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let x = f32_data(s1, l1, self.name(), "input")?;
        let weight = f32_data(s2, l2, self.name(), "weight")?;
        let device = candle_core::Device::Cpu;
        let col = Tensor::from_vec(im2col(x, [b, c, h, w]), (b, c * 9, h * w), &device)?;
        let wm = Tensor::from_slice(weight, (1, o, c * 9), &device)?;
        let y = wm.broadcast_matmul(&col)?; // [B, O, HW]
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            Shape::from((b, o, h, w)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let o = weight.dim(0)?;
        let device = x.device();
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let col = Tensor::from_vec(im2col(&xs, [b, c, h, w]), (b, c * 9, h * w), device)?;
        let dy = grad.contiguous()?.reshape((b, o, h * w))?;
        let dw = dy
            .matmul(&col.transpose(1, 2)?)? // [B, O, C*9]
            .sum(0)?
            .reshape((o, c, 3, 3))?;
        let wt = weight
            .reshape((o, c * 9))?
            .t()?
            .contiguous()?
            .unsqueeze(0)?; // [1, C*9, O]
        let dcol = wt.broadcast_matmul(&dy)?.flatten_all()?.to_vec1::<f32>()?; // [B, C*9, HW]
        let dx = Tensor::from_vec(col2im(&dcol, [b, c, h, w]), (b, c, h, w), device)?;
        Ok((Some(dx), Some(dw)))
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
    use candle_core::Var;

    use super::{conv3x3_forward_gradients, Conv3x3Op};

    /// The device-generic op: values and both gradients equal the im2col op's and candle's.
    #[test]
    fn forward_convolution_gradients_match_im2col_and_candle() {
        let x = Var::from_tensor(&random(&[3, 4, 5, 7], 1.0, 4)).unwrap();
        let w = Var::from_tensor(&random(&[6, 4, 3, 3], 1.0, 5)).unwrap();
        let upstream = random(&[3, 6, 5, 7], 1.0, 6);
        let generic = conv3x3_forward_gradients(&x, &w).unwrap();
        let im2col = x.apply_op2(&w, Conv3x3Op).unwrap();
        let candle = x.conv2d(&w, 1, 1, 1, 1).unwrap();
        assert!(max_diff(&generic, &im2col) < 1e-5);
        assert!(max_diff(&generic, &candle) < 1e-5);
        let grads = |y: candle_core::Tensor| {
            (y * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (g, i, c) = (grads(generic), grads(im2col), grads(candle));
        for reference in [&i, &c] {
            assert!(max_diff(g.get(&x).unwrap(), reference.get(&x).unwrap()) < 1e-5);
            assert!(max_diff(g.get(&w).unwrap(), reference.get(&w).unwrap()) < 1e-4);
        }
    }

    /// Output, input gradient and weight gradient agree with candle's conv2d.
    #[test]
    fn matches_candle_conv2d() {
        let x = Var::from_tensor(&random(&[3, 4, 5, 7], 1.0, 1)).unwrap();
        let w = Var::from_tensor(&random(&[6, 4, 3, 3], 1.0, 2)).unwrap();
        let upstream = random(&[3, 6, 5, 7], 1.0, 3);
        let ours = x.apply_op2(&w, Conv3x3Op).unwrap();
        let reference = x.conv2d(&w, 1, 1, 1, 1).unwrap();
        assert!(max_diff(&ours, &reference) < 1e-5);
        let g1 = (ours * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (reference * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
        assert!(max_diff(g1.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-4);
    }
}
