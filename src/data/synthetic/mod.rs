//! The built-in demo corpus (`source: synthetic`): generated in-process, deterministic from
//! the seed, so the main experiment needs no download.
//!
//! Three labelled tasks, each with a held-out factor so that it is learnable but not trivial:
//! * `vowels` (speech-like): 10 formant-synthesised vowels. Held out: vocal-tract length and
//!   pitch (train adult-like tracts 0.85-1.05 and F0 85-180 Hz; valid 1.05-1.12 / 160-230 Hz;
//!   test child-like 1.12-1.22 / 190-280 Hz).
//! * `instruments` (music-like): 8 timbres. Held out: the pitch range (train MIDI 45-69,
//!   valid 70-74, test 75-81).
//! * `environment` (textures and events): 8 scene classes. Held out: the mixture (train over
//!   pink noise at 10-30 dB SNR, valid over brown noise at 5-15 dB, test over mains hum and
//!   hiss at 0-10 dB).
//!
//! The unlabeled pre-training clips (1-3 s by default) are vowel sequences, melodies and
//! scenes drawn over the *full* factor ranges, as a general corpus such as AudioSet holds
//! children's voices and high notes without labels; no pre-training clip is a task clip.

mod dsp;
mod environment;
mod events;
mod music;
mod speech;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use dsp::SR as SAMPLE_RATE;
pub use events::{event_classes, render_event_clip, Event, EVENT_CLIP_SECONDS};

use crate::data::Split;
use environment::Background;
use speech::Speaker;

/// A built-in labelled task generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// Formant-synthesised vowels; held out: vocal-tract length and pitch.
    Vowels,
    /// Instrument-like notes; held out: pitch range.
    Instruments,
    /// Environmental scenes; held out: background mixture.
    Environment,
}

/// Length of every task clip in seconds.
pub const TASK_CLIP_SECONDS: f64 = 1.0;

