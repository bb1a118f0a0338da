//! Frozen-encoder embeddings (SPEC 9.3): the encoder in eval mode (BatchNorm running
//! statistics, no dropout), log-mels normalised by a scalar mean/std, frames pooled over time.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{LogMelSpectrogram, NormStats};
use crate::model::{pool_max_mean, Dropout, Encoder};
use crate::progress::Progress;

/// How an encoder's frames `[T', d]` become one clip vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Max over time plus mean over time (SPEC 4, BYOL-A and Protocol A).
    MaxMean,
    /// Mean over time only (the LAPE toolkit's Protocol B).
    Mean,
}

impl Pooling {
    /// `[B, T', d] -> [B, d]`.
    pub fn apply(self, frames: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Pooling::MaxMean => pool_max_mean(frames),
            Pooling::Mean => frames.mean(1),
        }
    }
}

fn tensor_err(e: candle_core::Error) -> Error {
    Error::Invalid(format!("embedding: tensor operation failed: {e}"))
}

/// blake3 over the encoder's parameter and buffer names and values: two encoders with the
/// same hash embed identically.
pub fn encoder_hash(encoder: &Encoder) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for (name, tensor) in encoder.state("").map_err(tensor_err)? {
        hasher.update(name.as_bytes());
        let values = tensor
            .to_dtype(candle_core::DType::F64)
            .and_then(|t| t.flatten_all()?.to_vec1::<f64>())
            .map_err(tensor_err)?;
        for v in values {
            hasher.update(&v.to_le_bytes());
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Frame-level embeddings `[B, T', d]` of equally shaped spectrograms, normalised by `norm`,
/// computed on the encoder's device.
pub fn embed_frames(
    encoder: &Encoder,
    spectrograms: &[&LogMelSpectrogram],
    norm: &NormStats,
) -> Result<Tensor> {
    let device = encoder.fc0.weight.device();
    let Some(first) = spectrograms.first() else {
        return Err(Error::Invalid("embedding: no spectrograms".into()));
    };
    let (n_mels, n_frames) = (first.n_mels, first.n_frames);
    if let Some(odd) = spectrograms
        .iter()
        .find(|s| (s.n_mels, s.n_frames) != (n_mels, n_frames))
    {
        return Err(Error::Invalid(format!(
            "embedding: a batch mixes {}x{} and {}x{} spectrograms",
            n_mels, n_frames, odd.n_mels, odd.n_frames
        )));
    }
    let mut values: Vec<f32> = spectrograms
        .iter()
        .flat_map(|s| s.data.iter().copied())
        .collect();
    norm.apply(&mut values);
    let x = Tensor::from_vec(values, (spectrograms.len(), 1, n_mels, n_frames), device)
        .map_err(tensor_err)?;
    encoder
        .forward(&x, false, &mut Dropout::Off)
        .map_err(tensor_err)
}

/// Pooled embeddings (`n * d`, row-major) of `spectrograms`, in batches of `batch_size`.
/// Reports progress under `label`.
pub fn embed_spectrograms(
    encoder: &Encoder,
    spectrograms: &[LogMelSpectrogram],
    norm: &NormStats,
    pooling: Pooling,
    batch_size: usize,
    label: &str,
    progress: &dyn Progress,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(spectrograms.len() * encoder.fc3.weight.dim(0).unwrap_or(0));
    progress.start(label, spectrograms.len() as u64);
    for chunk in spectrograms.chunks(batch_size.max(1)) {
        let refs: Vec<&LogMelSpectrogram> = chunk.iter().collect();
        let frames = embed_frames(encoder, &refs, norm)?;
        let pooled = pooling
            .apply(&frames)
            .and_then(|p| p.flatten_all()?.to_vec1::<f32>())
            .map_err(tensor_err)?;
        out.extend(pooled);
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use candle_core::Device;

    fn spectrogram(seed: u64) -> LogMelSpectrogram {
        use rand::Rng;
        let mut rng = crate::rng::stream(seed, "test");
        LogMelSpectrogram {
            n_mels: 16,
            n_frames: 24,
            data: (0..16 * 24).map(|_| rng.random_range(-3.0..1.0)).collect(),
        }
    }

    #[test]
    fn batching_does_not_change_embeddings_and_hash_tracks_weights() {
        let device = Device::Cpu;
        let encoder =
            Encoder::new(16, 8, 0.3, &mut crate::rng::stream(1, "init"), &device).unwrap();
        let specs: Vec<_> = (0..5).map(spectrogram).collect();
        let norm = NormStats {
            mean: -1.0,
            std: 2.0,
            n_clips: 5,
        };
        let run = |batch| {
            embed_spectrograms(
                &encoder,
                &specs,
                &norm,
                Pooling::MaxMean,
                batch,
                "t",
                &Silent,
            )
            .unwrap()
        };
        let (one, all) = (run(1), run(64));
        assert_eq!(one.len(), 5 * 8);
        for (a, b) in one.iter().zip(&all) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let mean =
            embed_spectrograms(&encoder, &specs, &norm, Pooling::Mean, 4, "t", &Silent).unwrap();
        assert_ne!(mean, all);
        let other = Encoder::new(16, 8, 0.3, &mut crate::rng::stream(2, "init"), &device).unwrap();
        let h = encoder_hash(&encoder).unwrap();
        assert_eq!(h, encoder_hash(&encoder).unwrap());
        assert_ne!(h, encoder_hash(&other).unwrap());
    }
}
