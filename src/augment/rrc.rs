//! Random resize crop (docs/method.md §3.1, identical to BYOL-A): paste into a zero canvas, crop a
//! random box, resize back with bicubic interpolation (A = -0.75, align_corners, clamped
//! borders) exactly as PyTorch's `F.interpolate(mode='bicubic', align_corners=True)`.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::problems::Problem;

/// RRC parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrcConfig {
    /// Canvas size as a multiple of the input (frequency, time).
    pub virtual_crop_scale: (f64, f64),
    /// Crop height range as a fraction of the input height.
    pub freq_scale: (f64, f64),
    /// Crop width range as a fraction of the input width.
    pub time_scale: (f64, f64),
}

impl Default for RrcConfig {
    fn default() -> Self {
        Self {
            virtual_crop_scale: (1.0, 1.5),
            freq_scale: (0.6, 1.5),
            time_scale: (0.6, 1.5),
        }
    }
}

/// The crop box in canvas coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// Top row.
    pub i: usize,
    /// Left column.
    pub j: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// Applies RRC to a `[rows, cols]` row-major spectrogram.
pub fn random_resize_crop(
    x: &[f32],
    rows: usize,
    cols: usize,
    cfg: &RrcConfig,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let canvas_rows = (rows as f64 * cfg.virtual_crop_scale.0) as usize;
    let canvas_cols = (cols as f64 * cfg.virtual_crop_scale.1) as usize;
    let h = ((scale(cfg.freq_scale, rng) * rows as f64) as usize).clamp(1, canvas_rows);
    let w = ((scale(cfg.time_scale, rng) * cols as f64) as usize).clamp(1, canvas_cols);
    let i = if canvas_rows > h {
        rng.random_range(0..=canvas_rows - h)
    } else {
        0
    };
    let j = if canvas_cols > w {
        rng.random_range(0..=canvas_cols - w)
    } else {
        0
    };
    crop_resize(
        x,
        rows,
        cols,
        (canvas_rows, canvas_cols),
        CropBox { i, j, h, w },
    )
}

/// A uniform draw from `[lo, hi)`, or `lo` itself when the range is one value (no draw).
fn scale((lo, hi): (f64, f64), rng: &mut impl Rng) -> f64 {
    if lo == hi {
        lo
    } else {
        rng.random_range(lo..hi)
    }
}

impl RrcConfig {
    /// Bad values, with keys relative to `augment.rrc`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let (rows, cols) = self.virtual_crop_scale;
        if rows < 1.0 || cols < 1.0 {
            problems.push(Problem::new(
                "virtual_crop_scale",
                format!("[{rows}, {cols}] is below 1: the canvas must hold the spectrogram"),
                "BYOL-A uses [1.0, 1.5]",
            ));
        }
        for (key, (lo, hi)) in [
            ("freq_scale", self.freq_scale),
            ("time_scale", self.time_scale),
        ] {
            if !(lo > 0.0 && lo <= hi) {
                problems.push(Problem::new(
                    key,
                    format!("[{lo}, {hi}] is not a range of positive scales, low first"),
                    "BYOL-A uses [0.6, 1.5]; [1.0, 1.0] keeps that axis unscaled",
                ));
            }
        }
        problems
    }
}

/// Pastes `x` centred into a zero canvas, crops `crop` and resizes it back to `rows x cols`.
pub fn crop_resize(
    x: &[f32],
    rows: usize,
    cols: usize,
    canvas: (usize, usize),
    crop: CropBox,
) -> Vec<f32> {
    let (canvas_rows, canvas_cols) = canvas;
    let (top, left) = ((canvas_rows - rows) / 2, (canvas_cols - cols) / 2);
    let mut patch = vec![0f32; crop.h * crop.w];
    for r in 0..crop.h {
        for c in 0..crop.w {
            let (cr, cc) = (crop.i + r, crop.j + c);
            if (top..top + rows).contains(&cr) && (left..left + cols).contains(&cc) {
                patch[r * crop.w + c] = x[(cr - top) * cols + (cc - left)];
            }
        }
    }
    bicubic_resize(&patch, crop.h, crop.w, rows, cols)
}

const A: f32 = -0.75;