impl Generator {
    /// Class names, in label order.
    pub fn classes(self) -> Vec<String> {
        let names: &[&str] = match self {
            Generator::Vowels => &speech::VOWELS.map(|(name, _)| name),
            Generator::Instruments => &music::INSTRUMENTS,
            Generator::Environment => &environment::SCENES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Renders clip `index` of `class` in `split` (mono, [`SAMPLE_RATE`], 1 s).
    pub fn render(self, class: usize, split: Split, seed: u64, index: u64) -> Vec<f32> {
        let purpose = format!("synthetic/{self:?}/{split}/{class}");
        let rng = &mut crate::rng::stream_indexed(seed, &purpose, index);
        let n = (TASK_CLIP_SECONDS * dsp::SR) as usize;
        let mut out = vec![0.0; n];
        match self {
            Generator::Vowels => {
                let speaker = match split {
                    Split::Train => Speaker {
                        tract: (0.85, 1.05),
                        f0: (85.0, 180.0),
                    },
                    Split::Valid => Speaker {
                        tract: (1.05, 1.12),
                        f0: (160.0, 230.0),
                    },
                    Split::Test => Speaker {
                        tract: (1.12, 1.22),
                        f0: (190.0, 280.0),
                    },
                };
                let seconds = rng.random_range(0.35..0.8);
                let v = speech::vowel(class, seconds, speaker, rng);
                let at = rng.random_range(0..n - v.len());
                dsp::add_at(&mut out, &v, at);
                let floor = dsp::white(n, rng);
                dsp::mix_at_snr(&mut out, &floor, rng.random_range(25.0..40.0));
            }
            Generator::Instruments => {
                let pitch = match split {
                    Split::Train => (45, 69),
                    Split::Valid => (70, 74),
                    Split::Test => (75, 81),
                };
                let midi = f64::from(rng.random_range(pitch.0..=pitch.1));
                let v = music::note(class, midi, rng.random_range(0.6..0.95), rng);
                let at = rng.random_range(0..=(0.05 * dsp::SR) as usize);
                dsp::add_at(&mut out, &v, at);
            }
            Generator::Environment => {
                let (background, snr) = match split {
                    Split::Train => (Background::Pink, (10.0, 30.0)),
                    Split::Valid => (Background::Brown, (5.0, 15.0)),
                    Split::Test => (Background::HumAndHiss, (0.0, 10.0)),
                };
                out = environment::scene(class, TASK_CLIP_SECONDS, background, snr, rng);
            }
        }
        let peak = rng.random_range(0.2..0.9);
        dsp::to_peak_f32(&out, peak)
    }
}

/// Renders unlabeled pre-training clip `index` (mono, [`SAMPLE_RATE`]), `seconds` long.
pub fn render_pretrain(seed: u64, index: u64, seconds: (f64, f64)) -> Vec<f32> {
    let rng = &mut crate::rng::stream_indexed(seed, "synthetic/pretrain", index);
    let seconds = if seconds.1 > seconds.0 {
        rng.random_range(seconds.0..seconds.1)
    } else {
        seconds.0
    };
    let n = (seconds * dsp::SR) as usize;
    let mut out = vec![0.0; n];
    match rng.random_range(0..3) {
        0 => {
            let speaker = Speaker {
                tract: (0.82, 1.25),
                f0: (80.0, 300.0),
            };
            let mut at = rng.random_range(0..(0.1 * dsp::SR) as usize);
            while at < n {
                let v = speech::vowel(
                    rng.random_range(0..speech::VOWELS.len()),
                    rng.random_range(0.12..0.35),
                    speaker,
                    rng,
                );
                let step = v.len() * 9 / 10;
                dsp::add_at(&mut out, &v, at);
                at += step + rng.random_range(0..(0.08 * dsp::SR) as usize);
            }
        }
        1 => {
            let instrument = rng.random_range(0..music::INSTRUMENTS.len());
            let mut midi: f64 = f64::from(rng.random_range(45..82));
            let mut at = 0;
            while at < n {
                let length = rng.random_range(0.15..0.6);
                let v = music::note(instrument, midi, length + 0.1, rng);
                dsp::add_at(&mut out, &v, at);
                at += (length * dsp::SR) as usize;
                midi = (midi + f64::from(rng.random_range(-5..=5))).clamp(40.0, 86.0);
            }
        }
        _ => {
            let background = [Background::Pink, Background::Brown, Background::HumAndHiss]
                [rng.random_range(0..3)];
            let class = rng.random_range(0..environment::SCENES.len());
            out = environment::scene(class, seconds, background, (0.0, 30.0), rng);
            if rng.random_bool(0.3) {
                let other = environment::scene(
                    rng.random_range(0..environment::SCENES.len()),
                    seconds,
                    background,
                    (20.0, 30.0),
                    rng,
                );
                dsp::mix_at_snr(&mut out, &other, rng.random_range(0.0..10.0));
            }
        }
    }
    let peak = rng.random_range(0.2..0.9);
    dsp::to_peak_f32(&out, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_are_deterministic_finite_and_audible() {
        for generator in [
            Generator::Vowels,
            Generator::Instruments,
            Generator::Environment,
        ] {
            for (class, _) in generator.classes().iter().enumerate() {
                let a = generator.render(class, Split::Test, 3, 1);
                assert_eq!(a, generator.render(class, Split::Test, 3, 1));
                assert_ne!(a, generator.render(class, Split::Test, 3, 2));
                assert_eq!(a.len(), 16_000);
                assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
                assert!(
                    a.iter().any(|v| v.abs() > 0.1),
                    "{generator:?} class {class} is silent"
                );
            }
        }
        let p = render_pretrain(3, 0, (1.0, 3.0));
        assert!(p.len() >= 16_000 && p.len() <= 48_000 && p.iter().all(|v| v.is_finite()));
        assert_eq!(p, render_pretrain(3, 0, (1.0, 3.0)));
    }
}
