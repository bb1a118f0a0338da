//! The embedding API: audio in, one embedding per window out, with the encoder's own front
//! end and normalisation. A clip is cut into consecutive windows of `window_seconds` (the
//! last one zero-padded, centred, when it is shorter; a clip shorter than one window is one
//! padded window), each embedded in eval mode and pooled over time; frame-level outputs are
//! available too.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use crate::audio::{fixed_window, WindowMode};
use crate::error::{Error, Result};
use crate::eval::embed_frames;
use crate::features::{LogMelFrontend, LogMelSpectrogram, NormStats};
use crate::pretrained::PretrainedEncoder;
use crate::progress::Progress;

/// One embedded window.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start of the window in the clip, seconds.
    pub start_s: f64,
    /// End of the audio it covers, seconds.
    pub end_s: f64,
    /// Pooled embedding, `d` values.
    pub embedding: Vec<f32>,
    /// Frame embeddings `[T', d]`, row-major, when asked for.
    pub frames: Option<Vec<f32>>,
}

/// An encoder ready to embed audio.
#[derive(Debug)]
pub struct Embedder {
    model: PretrainedEncoder,
    frontend: LogMelFrontend,
    norm: NormStats,
    window: usize,
    batch_size: usize,
    keep_frames: bool,
}

/// Embedding options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedOptions {
    /// Window length in seconds.
    pub window_seconds: f64,
    /// Windows per encoder batch.
    pub batch_size: usize,
    /// Also return frame-level embeddings.
    pub frames: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            window_seconds: 1.0,
            batch_size: 64,
            frames: false,
        }
    }
}

