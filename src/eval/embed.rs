//! Frozen-encoder embeddings (docs/method.md §9.3): the encoder in eval mode (BatchNorm running
//! statistics, no dropout), log-mels normalised by a scalar mean/std, frames pooled over time.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{batches, LogMelSpectrogram, NormStats, SpectrogramSet};
use crate::model::{pool_max_mean, Dropout, Encoder};
use crate::progress::Progress;

/// How an encoder's frames `[T', d]` become one clip vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Max over time plus mean over time (docs/method.md §4, BYOL-A and Protocol A).
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

    /// `[B, T', d] -> B * d` values, each clip pooled over its own frames `[first, end)` only.
    pub fn apply_spans(
        self,
        frames: &Tensor,
        spans: &[(usize, usize)],
    ) -> candle_core::Result<Vec<f32>> {
        let clips = frames.to_dtype(candle_core::DType::F32)?.to_vec3::<f32>()?;
        let mut out = Vec::with_capacity(
            clips.len() * clips.first().map_or(0, |c| c.first().map_or(0, Vec::len)),
        );
        for (clip, &(first, end)) in clips.iter().zip(spans) {
            let kept = &clip[first..end];
            let d = kept[0].len();
            let n = kept.len() as f32;
            for j in 0..d {
                let mean = kept.iter().map(|f| f[j]).sum::<f32>() / n;
                out.push(match self {
                    Pooling::MaxMean => {
                        kept.iter().map(|f| f[j]).fold(f32::NEG_INFINITY, f32::max) + mean
                    }
                    Pooling::Mean => mean,
                });
            }
        }
        Ok(out)
    }
}

fn tensor_err(e: candle_core::Error) -> Error {
    Error::tensor("embedding")(e)
}

