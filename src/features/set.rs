//! Equally shaped log-mel spectrograms read in pieces: a slice in memory, or a task split's
//! feature-cache entry on disk ([`crate::cache::StoredSpectrograms`]). Evaluation reads every
//! split through this trait, a batch at a time, so its memory does not grow with the split.

use std::ops::Range;

use super::LogMelSpectrogram;
use crate::error::Result;

/// A numbered collection of spectrograms, read a few at a time.
pub trait SpectrogramSet: Sync {
    /// How many spectrograms it holds.
    fn len(&self) -> usize;

    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spectrograms `range`, in order.
    fn read_range(&self, range: Range<usize>) -> Result<Vec<LogMelSpectrogram>>;

    /// The spectrograms at `indices`, in that order.
    fn read(&self, indices: &[usize]) -> Result<Vec<LogMelSpectrogram>> {
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            out.extend(self.read_range(i..i + 1)?);
        }
        Ok(out)
    }
}

/// The whole set in consecutive batches of up to `size` (at least one) spectrograms.
pub fn batches(
    set: &dyn SpectrogramSet,
    size: usize,
) -> impl Iterator<Item = Result<Vec<LogMelSpectrogram>>> + '_ {
    let size = size.max(1);
    (0..set.len())
        .step_by(size)
        .map(move |start| set.read_range(start..(start + size).min(set.len())))
}

impl SpectrogramSet for [LogMelSpectrogram] {
    fn len(&self) -> usize {
        <[LogMelSpectrogram]>::len(self)
    }

    fn read_range(&self, range: Range<usize>) -> Result<Vec<LogMelSpectrogram>> {
        Ok(self[range].to_vec())
    }
}

impl SpectrogramSet for Vec<LogMelSpectrogram> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn read_range(&self, range: Range<usize>) -> Result<Vec<LogMelSpectrogram>> {
        self.as_slice().read_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> Vec<LogMelSpectrogram> {
        (0..n)
            .map(|i| LogMelSpectrogram {
                n_mels: 1,
                n_frames: 1,
                data: vec![i as f32],
            })
            .collect()
    }

    #[test]
    fn batches_cover_the_set_in_order() {
        let set = numbered(7);
        let sizes: Vec<usize> = batches(&set, 3).map(|b| b.unwrap().len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let values: Vec<f32> = batches(&set, 3)
            .flat_map(|b| b.unwrap())
            .map(|s| s.data[0])
            .collect();
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let picked: Vec<f32> = set
            .read(&[5, 0, 5])
            .unwrap()
            .iter()
            .map(|s| s.data[0])
            .collect();
        assert_eq!(picked, [5.0, 0.0, 5.0]);
        assert_eq!(batches(&numbered(0), 3).count(), 0);
    }
}
