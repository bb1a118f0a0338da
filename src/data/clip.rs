//! A clip's audio source and its split.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::synthetic::{self, Generator};
use crate::error::{Error, Result};

/// Dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training split (the probe is fitted and inputs standardised on it).
    Train,
    /// Validation split (model selection).
    Valid,
    /// Test split (reported only).
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// Parses a split name; `validation`, `val` and `dev` mean `valid`.
    pub fn parse(name: &str) -> Option<Split> {
        match name.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "valid" | "validation" | "val" | "dev" => Some(Split::Valid),
            "test" | "testing" | "eval" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        })
    }
}

/// Where a clip's audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipAudio {
    /// A file on disk, with the manifest row that named it (if any).
    File {
        /// The audio file.
        path: PathBuf,
        /// `(manifest, 1-based line)` that listed it.
        origin: Option<(PathBuf, usize)>,
    },
    /// An excerpt of a file (for example a `_silence_` clip cut from a noise recording).
    Segment {
        /// The audio file.
        path: PathBuf,
        /// Start of the excerpt in seconds.
        start_seconds: f64,
        /// Length of the excerpt in seconds.
        seconds: f64,
    },
    /// A clip of a built-in synthetic task.
    Synthetic {
        /// The task generator.
        generator: Generator,
        /// Class index.
        class: usize,
        /// Split (it decides the held-out factor).
        split: Split,
        /// Master seed.
        seed: u64,
        /// Clip index within its class and split.
        index: u64,
    },
    /// An unlabeled built-in pre-training clip.
    SyntheticPretrain {
        /// Master seed.
        seed: u64,
        /// Clip index.
        index: u64,
        /// Duration range in seconds.
        seconds: (f64, f64),
    },
}

impl ClipAudio {
    /// Mono samples at `sample_rate` Hz. Errors name the file and, for manifest entries, the row.
    pub fn load(&self, sample_rate: u32) -> Result<Vec<f32>> {
        let (samples, rate) = match self {
            ClipAudio::File { path, origin } => {
                return crate::audio::load(path, sample_rate).map_err(|e| match origin {
                    Some((manifest, row)) => Error::Manifest {
                        path: manifest.clone(),
                        row: *row,
                        message: e.to_string(),
                    },
                    None => e,
                })
            }
            ClipAudio::Segment {
                path,
                start_seconds,
                seconds,
            } => {
                let samples = crate::audio::load(path, sample_rate)?;
                let rate = f64::from(sample_rate);
                let start = (start_seconds * rate).round() as usize;
                let end = (start + (seconds * rate).round() as usize).min(samples.len());
                if start >= end {
                    return Err(Error::audio(
                        path,
                        format!(
                            "the excerpt at {start_seconds:.2} s lies beyond the end ({:.2} s)",
                            samples.len() as f64 / rate
                        ),
                    ));
                }
                return Ok(samples[start..end].to_vec());
            }
            ClipAudio::Synthetic {
                generator,
                class,
                split,
                seed,
                index,
            } => (
                generator.render(*class, *split, *seed, *index),
                synthetic::SAMPLE_RATE,
            ),
            ClipAudio::SyntheticPretrain {
                seed,
                index,
                seconds,
            } => (
                synthetic::render_pretrain(*seed, *index, *seconds),
                synthetic::SAMPLE_RATE,
            ),
        };
        crate::audio::resample(&samples, rate as u32, sample_rate)
    }

    /// A short identifier: the path, or the synthetic clip's coordinates.
    pub fn id(&self) -> String {
        match self {
            ClipAudio::File { path, .. } => path.display().to_string(),
            ClipAudio::Segment {
                path,
                start_seconds,
                seconds,
            } => format!("{}@{start_seconds:.3}+{seconds:.3}", path.display()),
            ClipAudio::Synthetic {
                generator,
                class,
                split,
                index,
                ..
            } => format!("synthetic:{generator:?}/{split}/{class}/{index}").to_lowercase(),
            ClipAudio::SyntheticPretrain { index, .. } => format!("synthetic:pretrain/{index}"),
        }
    }
}