impl Embedder {
    /// An embedder for `model`. `norm` overrides the model's own normalisation statistics
    /// and is required when the model has none (PyTorch checkpoints carry none).
    pub fn new(
        model: PretrainedEncoder,
        norm: Option<NormStats>,
        options: EmbedOptions,
    ) -> Result<Self> {
        let norm = norm.or(model.config.normalization).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: the model carries no normalisation statistics; give them (--norm-mean, --norm-std), e.g. from the run that trained it",
                model.config.source
            ))
        })?;
        let window = model.config.frontend.samples(options.window_seconds);
        if window < model.config.frontend.n_fft {
            return Err(Error::Invalid(format!(
                "a {} s window is shorter than one FFT frame",
                options.window_seconds
            )));
        }
        Ok(Self {
            frontend: LogMelFrontend::new(&model.config.frontend),
            model,
            norm,
            window,
            batch_size: options.batch_size.max(1),
            keep_frames: options.frames,
        })
    }

    /// The model being used.
    pub fn model(&self) -> &PretrainedEncoder {
        &self.model
    }

    /// Embeds mono `samples` at `sample_rate` Hz (resampled to the model's rate).
    pub fn embed_samples(&self, samples: &[f32], sample_rate: u32) -> Result<Vec<Segment>> {
        let rate = self.model.config.frontend.sample_rate;
        let samples = crate::audio::resample(samples, sample_rate, rate)?;
        let mut out = self.embed_batch(&[samples])?;
        Ok(out.pop().expect("one clip"))
    }

    /// Embeds an audio file (WAV or FLAC, any rate and channel count).
    pub fn embed_file(&self, path: &Path) -> Result<Vec<Segment>> {
        let samples = crate::audio::load(path, self.model.config.frontend.sample_rate)?;
        Ok(self.embed_batch(&[samples])?.pop().expect("one clip"))
    }

    /// Embeds many files, batching windows across them; one result per file, in order, so
    /// one unreadable file does not stop the others.
    pub fn embed_files(
        &self,
        paths: &[PathBuf],
        progress: &dyn Progress,
    ) -> Vec<Result<Vec<Segment>>> {
        progress.start("embed files", paths.len() as u64, "files");
        let rate = self.model.config.frontend.sample_rate;
        let mut results = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(self.batch_size) {
            // Decoded clips move into `good`; `failed` keeps each file's load error in order.
            let mut good = Vec::with_capacity(chunk.len());
            let failed: Vec<Option<Error>> = chunk
                .iter()
                .map(|p| match crate::audio::load(p, rate) {
                    Ok(samples) => {
                        good.push(samples);
                        None
                    }
                    Err(e) => Some(e),
                })
                .collect();
            let mut embedded = match self.embed_batch(&good) {
                Ok(e) => e.into_iter(),
                Err(e) => {
                    let message = e.to_string();
                    results.extend(chunk.iter().map(|_| Err(Error::Invalid(message.clone()))));
                    progress.advance(chunk.len() as u64);
                    continue;
                }
            };
            for error in failed {
                results.push(match error {
                    Some(e) => Err(e),
                    None => Ok(embedded.next().expect("one result per loaded clip")),
                });
            }
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        results
    }

    /// Embeds already-loaded clips at the model's sample rate.
    pub fn embed_batch(&self, clips: &[Vec<f32>]) -> Result<Vec<Vec<Segment>>> {
        let rate = f64::from(self.model.config.frontend.sample_rate);
        // (clip index, start sample, covered samples, window samples)
        let mut windows: Vec<(usize, usize, usize, Vec<f32>)> = Vec::new();
        for (i, clip) in clips.iter().enumerate() {
            if clip.is_empty() {
                return Err(Error::Invalid(format!("clip {i} has no samples")));
            }
            let mut start = 0;
            loop {
                let end = (start + self.window).min(clip.len());
                let piece =
                    fixed_window::<ChaCha8Rng>(&clip[start..end], self.window, WindowMode::Centre);
                windows.push((i, start, end - start, piece));
                start += self.window;
                if start >= clip.len() {
                    break;
                }
            }
        }
        let mut out: Vec<Vec<Segment>> = vec![Vec::new(); clips.len()];
        for batch in windows.chunks(self.batch_size) {
            let audio: Vec<&[f32]> = batch.iter().map(|w| w.3.as_slice()).collect();
            let specs: Vec<LogMelSpectrogram> = self.frontend.compute_batch(&audio);
            let refs: Vec<&LogMelSpectrogram> = specs.iter().collect();
            let frames = embed_frames(&self.model.encoder, &refs, &self.norm)?;
            let tensor_err = |e: candle_core::Error| Error::tensor("embedding")(e);
            let pooled: Vec<Vec<f32>> = self
                .model
                .config
                .pooling
                .apply(&frames)
                .and_then(|p| p.to_vec2())
                .map_err(tensor_err)?;
            let frame_rows: Option<Vec<Vec<Vec<f32>>>> = if self.keep_frames {
                Some(frames.to_vec3().map_err(tensor_err)?)
            } else {
                None
            };
            for (k, (clip, start, covered, _)) in batch.iter().enumerate() {
                out[*clip].push(Segment {
                    start_s: *start as f64 / rate,
                    end_s: (*start + *covered) as f64 / rate,
                    embedding: pooled[k].clone(),
                    frames: frame_rows.as_ref().map(|f| f[k].concat()),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Pooling;
    use crate::features::FrontendConfig;
    use crate::model::Encoder;
    use crate::pretrained::{EncoderConfig, ARCHITECTURE};
    use candle_core::Device;

    fn embedder(frames: bool) -> Embedder {
        let encoder =
            Encoder::new(64, 8, 0.3, &mut crate::rng::stream(1, "e"), &Device::Cpu).unwrap();
        let config = EncoderConfig {
            architecture: ARCHITECTURE.into(),
            d: 8,
            dropout: 0.3,
            frontend: FrontendConfig::default(),
            normalization: Some(NormStats {
                mean: -6.0,
                std: 4.0,
                n_clips: 1,
            }),
            pooling: Pooling::MaxMean,
            source: "test".into(),
            spec_hash: None,
            slicer_version: "0".into(),
        };
        let options = EmbedOptions {
            frames,
            batch_size: 2,
            ..EmbedOptions::default()
        };
        Embedder::new(PretrainedEncoder { config, encoder }, None, options).unwrap()
    }

    #[test]
    fn windows_cover_the_clip_and_batching_does_not_change_results() {
        let e = embedder(true);
        let clip: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let segments = e.embed_samples(&clip, 16_000).unwrap();
        assert_eq!(segments.len(), 3);
        assert_eq!((segments[2].start_s, segments[2].end_s), (2.0, 2.5));
        assert_eq!(segments[0].embedding.len(), 8);
        assert_eq!(segments[0].frames.as_ref().unwrap().len() % 8, 0);
        let short = e.embed_samples(&clip[..4000], 16_000).unwrap();
        assert_eq!(short.len(), 1);
        let together = e
            .embed_batch(&[clip.clone(), clip[..4000].to_vec()])
            .unwrap();
        for (a, b) in together[0].iter().zip(&segments) {
            for (x, y) in a.embedding.iter().zip(&b.embedding) {
                assert!((x - y).abs() < 1e-5);
            }
        }
        assert!(e.embed_samples(&[], 16_000).is_err());
        // Resampling: the same tone at 8 kHz gives as many windows.
        let at_8k: Vec<f32> = clip.iter().step_by(2).copied().collect();
        assert_eq!(e.embed_samples(&at_8k, 8_000).unwrap().len(), 3);
    }
}
