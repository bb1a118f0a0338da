//! The log-mel front end (docs/method.md §2.3) and the global normalisation statistics (docs/method.md §2.4, 13).

mod config;
mod logmel;
mod mel;
mod norm;
mod set;

pub use config::{FrontendConfig, MelNorm, MelScale, NormalizationConfig, PadMode};
pub use logmel::{LogMelFrontend, LogMelSpectrogram};
pub use mel::{hz_to_mel, mel_filterbank, mel_to_hz, MelFilterbank};
pub use norm::NormStats;
pub use set::{batches, SpectrogramSet};
