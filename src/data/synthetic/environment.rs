//! Environment-like sounds: eight textures and event classes, mixed with a background whose
//! kind and level are the held-out factor.

use rand::Rng;

use super::dsp::{self, Resonator, SR};

/// Environmental sound classes.
pub const SCENES: [&str; 8] = [
    "rain", "wind", "engine", "birds", "siren", "knocking", "crackle", "stream",
];

/// Background mixed under a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Pink noise.
    Pink,
    /// Brown noise.
    Brown,
    /// Mains hum (50 or 60 Hz and harmonics) with white noise.
    HumAndHiss,
}

/// Renders scene `class` for `seconds` over `background` at an SNR drawn from `snr_db`.
pub fn scene(
    class: usize,
    seconds: f64,
    background: Background,
    snr_db: (f64, f64),
    rng: &mut impl Rng,
) -> Vec<f64> {
    let n = (seconds * SR) as usize;
    let mut x = foreground(class, n, rng);
    let noise = match background {
        Background::Pink => dsp::pink(n, rng),
        Background::Brown => dsp::brown(n, rng),
        Background::HumAndHiss => {
            let mains = if rng.random_bool(0.5) { 50.0 } else { 60.0 };
            let hiss = dsp::white(n, rng);
            (0..n)
                .map(|i| {
                    let t = i as f64 / SR;
                    (1..=5)
                        .map(|k| (std::f64::consts::TAU * mains * k as f64 * t).sin() / k as f64)
                        .sum::<f64>()
                        + 0.3 * hiss[i]
                })
                .collect()
        }
    };
    dsp::mix_at_snr(&mut x, &noise, rng.random_range(snr_db.0..snr_db.1));
    x
}

