//! Audio input: decode WAV/FLAC to mono f32, resample to the model rate, cut fixed windows.

mod decode;
mod resample;
mod window;

pub(crate) use decode::downmix;
pub use decode::{decode, DecodedAudio};
pub use resample::resample;
pub use window::{fixed_window, real_span, WindowMode};

use std::path::Path;

use crate::error::Result;

/// Decodes `path`, mixes it to mono and resamples it to `sample_rate`.
pub fn load(path: &Path, sample_rate: u32) -> Result<Vec<f32>> {
    let decoded = decode(path)?;
    resample(&decoded.samples, decoded.sample_rate, sample_rate)
        .map_err(|e| crate::error::Error::audio(path, format!("resampling failed: {e}")))
}
