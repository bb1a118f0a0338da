//! STFT power -> mel -> natural log, for one clip or a batch in parallel.
//!
//! The FFT plan, window and filterbank are built once per [`LogMelFrontend`]; per-thread
//! scratch buffers are reused across the clips of a batch.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::config::{FrontendConfig, PadMode};
use super::mel::{mel_filterbank, MelFilterbank};

/// A log-mel spectrogram, `[n_mels, n_frames]` row-major (frequency before time).
#[derive(Debug, Clone, PartialEq)]
pub struct LogMelSpectrogram {
    /// Number of mel bands (rows).
    pub n_mels: usize,
    /// Number of frames (columns).
    pub n_frames: usize,
    /// Values, `data[m * n_frames + t]`.
    pub data: Vec<f32>,
}

impl LogMelSpectrogram {
    /// Value at band `m`, frame `t`.
    pub fn at(&self, m: usize, t: usize) -> f32 {
        self.data[m * self.n_frames + t]
    }
}

/// Reusable buffers for one thread.
struct Workspace {
    padded: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    mel: Vec<f32>,
}

/// The log-mel front end of docs/method.md §2.3.
pub struct LogMelFrontend {
    cfg: FrontendConfig,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    filterbank: MelFilterbank,
}

impl std::fmt::Debug for LogMelFrontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelFrontend")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl LogMelFrontend {
    /// Plans the FFT and builds the window and filterbank for `cfg` (assumed checked).
    pub fn new(cfg: &FrontendConfig) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        Self {
            cfg: cfg.clone(),
            window: periodic_hann(cfg.win_length, cfg.n_fft),
            fft,
            filterbank: mel_filterbank(cfg),
        }
    }

    /// The configuration this front end was built from.
    pub fn config(&self) -> &FrontendConfig {
        &self.cfg
    }

    /// The mel filterbank in use.
    pub fn filterbank(&self) -> &MelFilterbank {
        &self.filterbank
    }

    fn workspace(&self) -> Workspace {
        Workspace {
            padded: Vec::new(),
            frame: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            power: vec![0.0; self.cfg.n_fft / 2 + 1],
            mel: vec![0.0; self.cfg.n_mels],
        }
    }

    /// Log-mel of one clip of mono samples at the configured rate.
    pub fn compute(&self, samples: &[f32]) -> LogMelSpectrogram {
        self.compute_with(samples, &mut self.workspace())
    }

    /// Log-mel of many clips, in parallel on the rayon pool; output order follows input order.
    pub fn compute_batch<S: AsRef<[f32]> + Sync>(&self, clips: &[S]) -> Vec<LogMelSpectrogram> {
        clips
            .par_iter()
            .map_init(
                || self.workspace(),
                |ws, clip| self.compute_with(clip.as_ref(), ws),
            )
            .collect()
    }

    fn compute_with(&self, samples: &[f32], ws: &mut Workspace) -> LogMelSpectrogram {
        let cfg = &self.cfg;
        let n_frames = cfg.n_frames(samples.len());
        pad_centre(samples, cfg.n_fft / 2, cfg.pad_mode, &mut ws.padded);
        let mut data = vec![0.0f32; cfg.n_mels * n_frames];
        for t in 0..n_frames {
            let start = t * cfg.hop_length;
            for ((dst, &x), &w) in ws
                .frame
                .iter_mut()
                .zip(&ws.padded[start..start + cfg.n_fft])
                .zip(&self.window)
            {
                *dst = x * w;
            }
            self.fft
                .process_with_scratch(&mut ws.frame, &mut ws.spectrum, &mut ws.scratch)
                .expect("buffer sizes come from the plan");
            for (p, c) in ws.power.iter_mut().zip(&ws.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            // librosa also adds float64 eps (2.2e-16) to each power bin; after the filterbank
            // that is below 1e-17, nine orders under `log_offset`, so it is left out.
            self.filterbank.apply(&ws.power, &mut ws.mel);
            for (m, &v) in ws.mel.iter().enumerate() {
                data[m * n_frames + t] = (v + cfg.log_offset).ln();
            }
        }
        LogMelSpectrogram {
            n_mels: cfg.n_mels,
            n_frames,
            data,
        }
    }
}

/// Periodic Hann window of `win_length`, zero-padded to `n_fft` and centred (librosa
/// `get_window('hann', fftbins=True)` + `pad_center`).
fn periodic_hann(win_length: usize, n_fft: usize) -> Vec<f32> {
    let offset = (n_fft - win_length) / 2;
    let mut window = vec![0.0f32; n_fft];
    for i in 0..win_length {
        let phase = 2.0 * std::f64::consts::PI * i as f64 / win_length as f64;
        window[offset + i] = (0.5 - 0.5 * phase.cos()) as f32;
    }
    window
}

/// Pads `x` by `pad` on both sides into `out` (numpy `reflect` or zeros).
fn pad_centre(x: &[f32], pad: usize, mode: PadMode, out: &mut Vec<f32>) {
    out.clear();
    out.resize(x.len() + 2 * pad, 0.0);
    out[pad..pad + x.len()].copy_from_slice(x);
    if mode == PadMode::Constant || x.is_empty() {
        return;
    }
    let n = x.len() as i64;
    // numpy's repeated reflection is the periodic mirror extension with period 2(n-1).
    let mirror = |i: i64| -> f32 {
        if n == 1 {
            return x[0];
        }
        let period = 2 * (n - 1);
        let j = i.rem_euclid(period);
        x[(if j < n { j } else { period - j }) as usize]
    };
    for k in 0..pad {
        out[pad - 1 - k] = mirror(-(k as i64) - 1);
        out[pad + x.len() + k] = mirror(n + k as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        let mut out = Vec::new();
        pad_centre(&[1.0, 2.0, 3.0], 4, PadMode::Reflect, &mut out);
        // np.pad([1,2,3], 4, mode='reflect')
        assert_eq!(
            out,
            vec![1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn frame_count_follows_center_padding() {
        let cfg = FrontendConfig::default();
        let fe = LogMelFrontend::new(&cfg);
        assert_eq!(fe.compute(&vec![0.0; 15_200]).n_frames, 96);
        assert_eq!(fe.compute(&vec![0.0; 16_000]).n_frames, 101);
    }

    #[test]
    fn batch_equals_single() {
        let fe = LogMelFrontend::new(&FrontendConfig::default());
        let clips: Vec<Vec<f32>> = (0..3)
            .map(|c| {
                (0..4000)
                    .map(|i| ((i * (c + 1)) as f32 * 0.01).sin())
                    .collect()
            })
            .collect();
        let batch = fe.compute_batch(&clips);
        for (clip, spec) in clips.iter().zip(&batch) {
            assert_eq!(&fe.compute(clip), spec);
        }
    }
}
