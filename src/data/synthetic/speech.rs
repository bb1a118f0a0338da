//! Speech-like sounds: formant-synthesised vowels (a Rosenberg glottal pulse train through a
//! cascade of Klatt resonators) over varied pitch and vocal-tract length.

use rand::Rng;

use super::dsp::{self, Resonator, SR};

/// Vowel classes (ARPAbet) with Peterson & Barney (1952) average adult male F1-F3 in Hz.
pub const VOWELS: [(&str, [f64; 3]); 10] = [
    ("iy", [270.0, 2290.0, 3010.0]),
    ("ih", [390.0, 1990.0, 2550.0]),
    ("eh", [530.0, 1840.0, 2480.0]),
    ("ae", [660.0, 1720.0, 2410.0]),
    ("aa", [730.0, 1090.0, 2440.0]),
    ("ao", [570.0, 840.0, 2410.0]),
    ("uh", [440.0, 1020.0, 2240.0]),
    ("uw", [300.0, 870.0, 2240.0]),
    ("ah", [640.0, 1190.0, 2390.0]),
    ("er", [490.0, 1350.0, 1690.0]),
];

/// The speaker factors a vowel is drawn over.
#[derive(Debug, Clone, Copy)]
pub struct Speaker {
    /// Vocal-tract scale: formants are multiplied by it (a shorter tract has higher formants).
    pub tract: (f64, f64),
    /// Fundamental frequency range in Hz (drawn log-uniformly).
    pub f0: (f64, f64),
}

/// Renders vowel `class` for `seconds`, with a speaker drawn from `speaker`.
pub fn vowel(class: usize, seconds: f64, speaker: Speaker, rng: &mut impl Rng) -> Vec<f64> {
    let n = (seconds * SR) as usize;
    let tract = rng.random_range(speaker.tract.0..speaker.tract.1);
    let f0 = dsp::log_uniform(rng, speaker.f0.0, speaker.f0.1);
    let glide = rng.random_range(-0.15..0.1);
    let vibrato_hz = rng.random_range(3.0..6.0);
    let open_quotient = rng.random_range(0.35..0.55);
    let mut source = vec![0.0; n];
    let mut phase: f64 = rng.random();
    for (i, s) in source.iter_mut().enumerate() {
        let t = i as f64 / n as f64;
        let jitter = 1.0 + 0.01 * (rng.random::<f64>() - 0.5);
        let f = f0
            * (1.0 + glide * t)
            * (1.0 + 0.01 * (std::f64::consts::TAU * vibrato_hz * i as f64 / SR).sin())
            * jitter;
        phase = (phase + f / SR).fract();
        *s = rosenberg(phase, open_quotient);
    }
    dsp::differentiate(&mut source);
    let breath = dsp::white(n, rng);
    for (s, b) in source.iter_mut().zip(breath) {
        *s += 0.002 * b;
    }
    let formants = VOWELS[class].1;
    let extra = [3300.0, 3750.0];
    for (k, f) in formants.iter().chain(extra.iter()).enumerate() {
        let bandwidth = [60.0, 90.0, 120.0, 180.0, 250.0][k] * rng.random_range(0.8..1.25);
        let freq = f * tract * rng.random_range(0.97..1.03);
        if freq < SR / 2.0 - bandwidth {
            Resonator::new(freq, bandwidth).run(&mut source);
        }
    }
    let envelope =
        dsp::attack_release(n, rng.random_range(0.02..0.06), rng.random_range(0.04..0.1));
    source.iter_mut().zip(envelope).for_each(|(s, e)| *s *= e);
    source
}

/// Rosenberg (1971) glottal pulse at `phase` in [0, 1).
fn rosenberg(phase: f64, open: f64) -> f64 {
    let opening = open * 0.7;
    if phase < opening {
        0.5 * (1.0 - (std::f64::consts::PI * phase / opening).cos())
    } else if phase < open {
        (std::f64::consts::FRAC_PI_2 * (phase - opening) / (open - opening)).cos()
    } else {
        0.0
    }
}
