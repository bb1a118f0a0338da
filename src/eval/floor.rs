//! The bag-of-frames floor: the mean and standard deviation over time of each log-mel band,
//! the representation a learned encoder has to beat (as `make_tasks.sh`'s probe.json).

use crate::features::LogMelSpectrogram;

/// `[mean_0..mean_{M-1}, std_0..std_{M-1}]` of a log-mel spectrogram's bands over the
/// frames `[first, end)` (all of them: `(0, n_frames)`).
pub fn bag_of_frames(spec: &LogMelSpectrogram, (first, end): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; 2 * spec.n_mels];
    for m in 0..spec.n_mels {
        let row = &spec.data[m * spec.n_frames + first..m * spec.n_frames + end];
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        out[m] = mean as f32;
        out[spec.n_mels + m] = var.sqrt() as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_per_band() {
        let spec = LogMelSpectrogram {
            n_mels: 2,
            n_frames: 2,
            data: vec![1.0, 3.0, 5.0, 5.0],
        };
        assert_eq!(bag_of_frames(&spec, (0, 2)), vec![2.0, 5.0, 1.0, 0.0]);
        assert_eq!(bag_of_frames(&spec, (1, 2)), vec![3.0, 5.0, 0.0, 0.0]);
    }
}
