//! The fixed-length window of docs/method.md §2.2: centred zero-padding for short clips, a crop for long
//! ones (uniformly random when training, the centre at evaluation so that scores are
//! deterministic).

use rand::Rng;

/// How to choose the crop of a clip longer than the window.
pub enum WindowMode<'a, R: Rng> {
    /// Uniform start over `0..=len-L` (training, docs/method.md §2.2).
    Random(&'a mut R),
    /// Start at `(len-L)/2` (evaluation; docs/method.md §9.3 recommends a deterministic window).
    Centre,
}

/// Cuts or pads `samples` to exactly `len` samples. A shorter clip gets `floor(deficit/2)`
/// zeros on the left and the rest on the right.
pub fn fixed_window<R: Rng>(samples: &[f32], len: usize, mode: WindowMode<'_, R>) -> Vec<f32> {
    use std::cmp::Ordering;
    match samples.len().cmp(&len) {
        Ordering::Equal => samples.to_vec(),
        Ordering::Less => {
            let left = (len - samples.len()) / 2;
            let mut out = vec![0.0; len];
            out[left..left + samples.len()].copy_from_slice(samples);
            out
        }
        Ordering::Greater => {
            let slack = samples.len() - len;
            let start = match mode {
                WindowMode::Random(rng) => rng.random_range(0..=slack),
                WindowMode::Centre => slack / 2,
            };
            samples[start..start + len].to_vec()
        }
    }
}

/// The samples `[start, end)` of a `len`-sample window cut by [`fixed_window`] from a clip
/// of `clip_len` samples that hold audio rather than padding.
pub fn real_span(clip_len: usize, len: usize) -> (usize, usize) {
    if clip_len >= len {
        (0, len)
    } else {
        let left = (len - clip_len) / 2;
        (left, left + clip_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn pads_short_clips_centred_with_floor_on_the_left() {
        let out = fixed_window::<ChaCha8Rng>(&[1.0, 2.0], 5, WindowMode::Centre);
        assert_eq!(out, vec![0.0, 1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn centre_crop_is_deterministic() {
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        assert_eq!(
            fixed_window::<ChaCha8Rng>(&x, 4, WindowMode::Centre),
            vec![3.0, 4.0, 5.0, 6.0]
        );
    }

    #[test]
    fn random_crop_reaches_both_ends() {
        // byol-a issue #9: a "random" crop that always started at 0. Every start in 0..=3 must occur.
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut rng = crate::rng::stream(1, "test-crop");
        let mut seen = [false; 3];
        for _ in 0..200 {
            let out = fixed_window(&x, 4, WindowMode::Random(&mut rng));
            seen[out[0] as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn real_span_matches_the_padding() {
        let out = fixed_window::<ChaCha8Rng>(&[1.0; 3], 8, WindowMode::Centre);
        let (a, b) = real_span(3, 8);
        assert!(out[a..b].iter().all(|&v| v == 1.0));
        assert!(out[..a].iter().chain(&out[b..]).all(|&v| v == 0.0));
        assert_eq!(real_span(10, 8), (0, 8));
    }
}