fn foreground(class: usize, n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let mut out = vec![0.0; n];
    match SCENES[class] {
        "rain" => {
            let rate = rng.random_range(150.0..500.0);
            for at in poisson_times(rate, n, rng) {
                let len = (rng.random_range(0.002..0.008) * SR) as usize;
                let mut drop = dsp::white(len, rng);
                dsp::differentiate(&mut drop);
                let gain = rng.random_range(0.2..1.0);
                drop.iter_mut()
                    .enumerate()
                    .for_each(|(i, d)| *d *= gain * (-(i as f64) / len as f64 * 4.0).exp());
                dsp::add_at(&mut out, &drop, at);
            }
        }
        "wind" => {
            let noise = dsp::white(n, rng);
            let (rate, depth) = (rng.random_range(0.2..1.0), rng.random_range(0.3..0.8));
            let (base, swing) = (
                rng.random_range(200.0..600.0),
                rng.random_range(100.0..600.0),
            );
            let mut y = 0.0;
            for (i, o) in out.iter_mut().enumerate() {
                let slow = (std::f64::consts::TAU * rate * i as f64 / SR).sin();
                let alpha =
                    1.0 - (-std::f64::consts::TAU * (base + swing * (0.5 + 0.5 * slow)) / SR).exp();
                y += alpha * (noise[i] - y);
                *o = y * (1.0 - depth + depth * (0.5 + 0.5 * slow));
            }
        }
        "engine" => {
            let f0 = rng.random_range(25.0..70.0);
            let rumble = dsp::brown(n, rng);
            for (i, o) in out.iter_mut().enumerate() {
                let t = i as f64 / SR;
                let am = 1.0 + 0.5 * (std::f64::consts::TAU * f0 / 2.0 * t).sin();
                let tone: f64 = (1..=40)
                    .map(|k| {
                        (std::f64::consts::TAU * f0 * k as f64 * t).sin() / (k as f64).powf(0.7)
                    })
                    .sum();
                *o = am * tone + 2.0 * rumble[i];
            }
            dsp::lowpass(&mut out, 1500.0);
        }
        "birds" => {
            for _ in 0..rng.random_range(2..7) {
                let len = (rng.random_range(0.04..0.15) * SR) as usize;
                let (fa, fb) = (
                    rng.random_range(2000.0..7000.0),
                    rng.random_range(2000.0..7000.0),
                );
                let mut phase = 0.0f64;
                let chirp: Vec<f64> = (0..len)
                    .map(|i| {
                        let u = i as f64 / len as f64;
                        phase += (fa + (fb - fa) * u) / SR;
                        (std::f64::consts::PI * u).sin()
                            * ((std::f64::consts::TAU * phase).sin()
                                + 0.2 * (2.0 * std::f64::consts::TAU * phase).sin())
                    })
                    .collect();
                let at = rng.random_range(0..n.saturating_sub(len).max(1));
                dsp::add_at(&mut out, &chirp, at);
            }
        }
        "siren" => {
            let (centre, dev, rate) = (
                rng.random_range(700.0..1200.0),
                rng.random_range(200.0..500.0),
                rng.random_range(0.5..3.0),
            );
            let mut phase = 0.0f64;
            for (i, o) in out.iter_mut().enumerate() {
                phase += (centre + dev * (std::f64::consts::TAU * rate * i as f64 / SR).sin()) / SR;
                *o = (1..=3)
                    .map(|k| (std::f64::consts::TAU * k as f64 * phase).sin() / k as f64)
                    .sum();
            }
        }
        "knocking" => {
            let period = (rng.random_range(0.15..0.4) * SR) as usize;
            let (freq, start) = (rng.random_range(150.0..500.0), rng.random_range(0..period));
            let mut resonator = Resonator::new(freq, 60.0);
            let mut excitation = vec![0.0; n];
            for at in (start..n).step_by(period) {
                for (k, e) in excitation.iter_mut().skip(at).take(40).enumerate() {
                    *e += (1.0 - k as f64 / 40.0) * rng.random_range(-1.0..1.0);
                }
            }
            out = excitation
                .iter()
                .map(|&e| resonator.step(e) + 0.2 * e)
                .collect();
        }
        "crackle" => {
            let rumble = dsp::brown(n, rng);
            out.iter_mut().zip(&rumble).for_each(|(o, r)| *o = 0.05 * r);
            for at in poisson_times(rng.random_range(20.0..80.0), n, rng) {
                let len = (rng.random_range(0.0005..0.002) * SR) as usize + 1;
                let amp = rng.random_range(0.05f64..1.0).powf(-0.7).min(20.0);
                let click: Vec<f64> = (0..len)
                    .map(|i| amp * rng.random_range(-1.0..1.0) * (1.0 - i as f64 / len as f64))
                    .collect();
                dsp::add_at(&mut out, &click, at);
            }
        }
        "stream" => {
            let mut hiss = dsp::white(n, rng);
            Resonator::new(rng.random_range(600.0..1500.0), 800.0).run(&mut hiss);
            out.iter_mut().zip(&hiss).for_each(|(o, h)| *o = 0.3 * h);
            for at in poisson_times(rng.random_range(40.0..150.0), n, rng) {
                let len = (rng.random_range(0.01..0.03) * SR) as usize;
                let f = rng.random_range(300.0..1500.0);
                let mut phase = 0.0f64;
                let bubble: Vec<f64> = (0..len)
                    .map(|i| {
                        let u = i as f64 / len as f64;
                        phase += f * (1.0 + 0.8 * u) / SR;
                        (-4.0 * u).exp() * (std::f64::consts::TAU * phase).sin()
                    })
                    .collect();
                dsp::add_at(&mut out, &bubble, at);
            }
        }
        other => unreachable!("unknown scene {other}"),
    }
    out
}

/// Event onsets of a Poisson process with `rate` per second over `n` samples.
fn poisson_times(rate: f64, n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut times = Vec::new();
    let mut t = 0.0;
    loop {
        t += -(1.0 - rng.random::<f64>()).ln() / rate;
        let at = (t * SR) as usize;
        if at >= n {
            return times;
        }
        times.push(at);
    }
}