/// The encoder frames (`encoder_frames` of them, each covering `input_frames /
/// encoder_frames` input frames after the three 2x2 pools) that come from the input frames
/// `[first, end)`: those at least half covered by them, else the one covered most.
pub fn encoder_span(
    (first, end): (usize, usize),
    input_frames: usize,
    encoder_frames: usize,
) -> (usize, usize) {
    let stride = (input_frames / encoder_frames.max(1)).max(1);
    let overlap = |t: usize| {
        let (a, b) = (t * stride, (t + 1) * stride);
        b.min(end).saturating_sub(a.max(first))
    };
    let kept: Vec<usize> = (0..encoder_frames)
        .filter(|&t| 2 * overlap(t) >= stride)
        .collect();
    match (kept.first(), kept.last()) {
        (Some(&a), Some(&b)) => (a, b + 1),
        _ => {
            let best = (0..encoder_frames)
                .max_by_key(|&t| (overlap(t), std::cmp::Reverse(t)))
                .unwrap_or(0);
            (best, best + 1)
        }
    }
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

/// The batch `[B, 1, n_mels, T]` of equally shaped spectrograms, normalised by `norm`, on
/// `device`.
pub fn normalised_batch(
    spectrograms: &[&LogMelSpectrogram],
    norm: &NormStats,
    device: &candle_core::Device,
) -> Result<Tensor> {
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
    Tensor::from_vec(values, (spectrograms.len(), 1, n_mels, n_frames), device).map_err(tensor_err)
}

/// Frame-level embeddings `[B, T', d]` of equally shaped spectrograms, normalised by `norm`,
/// computed on the encoder's device.
pub fn embed_frames(
    encoder: &Encoder,
    spectrograms: &[&LogMelSpectrogram],
    norm: &NormStats,
) -> Result<Tensor> {
    let x = normalised_batch(spectrograms, norm, encoder.fc0.weight.device())?;
    encoder
        .forward(&x, false, &mut Dropout::Off)
        .map_err(tensor_err)
}

/// A copy of `encoder` whose BatchNorm running statistics are re-estimated on
/// `spectrograms` (normalised by `norm`, read in batches of `batch_size`).
pub fn recalibrated(
    encoder: &Encoder,
    spectrograms: &dyn SpectrogramSet,
    norm: &NormStats,
    batch_size: usize,
) -> Result<Encoder> {
    let device = encoder.fc0.weight.device();
    let copy = encoder.to_device(device).map_err(tensor_err)?;
    copy.recalibrate_batch_norm(|| {
        batches(spectrograms, batch_size).map(|batch| {
            let batch = batch.map_err(Recalibration::Input)?;
            normalised_batch(&batch.iter().collect::<Vec<_>>(), norm, device)
                .map_err(Recalibration::Input)
        })
    })
    .map_err(|e| match e {
        Recalibration::Input(e) => e,
        Recalibration::Tensor(e) => tensor_err(e),
    })?;
    Ok(copy)
}

/// What can stop a recalibration: reading its inputs, or the encoder's tensor ops.
enum Recalibration {
    Input(Error),
    Tensor(candle_core::Error),
}

impl From<candle_core::Error> for Recalibration {
    fn from(e: candle_core::Error) -> Self {
        Recalibration::Tensor(e)
    }
}

/// Pooled embeddings (`n * d`, row-major) of `spectrograms`, read in batches of
/// `batch_size`. With `real_frames` (one input-frame range per clip), each clip is pooled
/// over the encoder frames computed from its audio only, never from padding. Reports
/// progress under `label`.
#[allow(clippy::too_many_arguments)] // the inputs, their padding, and how to embed them
pub fn embed_spectrograms(
    encoder: &Encoder,
    spectrograms: &dyn SpectrogramSet,
    real_frames: Option<&[(usize, usize)]>,
    norm: &NormStats,
    pooling: Pooling,
    batch_size: usize,
    label: &str,
    progress: &dyn Progress,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(spectrograms.len() * encoder.fc3.weight.dim(0).unwrap_or(0));
    progress.start(label, spectrograms.len() as u64, "clips");
    let batch_size = batch_size.max(1);
    for (k, chunk) in batches(spectrograms, batch_size).enumerate() {
        let chunk = chunk?;
        let refs: Vec<&LogMelSpectrogram> = chunk.iter().collect();
        let frames = embed_frames(encoder, &refs, norm)?;
        let encoder_frames = frames.dim(1).map_err(tensor_err)?;
        let spans = real_frames.map(|all| {
            all[k * batch_size..k * batch_size + chunk.len()]
                .iter()
                .map(|&span| encoder_span(span, chunk[0].n_frames, encoder_frames))
                .collect::<Vec<_>>()
        });
        let pooled = match spans {
            // Only a batch with padded clips leaves the device to be pooled clip by clip.
            Some(spans) if spans.iter().any(|&s| s != (0, encoder_frames)) => {
                pooling.apply_spans(&frames, &spans)
            }
            _ => pooling
                .apply(&frames)
                .and_then(|p| p.flatten_all()?.to_vec1::<f32>()),
        }
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
                None,
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
        let mean = embed_spectrograms(
            &encoder,
            &specs,
            None,
            &norm,
            Pooling::Mean,
            4,
            "t",
            &Silent,
        )
        .unwrap();
        // Spans over every frame pool exactly as the tensor op; a shorter span differs.
        let whole = vec![(0, 24); 5];
        let spanned = embed_spectrograms(
            &encoder,
            &specs,
            Some(&whole),
            &norm,
            Pooling::MaxMean,
            2,
            "t",
            &Silent,
        )
        .unwrap();
        for (a, b) in spanned.iter().zip(&all) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // The per-clip pooling itself equals the tensor op over whole spans.
        let refs: Vec<&LogMelSpectrogram> = specs.iter().collect();
        let frames = embed_frames(&encoder, &refs, &norm).unwrap();
        let t = frames.dim(1).unwrap();
        for pooling in [Pooling::MaxMean, Pooling::Mean] {
            let by_clip = pooling.apply_spans(&frames, &[(0, t); 5]).unwrap();
            let by_tensor = pooling
                .apply(&frames)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in by_clip.iter().zip(&by_tensor) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        let part = vec![(8, 24); 5];
        let cut = embed_spectrograms(
            &encoder,
            &specs,
            Some(&part),
            &norm,
            Pooling::MaxMean,
            2,
            "t",
            &Silent,
        )
        .unwrap();
        assert_ne!(cut, all);
        assert_ne!(mean, all);
        let other = Encoder::new(16, 8, 0.3, &mut crate::rng::stream(2, "init"), &device).unwrap();
        let h = encoder_hash(&encoder).unwrap();
        assert_eq!(h, encoder_hash(&encoder).unwrap());
        assert_ne!(h, encoder_hash(&other).unwrap());
    }

    #[test]
    fn encoder_spans_keep_frames_mostly_from_audio() {
        // 96 input frames, 12 encoder frames of 8.
        assert_eq!(encoder_span((0, 96), 96, 12), (0, 12));
        assert_eq!(encoder_span((20, 60), 96, 12), (2, 8)); // 20..24 is half of frame 2
        assert_eq!(encoder_span((21, 59), 96, 12), (3, 7)); // 56..59 is under half of frame 7
        assert_eq!(encoder_span((41, 43), 96, 12), (5, 6)); // shorter than a frame: the one it is in
    }
}
