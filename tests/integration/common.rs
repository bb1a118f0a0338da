//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The repository's `tests/fixtures` (or `$SLICER_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("SLICER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    assert!(
        dir.is_dir(),
        "fixtures not found at {}; they ship in tests/fixtures (or set SLICER_FIXTURES)",
        dir.display()
    );
    dir
}

/// A float32 tensor from a safetensors file: (shape, values).
pub fn read_f32(file: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("{name} in {}: {e}", file.display()));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), values)
}

/// Largest |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A sine tone.
pub fn tone(freq: f32, rate: u32, samples: usize) -> Vec<f32> {
    (0..samples)
        .map(|i| 0.5 * (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// Writes interleaved `samples` as a WAV with the given spec.
pub fn write_wav(path: &Path, spec: hound::WavSpec, samples: &[f32]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => w.write_sample(s).unwrap(),
            (hound::SampleFormat::Int, 8) => w.write_sample((s * 127.0) as i8).unwrap(),
            (hound::SampleFormat::Int, 16) => w.write_sample((s * 32767.0) as i16).unwrap(),
            (hound::SampleFormat::Int, bits) => w
                .write_sample((s * ((1i64 << (bits - 1)) - 1) as f32) as i32)
                .unwrap(),
        }
    }
    w.finalize().unwrap();
}

/// A 16-bit mono WAV spec at `rate`.
pub fn pcm16(rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// `method`'s block at test sizes (SLICER's and DeLoRes-M's queue as smoke.yaml's).
pub fn small_method_block(method: &str) -> String {
    match method {
        "slicer" => "{type: slicer, queue_size: 16}".into(),
        "byol_a" => "{type: byol_a, hidden_dim: 32, projection_dim: 8}".into(),
        "delores_s" => "{type: delores_s, projector_dim: 16}".into(),
        "delores_m" => "{type: delores_m, queue_size: 16, barlow: {projector_dim: 16}}".into(),
        other => other.into(),
    }
}
