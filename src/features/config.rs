//! Front-end settings; the defaults are docs/method.md §2.3 (the official LAPE / BYOL-A front end).

use serde::{Deserialize, Serialize};

/// Mel scale formula (librosa `htk=False` is Slaney).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above (librosa default).
    Slaney,
    /// HTK: 2595 log10(1 + f/700) (torchaudio default).
    Htk,
}

/// Filter normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    /// Slaney area normalisation: each triangle is scaled by 2 / bandwidth (librosa default).
    Slaney,
    /// Peak 1 triangles (torchaudio default).
    None,
}

/// STFT centre padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Mirror without repeating the edge sample (librosa 0.8.1 default, used by LAPE).
    Reflect,
    /// Zeros (librosa >= 0.9 default).
    Constant,
}

/// Log-mel front-end configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontendConfig {
    /// Model sample rate in Hz; all audio is resampled to it.
    pub sample_rate: u32,
    /// FFT size.
    pub n_fft: usize,
    /// Hann window length (centred in the FFT frame when shorter than `n_fft`).
    pub win_length: usize,
    /// Hop between frames in samples.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest filter edge in Hz.
    pub f_min: f64,
    /// Highest filter edge in Hz.
    pub f_max: f64,
    /// Mel scale formula.
    pub mel_scale: MelScale,
    /// Filter normalisation.
    pub mel_norm: MelNorm,
    /// Centre padding mode.
    pub pad_mode: PadMode,
    /// Added to the mel power before the natural log (float32 machine epsilon).
    pub log_offset: f32,
}

impl FrontendConfig {
    /// LAPE's front end (librosa 0.8.1: Slaney mels with area normalisation, reflect
    /// padding) at `n_mels` bands: what LAPE Lightning checkpoints were trained on.
    pub fn lape(n_mels: usize) -> Self {
        Self {
            n_mels,
            ..Self::default()
        }
    }

    /// BYOL-A's front end at `n_mels` bands: `torchaudio.transforms.MelSpectrogram` with its
    /// defaults (HTK mels, no filter normalisation, centred reflect padding, power 2) at
    /// BYOL-A's sizes (n_fft 1024, hop 160, 60-7800 Hz), then `log(x + float32 eps)`.
    pub fn byol_a(n_mels: usize) -> Self {
        Self {
            n_mels,
            mel_scale: MelScale::Htk,
            mel_norm: MelNorm::None,
            pad_mode: PadMode::Reflect,
            ..Self::default()
        }
    }

    /// A front end by name (`byol_a`, `lape`, at `n_mels` bands) or from a YAML file of
    /// `frontend` keys (missing keys take the defaults).
    pub fn from_choice(choice: &str, n_mels: usize) -> crate::error::Result<Self> {
        match choice {
            "byol_a" => Ok(Self::byol_a(n_mels)),
            "lape" => Ok(Self::lape(n_mels)),
            file => {
                let path = std::path::Path::new(file);
                let text =
                    std::fs::read_to_string(path).map_err(|e| crate::error::Error::Dataset {
                        path: path.to_owned(),
                        message: format!(
                            "{e}; --frontend takes byol_a, lape, or a YAML file of frontend keys"
                        ),
                    })?;
                yaml_serde::from_str(&text).map_err(|e| crate::error::Error::Dataset {
                    path: path.to_owned(),
                    message: format!(
                        "not a front end: {e}; its keys are those of a spec's `frontend` section"
                    ),
                })
            }
        }
    }
}

impl Default for FrontendConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 1024,
            win_length: 1024,
            hop_length: 160,
            n_mels: 64,
            f_min: 60.0,
            f_max: 7800.0,
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            pad_mode: PadMode::Reflect,
            log_offset: f32::EPSILON,
        }
    }
}

impl FrontendConfig {
    /// Checks the values, returning `(field, problem)` for the first bad one.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if self.sample_rate < 1000 {
            return Err((
                "sample_rate",
                format!("{} Hz is too low; use e.g. 16000", self.sample_rate),
            ));
        }
        if self.n_fft < 16 {
            return Err((
                "n_fft",
                format!("{} is too small; use e.g. 1024", self.n_fft),
            ));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return Err((
                "win_length",
                format!("{} must be in 1..={} (n_fft)", self.win_length, self.n_fft),
            ));
        }
        if self.hop_length == 0 {
            return Err(("hop_length", "must be positive".into()));
        }
        if self.n_mels == 0 {
            return Err(("n_mels", "must be positive".into()));
        }
        if !(self.f_min >= 0.0 && self.f_min < self.f_max) {
            return Err((
                "f_min",
                format!(
                    "{} must be >= 0 and below f_max ({})",
                    self.f_min, self.f_max
                ),
            ));
        }
        if self.f_max > nyquist {
            return Err((
                "f_max",
                format!(
                    "{} Hz is above the Nyquist frequency {nyquist} Hz",
                    self.f_max
                ),
            ));
        }
        if !(self.log_offset > 0.0 && self.log_offset.is_finite()) {
            return Err(("log_offset", "must be a positive finite number".into()));
        }
        Ok(())
    }

    /// Number of samples in `seconds` of audio at the model rate.
    pub fn samples(&self, seconds: f64) -> usize {
        (seconds * f64::from(self.sample_rate)).round() as usize
    }

    /// Number of frames produced for `samples` input samples (`center=True`).
    pub fn n_frames(&self, samples: usize) -> usize {
        1 + samples / self.hop_length
    }

    /// The frames `[first, end)` of a `window`-sample input (`center=True`: frame `t` is
    /// centred on sample `t * hop`) that belong to its samples `[start, end)`: those centred
    /// on them, and every frame past an edge of the window that the span reaches. At least one.
    pub fn frames_of_span(&self, (start, end): (usize, usize), window: usize) -> (usize, usize) {
        let total = self.n_frames(window);
        let first = start.div_ceil(self.hop_length);
        let last = if end >= window {
            total
        } else {
            end.div_ceil(self.hop_length).min(total)
        };
        let first = first.min(total - 1);
        (first, last.max(first + 1))
    }
}

/// How log-mel input is normalised (docs/method.md §2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NormalizationConfig {
    /// One scalar mean/std over a seeded sample of pre-training clips (docs/method.md §13 default).
    /// The official per-worker running norm (docs/method.md §2.4 option a) belongs to the training
    /// pipeline and is not offered yet.
    Precomputed {
        /// How many pre-training clips (one random window each) to sample.
        #[serde(default = "default_sample_clips")]
        sample_clips: usize,
    },
}

fn default_sample_clips() -> usize {
    1000
}

impl Default for NormalizationConfig {
    fn default() -> Self {
        NormalizationConfig::Precomputed {
            sample_clips: default_sample_clips(),
        }
    }
}

impl NormalizationConfig {
    /// Bad values, with keys relative to `normalization`.
    pub fn problems(&self) -> Vec<crate::problems::Problem> {
        match self {
            NormalizationConfig::Precomputed { sample_clips: 0 } => {
                vec![crate::problems::Problem::new(
                    "sample_clips",
                    "must be at least 1",
                    "a few hundred clips give stable statistics",
                )]
            }
            NormalizationConfig::Precomputed { .. } => Vec::new(),
        }
    }
}
