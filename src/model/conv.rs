//! 3x3 convolution, stride 1, padding 1, as im2col + matrix products on CPU, with its own
//! backward pass.
//!
//! candle 0.11 computes a convolution's input gradient with a direct-loop
//! `conv_transpose2d`, which dominated the training step once BatchNorm/ReLU/pooling were
//! fused. Here every pass is a batched matrix product on candle's gemm plus a plain-Rust
//! im2col (forward, weight gradient) or col2im (input gradient):
//! `y_n = W · col(x_n)`, `dW = Σ_n dy_n · col(x_n)ᵀ`, `dx_n = col2im(Wᵀ · dy_n)`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
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

#[cfg(test)]
mod tests {
    use crate::model::testing::{max_diff, random};
    use candle_core::Var;

    use super::Conv3x3Op;

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
