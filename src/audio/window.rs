//! The fixed-length window of SPEC 2.2: centred zero-padding for short clips, a crop for long
//! ones (uniformly random when training, the centre at evaluation so that scores are
//! deterministic).

use rand::Rng;

/// How to choose the crop of a clip longer than the window.
pub enum WindowMode<'a, R: Rng> {
    /// Uniform start over `0..=len-L` (training, SPEC 2.2).
    Random(&'a mut R),
    /// Start at `(len-L)/2` (evaluation; SPEC 9.3 recommends a deterministic window).
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
}
