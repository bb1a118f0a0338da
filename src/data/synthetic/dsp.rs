//! Small signal-generation helpers for the synthetic demo corpus.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Sample rate of all generated audio.
pub const SR: f64 = 16_000.0;

/// A two-pole resonator (Klatt 1980): unity gain at DC, peak at `freq` with `bandwidth`.
#[derive(Debug, Clone, Copy)]
pub struct Resonator {
    a: f64,
    b: f64,
    c: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    /// A resonator at `freq` Hz with `bandwidth` Hz.
    pub fn new(freq: f64, bandwidth: f64) -> Self {
        let r = (-std::f64::consts::PI * bandwidth / SR).exp();
        let b = 2.0 * r * (2.0 * std::f64::consts::PI * freq / SR).cos();
        let c = -r * r;
        Self {
            a: 1.0 - b - c,
            b,
            c,
            y1: 0.0,
            y2: 0.0,
        }
    }

    /// Filters one sample.
    #[inline]
    pub fn step(&mut self, x: f64) -> f64 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }

    /// Filters a whole signal in place.
    pub fn run(&mut self, x: &mut [f64]) {
        for v in x {
            *v = self.step(*v);
        }
    }
}

/// One-pole low-pass with cutoff `freq` Hz, in place.
pub fn lowpass(x: &mut [f64], freq: f64) {
    let alpha = 1.0 - (-2.0 * std::f64::consts::PI * freq / SR).exp();
    let mut y = 0.0;
    for v in x {
        y += alpha * (*v - y);
        *v = y;
    }
}

/// First difference (a gentle high-pass / lip-radiation filter), in place.
pub fn differentiate(x: &mut [f64]) {
    let mut prev = 0.0;
    for v in x {
        let cur = *v;
        *v = cur - prev;
        prev = cur;
    }
}

/// Gaussian white noise.
pub fn white(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// Pink (1/f) noise, Paul Kellet's economy filter.
pub fn pink(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
    white(n, rng)
        .into_iter()
        .map(|w| {
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            b0 + b1 + b2 + w * 0.1848
        })
        .collect()
}

/// Brown (1/f^2) noise: leaky integrated white noise.
pub fn brown(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let mut y = 0.0;
    white(n, rng)
        .into_iter()
        .map(|w| {
            y = 0.995 * y + 0.1 * w;
            y
        })
        .collect()
}

/// Root mean square.
pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Adds `noise` to `signal` at `snr_db` (by RMS).
pub fn mix_at_snr(signal: &mut [f64], noise: &[f64], snr_db: f64) {
    let (s, n) = (rms(signal), rms(noise));
    if n == 0.0 || s == 0.0 {
        return;
    }
    let gain = s / n / 10f64.powf(snr_db / 20.0);
    for (x, v) in signal.iter_mut().zip(noise) {
        *x += gain * v;
    }
}

/// Linear attack / sustain / linear release envelope of `len` samples.
pub fn attack_release(len: usize, attack: f64, release: f64) -> Vec<f64> {
    let a = ((attack * SR) as usize).max(1);
    let r = ((release * SR) as usize).max(1);
    (0..len)
        .map(|i| {
            let up = (i as f64 / a as f64).min(1.0);
            let down = ((len - i) as f64 / r as f64).min(1.0);
            up.min(down)
        })
        .collect()
}

/// Scales `x` to peak `peak` and converts to f32 (silence stays silent).
pub fn to_peak_f32(x: &[f64], peak: f64) -> Vec<f32> {
    let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let g = if max > 0.0 { peak / max } else { 0.0 };
    x.iter().map(|v| (v * g) as f32).collect()
}

/// Adds `event` into `out` starting at sample `at` (clipped to `out`).
pub fn add_at(out: &mut [f64], event: &[f64], at: usize) {
    for (o, e) in out.iter_mut().skip(at).zip(event) {
        *o += e;
    }
}

/// MIDI note number to Hz.
pub fn midi_to_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// A value drawn log-uniformly from `lo..hi`.
pub fn log_uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo.ln()..hi.ln())).exp()
}
