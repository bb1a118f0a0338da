//! Music-like sounds: single notes of eight instrument-like timbres (additive, modal and
//! Karplus-Strong synthesis) over a range of pitches.

use rand::Rng;

use super::dsp::{self, SR};

/// Instrument classes.
pub const INSTRUMENTS: [&str; 8] = [
    "plucked", "bowed", "reed", "flute", "bell", "brass", "organ", "mallet",
];

/// Renders one note of `class` at MIDI pitch `note`, lasting `seconds` (including release).
pub fn note(class: usize, note: f64, seconds: f64, rng: &mut impl Rng) -> Vec<f64> {
    let n = (seconds * SR) as usize;
    let f0 = dsp::midi_to_hz(note + rng.random_range(-0.1..0.1));
    let mut x = match INSTRUMENTS[class] {
        "plucked" => karplus_strong(f0, n, rng.random_range(0.990..0.998), rng),
        "bowed" => harmonic(f0, n, |k| 1.0 / k as f64, (0.12, 0.25), 0.006, rng),
        "reed" => harmonic(
            f0,
            n,
            |k| {
                if k % 2 == 1 {
                    1.0 / k as f64
                } else {
                    0.08 / k as f64
                }
            },
            (0.03, 0.06),
            0.002,
            rng,
        ),
        "flute" => {
            let mut tone = harmonic(
                f0,
                n,
                |k| [1.0, 0.35, 0.12, 0.04].get(k - 1).copied().unwrap_or(0.0),
                (0.06, 0.12),
                0.01,
                rng,
            );
            let mut breath = dsp::white(n, rng);
            dsp::lowpass(&mut breath, 3000.0);
            let level = 0.05 * dsp::rms(&tone) / dsp::rms(&breath).max(1e-9);
            tone.iter_mut()
                .zip(&breath)
                .for_each(|(t, b)| *t += level * b);
            tone
        }
        "bell" => modal(
            f0,
            n,
            &[
                (0.56, 1.0, 1.2),
                (0.92, 0.67, 1.5),
                (1.19, 1.0, 2.0),
                (1.71, 1.8, 2.5),
                (2.0, 2.67, 3.0),
                (2.74, 1.67, 4.0),
                (3.0, 1.46, 5.0),
                (3.76, 1.33, 6.0),
                (4.07, 1.33, 7.0),
            ],
        ),
        "brass" => brass(f0, n, rng),
        "organ" => harmonic(
            f0,
            n,
            |k| match k {
                1 => 1.0,
                2 => 0.8,
                3 => 0.6,
                4 => 0.5,
                6 => 0.4,
                8 => 0.3,
                _ => 0.0,
            },
            (0.005, 0.015),
            0.0,
            rng,
        ),
        "mallet" => modal(
            f0,
            n,
            &[(1.0, 1.0, 6.0), (3.93, 0.35, 15.0), (9.2, 0.12, 30.0)],
        ),
        other => unreachable!("unknown instrument {other}"),
    };
    let release = dsp::attack_release(n, 0.002, 0.05);
    x.iter_mut().zip(release).for_each(|(v, e)| *v *= e);
    x
}

/// Sum of harmonics `k*f0` (below 7.5 kHz) with amplitudes `amp(k)`, an attack drawn from
/// `attack`, and vibrato of relative depth `vibrato`.
fn harmonic(
    f0: f64,
    n: usize,
    amp: impl Fn(usize) -> f64,
    attack: (f64, f64),
    vibrato: f64,
    rng: &mut impl Rng,
) -> Vec<f64> {
    let rate = rng.random_range(4.5..6.5);
    let harmonics: Vec<(usize, f64)> = (1..)
        .take_while(|&k| k as f64 * f0 < 7500.0)
        .map(|k| (k, amp(k)))
        .filter(|(_, a)| *a > 0.0)
        .collect();
    let mut phase = 0.0f64;
    let mut out = vec![0.0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let f = f0 * (1.0 + vibrato * (std::f64::consts::TAU * rate * i as f64 / SR).sin());
        phase = (phase + f / SR).fract();
        *o = harmonics
            .iter()
            .map(|&(k, a)| a * (std::f64::consts::TAU * k as f64 * phase).sin())
            .sum();
    }
    let envelope = dsp::attack_release(n, rng.random_range(attack.0..attack.1), 0.01);
    out.iter_mut().zip(envelope).for_each(|(v, e)| *v *= e);
    out
}

/// Decaying partials `(frequency ratio, amplitude, decay per second)`.
fn modal(f0: f64, n: usize, partials: &[(f64, f64, f64)]) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / SR;
            partials
                .iter()
                .filter(|(ratio, _, _)| ratio * f0 < 7500.0)
                .map(|&(ratio, amp, decay)| {
                    amp * (-decay * t).exp() * (std::f64::consts::TAU * ratio * f0 * t).sin()
                })
                .sum()
        })
        .collect()
}

/// Karplus-Strong plucked string.
fn karplus_strong(f0: f64, n: usize, decay: f64, rng: &mut impl Rng) -> Vec<f64> {
    let period = ((SR / f0).round() as usize).max(2);
    let mut line: Vec<f64> = (0..period).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let j = i % period;
        let next = line[(j + 1) % period];
        out.push(line[j]);
        line[j] = decay * 0.5 * (line[j] + next);
    }
    out
}

/// Brass: harmonics whose upper partials grow with loudness (brightness follows the envelope).
fn brass(f0: f64, n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let attack = rng.random_range(0.04..0.09);
    let envelope = dsp::attack_release(n, attack, 0.02);
    let max_k = (7500.0 / f0) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            phase = (phase + f0 / SR).fract();
            let e = envelope[i];
            (1..=max_k.max(1))
                .map(|k| {
                    e.powf(1.0 + 0.6 * (k - 1) as f64) / k as f64
                        * (std::f64::consts::TAU * k as f64 * phase).sin()
                })
                .sum()
        })
        .collect()
}
