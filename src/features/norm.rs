//! Global scalar normalisation (docs/method.md §2.4 option b, the docs/method.md §13 default): one mean and one
//! standard deviation over all log-mel values of a seeded sample of training clips, saved
//! with the run and reused unchanged at evaluation.

use serde::{Deserialize, Serialize};

use super::logmel::LogMelSpectrogram;
use super::set::{batches, SpectrogramSet};
use crate::error::{Error, Result};

/// Scalar mean and standard deviation of log-mel values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Mean of every value of every sampled spectrogram.
    pub mean: f32,
    /// Population standard deviation of the same values.
    pub std: f32,
    /// Number of spectrograms the statistics were computed from.
    pub n_clips: usize,
}

impl NormStats {
    /// Statistics given by hand (a checkpoint's authors', or a user's): the mean finite and
    /// the std positive and finite, else an error that says so.
    pub fn given(mean: f32, std: f32) -> Result<Self> {
        if mean.is_finite() && std.is_finite() && std > 0.0 {
            Ok(Self {
                mean,
                std,
                n_clips: 0,
            })
        } else {
            Err(Error::Invalid(format!(
                "log-mel statistics need a finite mean and a positive std, got {mean} and {std}"
            )))
        }
    }

    /// Computes the statistics over `spectrograms` (accumulated in f64).
    pub fn from_spectrograms<'a>(
        spectrograms: impl IntoIterator<Item = &'a LogMelSpectrogram>,
    ) -> Result<Self> {
        Self::from_values(spectrograms.into_iter().map(|s| s.data.as_slice()))
    }

    /// Computes the statistics over the values of each spectrogram in `spectrograms`
    /// (accumulated in f64, in order).
    pub fn from_values<'a>(spectrograms: impl IntoIterator<Item = &'a [f32]>) -> Result<Self> {
        let mut acc = NormAccumulator::default();
        for values in spectrograms {
            acc.add(values);
        }
        acc.finish()
    }

    /// Computes the statistics over every spectrogram of `set`, read a batch at a time.
    pub fn from_set(set: &dyn SpectrogramSet) -> Result<Self> {
        let mut acc = NormAccumulator::default();
        for batch in batches(set, 64) {
            for s in batch? {
                acc.add(&s.data);
            }
        }
        acc.finish()
    }

    /// Normalises values in place: `(x - mean) / std`.
    pub fn apply(&self, values: &mut [f32]) {
        let inv = 1.0 / self.std;
        for v in values {
            *v = (*v - self.mean) * inv;
        }
    }
}

/// Running sums for [`NormStats`], fed one spectrogram at a time (in f64, in order).
#[derive(Debug, Clone, Copy, Default)]
struct NormAccumulator {
    values: usize,
    sum: f64,
    sum_sq: f64,
    clips: usize,
}

impl NormAccumulator {
    /// Adds one spectrogram's values.
    fn add(&mut self, values: &[f32]) {
        self.clips += 1;
        self.values += values.len();
        for &v in values {
            self.sum += f64::from(v);
            self.sum_sq += f64::from(v) * f64::from(v);
        }
    }

    /// The statistics of everything added; an error if no value was.
    fn finish(self) -> Result<NormStats> {
        if self.values == 0 {
            return Err(Error::Invalid(
                "normalisation statistics need at least one non-empty clip".into(),
            ));
        }
        let n = self.values as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        let std = (var.sqrt() as f32).max(f32::EPSILON);
        Ok(NormStats {
            mean: mean as f32,
            std,
            n_clips: self.clips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_statistics_need_a_finite_mean_and_a_positive_std() {
        assert_eq!(NormStats::given(-5.5, 5.0).unwrap().std, 5.0);
        for (mean, std) in [
            (0.0, 0.0),
            (0.0, -1.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
        ] {
            let err = NormStats::given(mean, std).unwrap_err().to_string();
            assert!(err.contains("positive std"), "{err}");
        }
    }

    #[test]
    fn normalised_sample_has_zero_mean_unit_std() {
        let spec = LogMelSpectrogram {
            n_mels: 2,
            n_frames: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let stats = NormStats::from_spectrograms([&spec]).unwrap();
        assert!((stats.mean - 2.5).abs() < 1e-6);
        assert!((stats.std - 1.118_034).abs() < 1e-5);
        let mut v = spec.data.clone();
        stats.apply(&mut v);
        assert!(v.iter().sum::<f32>().abs() < 1e-5);
    }
}