fn cubic_weights(t: f32) -> [f32; 4] {
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Per output index: the four clamped source indices and their weights.
fn taps(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = if out_size > 1 {
        (in_size - 1) as f32 / (out_size - 1) as f32
    } else {
        0.0
    };
    (0..out_size)
        .map(|o| {
            let src = o as f32 * scale;
            let base = src.floor();
            let t = src - base;
            let clamp = |k: i64| k.clamp(0, in_size as i64 - 1) as usize;
            let b = base as i64;
            (
                [clamp(b - 1), clamp(b), clamp(b + 1), clamp(b + 2)],
                cubic_weights(t),
            )
        })
        .collect()
}

/// Separable bicubic resize of a `[in_rows, in_cols]` image (height first, then width).
pub fn bicubic_resize(
    x: &[f32],
    in_rows: usize,
    in_cols: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    let row_taps = taps(in_rows, out_rows);
    let col_taps = taps(in_cols, out_cols);
    let mut tmp = vec![0f32; out_rows * in_cols];
    for (r, (idx, w)) in row_taps.iter().enumerate() {
        for c in 0..in_cols {
            tmp[r * in_cols + c] = (0..4).map(|k| w[k] * x[idx[k] * in_cols + c]).sum();
        }
    }
    let mut out = vec![0f32; out_rows * out_cols];
    for r in 0..out_rows {
        for (c, (idx, w)) in col_taps.iter().enumerate() {
            out[r * out_cols + c] = (0..4).map(|k| w[k] * tmp[r * in_cols + idx[k]]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_resize_golden() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let out = bicubic_resize(&x, 3, 4, 5, 6);
        let expected = [
            [0.0, 0.504, 1.248, 1.752, 2.496, 3.0],
            [1.625, 2.129, 2.873, 3.377, 4.121, 4.625],
        ];
        for (r, row) in expected.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                assert!(
                    (out[r * 6 + c] - v).abs() < 1e-4,
                    "({r},{c}): {} vs {v}",
                    out[r * 6 + c]
                );
            }
        }
    }

    /// docs/method.md §3.1 golden test (PyTorch 2.x).
    #[test]
    fn crop_resize_golden() {
        let x: Vec<f32> = (0..64 * 96)
            .map(|k| (k / 96) as f32 + 0.01 * (k % 96) as f32)
            .collect();
        let out = crop_resize(
            &x,
            64,
            96,
            (64, 144),
            CropBox {
                i: 3,
                j: 10,
                h: 50,
                w: 120,
            },
        );
        let at = |r: usize, c: usize| out[r * 96 + c];
        for ((r, c), v) in [
            ((0, 0), 0.0),
            ((0, 20), 3.110749),
            ((10, 17), 10.803139),
            ((10, 18), 10.815122),
            ((32, 48), 28.312155),
            ((63, 80), 52.862583),
            ((63, 95), 0.0),
        ] {
            assert!(
                (at(r, c) - v).abs() < 1e-4,
                "({r},{c}): {} vs {v}",
                at(r, c)
            );
        }
        let sum: f64 = out.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 137_175.75).abs() < 0.5, "sum {sum}");
    }

    #[test]
    fn random_crops_stay_in_range() {
        let x = vec![1.0f32; 64 * 96];
        let mut rng = crate::rng::stream(3, "rrc");
        for _ in 0..50 {
            let out = random_resize_crop(&x, 64, 96, &RrcConfig::default(), &mut rng);
            assert_eq!(out.len(), 64 * 96);
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }

    /// A one-value scale range keeps that axis unscaled (no draw, no empty-range panic); an
    /// inverted or non-positive one is a spec problem.
    #[test]
    fn a_fixed_frequency_scale_keeps_every_mel_band() {
        let cfg = RrcConfig {
            freq_scale: (1.0, 1.0),
            ..RrcConfig::default()
        };
        // Each mel band holds its index: unscaled in frequency, every output column is the
        // band index times one factor (the time crop's share of the pasted spectrogram).
        let x: Vec<f32> = (0..64 * 96).map(|k| (k / 96) as f32).collect();
        let mut rng = crate::rng::stream(3, "rrc");
        for _ in 0..20 {
            let out = random_resize_crop(&x, 64, 96, &cfg, &mut rng);
            for c in 0..96 {
                let factor = out[96 + c];
                assert!((0..64).all(|r| (out[r * 96 + c] - r as f32 * factor).abs() < 1e-3));
            }
        }
        assert!(cfg.problems().is_empty());
        let bad = RrcConfig {
            time_scale: (1.5, 0.6),
            ..RrcConfig::default()
        };
        assert_eq!(bad.problems()[0].key, "time_scale");
    }
}
