//! The mel filterbank, written to match librosa's `filters.mel` (Slaney or HTK scale, Slaney
//! or no normalisation). Built in f64 and stored in f32 as librosa does; stored sparsely
//! (each triangle as its first non-zero bin plus its weights) for a fast product.

use super::config::{FrontendConfig, MelNorm, MelScale};

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the given scale (librosa `hz_to_mel`).
pub fn hz_to_mel(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney if hz >= SLANEY_MIN_LOG_HZ => {
            SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_log_step()
        }
        MelScale::Slaney => hz / SLANEY_F_SP,
    }
}

/// Mel to Hz on the given scale (librosa `mel_to_hz`).
pub fn mel_to_hz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney if mel >= SLANEY_MIN_LOG_MEL => {
            SLANEY_MIN_LOG_HZ * (slaney_log_step() * (mel - SLANEY_MIN_LOG_MEL)).exp()
        }
        MelScale::Slaney => SLANEY_F_SP * mel,
    }
}

/// A mel filterbank of `n_mels` triangles over `n_fft/2 + 1` bins, stored sparsely.
#[derive(Debug, Clone)]
pub struct MelFilterbank {
    n_bins: usize,
    bands: Vec<(usize, Vec<f32>)>,
}

impl MelFilterbank {
    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Number of FFT bins (`n_fft/2 + 1`).
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// The dense `[n_mels, n_bins]` matrix, row-major.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.n_mels() * self.n_bins];
        for (m, (start, weights)) in self.bands.iter().enumerate() {
            dense[m * self.n_bins + start..m * self.n_bins + start + weights.len()]
                .copy_from_slice(weights);
        }
        dense
    }

    /// `out[m] = sum_k fb[m, k] * power[k]`.
    #[inline]
    pub fn apply(&self, power: &[f32], out: &mut [f32]) {
        for ((start, weights), o) in self.bands.iter().zip(out.iter_mut()) {
            *o = weights
                .iter()
                .zip(&power[*start..])
                .map(|(w, p)| w * p)
                .sum();
        }
    }
}

/// Builds the filterbank for `cfg` exactly as librosa does.
pub fn mel_filterbank(cfg: &FrontendConfig) -> MelFilterbank {
    let n_bins = cfg.n_fft / 2 + 1;
    let sr = f64::from(cfg.sample_rate);
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * sr / cfg.n_fft as f64)
        .collect();
    let mel_min = hz_to_mel(cfg.f_min, cfg.mel_scale);
    let mel_max = hz_to_mel(cfg.f_max, cfg.mel_scale);
    let n_points = cfg.n_mels + 2;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            mel_to_hz(
                mel_min + (mel_max - mel_min) * i as f64 / (n_points - 1) as f64,
                cfg.mel_scale,
            )
        })
        .collect();
    let bands = (0..cfg.n_mels)
        .map(|m| {
            let (lo, centre, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
            let scale = match cfg.mel_norm {
                MelNorm::Slaney => 2.0 / (hi - lo),
                MelNorm::None => 1.0,
            };
            let dense: Vec<f32> = fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - lo) / (centre - lo);
                    let upper = (hi - f) / (hi - centre);
                    (lower.min(upper).max(0.0) * scale) as f32
                })
                .collect();
            let start = dense.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = dense
                .iter()
                .rposition(|&w| w != 0.0)
                .map_or(start, |e| e + 1);
            (start, dense[start..end].to_vec())
        })
        .collect();
    MelFilterbank { n_bins, bands }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_invert() {
        for scale in [MelScale::Slaney, MelScale::Htk] {
            for hz in [0.0, 60.0, 999.0, 1000.0, 4321.0, 7800.0] {
                assert!((mel_to_hz(hz_to_mel(hz, scale), scale) - hz).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn slaney_break_point() {
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
    }
}
