//! The embedding API: audio in, embeddings out, with the encoder's own front end and
//! normalisation, in eval mode. Two ways:
//!
//! - pooled windows: a clip is cut into consecutive windows of `window_seconds` (the last one
//!   zero-padded, centred, when it is shorter; a clip shorter than one window is one padded
//!   window), each pooled over time;
//! - whole clips ([`Embedder::embed_clips`], and `frames: true`): the encoder is
//!   convolutional in time, so one pass over a clip's whole log-mel gives its frames at a
//!   regular hop (`MEL_POOLING` log-mel hops: 80 ms at 16 kHz and hop 160), each stamped at
//!   the centre of the audio it pools, and their pooled embedding.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use crate::audio::{fixed_window, WindowMode};
use crate::error::{Error, Result};
use crate::eval::embed_frames;
use crate::features::{LogMelFrontend, LogMelSpectrogram, NormStats};
use crate::model::MEL_POOLING;
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
    /// Frame embeddings `[T', d]`, row-major, when asked for (whole-clip mode).
    pub frames: Option<Vec<f32>>,
    /// The time of each frame, milliseconds from the clip's start, with `frames`.
    pub timestamps_ms: Option<Vec<f64>>,
}

/// One clip embedded in a single pass over all of its audio.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipEmbedding {
    /// The frames pooled over the whole clip (the model's pooling), `d` values.
    pub embedding: Vec<f32>,
    /// Frame embeddings `[n_frames, d]`, row-major.
    pub frames: Vec<f32>,
    /// Number of frames.
    pub n_frames: usize,
    /// The centre of the audio each frame pools, milliseconds from the clip's start: a
    /// regular hop, none past the clip's end.
    pub timestamps_ms: Vec<f64>,
}

/// An encoder ready to embed audio.
#[derive(Debug)]
pub struct Embedder {
    model: PretrainedEncoder,
    frontend: LogMelFrontend,
    norm: NormStats,
    window: usize,
    batch_size: usize,
    whole_clips: bool,
}

/// Embedding options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbedOptions {
    /// Window length in seconds.
    pub window_seconds: f64,
    /// Windows per encoder batch.
    pub batch_size: usize,
    /// Embed each clip whole, in one pass, and return its frames with their times
    /// ([`Embedder::embed_clips`]) instead of pooled windows.
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
            whole_clips: options.frames,
        })
    }

    /// The hop between whole-clip frames, milliseconds.
    pub fn frame_hop_ms(&self) -> f64 {
        let frontend = &self.model.config.frontend;
        1000.0 * (MEL_POOLING * frontend.hop_length) as f64 / f64::from(frontend.sample_rate)
    }

    /// The fewest samples a whole clip needs: one pooled frame of log-mel frames, and more
    /// than half an FFT frame (the reflect padding of the centred STFT).
    pub fn min_clip_samples(&self) -> usize {
        let frontend = &self.model.config.frontend;
        ((MEL_POOLING - 1) * frontend.hop_length).max(frontend.n_fft / 2 + 1)
    }

    /// Embeds each clip (at the model's sample rate) in one pass over all of its audio:
    /// its frames, their times and their pooled embedding. Clips of equal length share
    /// encoder batches; results are in input order.
    pub fn embed_clips(&self, clips: &[Vec<f32>]) -> Result<Vec<ClipEmbedding>> {
        let min = self.min_clip_samples();
        for (i, clip) in clips.iter().enumerate() {
            if clip.len() < min {
                return Err(Error::Invalid(format!(
                    "clip {i} has {} samples; a whole clip needs at least {min} ({:.0} ms at {} Hz)",
                    clip.len(),
                    1000.0 * min as f64 / f64::from(self.model.config.frontend.sample_rate),
                    self.model.config.frontend.sample_rate
                )));
            }
            if let Some(at) = clip.iter().position(|x| !x.is_finite()) {
                return Err(Error::Invalid(format!(
                    "clip {i} has a non-finite sample ({}) at index {at}",
                    clip[at]
                )));
            }
        }
        let mut by_length: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, clip) in clips.iter().enumerate() {
            by_length.entry(clip.len()).or_default().push(i);
        }
        let mut out: Vec<Option<ClipEmbedding>> = vec![None; clips.len()];
        let hop_ms = self.frame_hop_ms();
        let centre_ms = hop_ms * (MEL_POOLING - 1) as f64 / (2 * MEL_POOLING) as f64;
        for indices in by_length.values() {
            for batch in indices.chunks(self.batch_size) {
                let audio: Vec<&[f32]> = batch.iter().map(|&i| clips[i].as_slice()).collect();
                let (pooled, frames) = self.pooled_and_frames(&audio)?;
                let frames = frames
                    .to_vec3::<f32>()
                    .map_err(Error::tensor("embedding"))?;
                for ((&i, embedding), frames) in batch.iter().zip(pooled).zip(frames) {
                    let n_frames = frames.len();
                    out[i] = Some(ClipEmbedding {
                        embedding,
                        frames: frames.concat(),
                        n_frames,
                        timestamps_ms: (0..n_frames)
                            .map(|j| centre_ms + hop_ms * j as f64)
                            .collect(),
                    });
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|c| c.expect("every clip is in one length group"))
            .collect())
    }

    /// The pooled embeddings `[B][d]` and the frames `[B, T', d]` of equal-length `audio`.
    fn pooled_and_frames(&self, audio: &[&[f32]]) -> Result<(Vec<Vec<f32>>, candle_core::Tensor)> {
        let specs: Vec<LogMelSpectrogram> = self.frontend.compute_batch(audio);
        let refs: Vec<&LogMelSpectrogram> = specs.iter().collect();
        let frames = embed_frames(&self.model.encoder, &refs, &self.norm)?;
        let tensor_err = |e: candle_core::Error| Error::tensor("embedding")(e);
        let pooled = self
            .model
            .config
            .pooling
            .apply(&frames)
            .and_then(|p| p.to_vec2())
            .map_err(tensor_err)?;
        Ok((pooled, frames))
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

    /// Embeds already-loaded clips at the model's sample rate: pooled windows, or one
    /// whole-clip segment per clip with its frames (`frames: true`).
    pub fn embed_batch(&self, clips: &[Vec<f32>]) -> Result<Vec<Vec<Segment>>> {
        let rate = f64::from(self.model.config.frontend.sample_rate);
        if self.whole_clips {
            return Ok(clips
                .iter()
                .zip(self.embed_clips(clips)?)
                .map(|(clip, c)| {
                    vec![Segment {
                        start_s: 0.0,
                        end_s: clip.len() as f64 / rate,
                        embedding: c.embedding,
                        frames: Some(c.frames),
                        timestamps_ms: Some(c.timestamps_ms),
                    }]
                })
                .collect());
        }
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
            let (pooled, _) = self.pooled_and_frames(&audio)?;
            for ((clip, start, covered, _), embedding) in batch.iter().zip(pooled) {
                out[*clip].push(Segment {
                    start_s: *start as f64 / rate,
                    end_s: (*start + *covered) as f64 / rate,
                    embedding,
                    frames: None,
                    timestamps_ms: None,
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
        embedder_with(EmbedOptions {
            frames,
            batch_size: 2,
            ..EmbedOptions::default()
        })
    }

    /// The same seeded encoder every time, with `options`.
    fn embedder_with(options: EmbedOptions) -> Embedder {
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
        Embedder::new(PretrainedEncoder { config, encoder }, None, options).unwrap()
    }

    #[test]
    fn windows_cover_the_clip_and_batching_does_not_change_results() {
        let e = embedder(false);
        let clip: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let segments = e.embed_samples(&clip, 16_000).unwrap();
        assert_eq!(segments.len(), 3);
        assert_eq!((segments[2].start_s, segments[2].end_s), (2.0, 2.5));
        assert_eq!(segments[0].embedding.len(), 8);
        assert!(segments[0].frames.is_none());
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

    #[test]
    fn a_whole_clip_gives_regular_frames_inside_the_clip_and_their_pooled_embedding() {
        let e = embedder(true);
        let tone =
            |n: usize| -> Vec<f32> { (0..n).map(|i| (i as f32 * 0.03).sin() * 0.4).collect() };
        let clips = vec![tone(17_120), tone(40_000), tone(17_120)];
        let out = e.embed_clips(&clips).unwrap();
        // 17 120 samples: 1 + 17120/160 = 108 log-mel frames, pooled by 8 into 13.
        assert_eq!(out[0].n_frames, 13);
        assert_eq!(out[1].n_frames, (1 + 40_000 / 160) / 8);
        assert_eq!(out[0].frames.len(), 13 * 8);
        assert_eq!(out[0], out[2], "equal clips, equal results, in input order");
        for c in &out {
            let t = &c.timestamps_ms;
            assert_eq!(t[0], 35.0);
            assert!(t.windows(2).all(|w| (w[1] - w[0] - 80.0).abs() < 1e-9));
        }
        assert!(*out[0].timestamps_ms.last().unwrap() <= 17_120.0 / 16.0);
        // The pooled embedding is max + mean over the frames.
        let d = 8;
        for k in 0..d {
            let column: Vec<f32> = (0..13).map(|j| out[0].frames[j * d + k]).collect();
            let max = column.iter().cloned().fold(f32::MIN, f32::max);
            let mean = column.iter().sum::<f32>() / 13.0;
            assert!((out[0].embedding[k] - (max + mean)).abs() < 1e-5);
        }
        // The same as one pooled window of the clip's own length, and as `frames` segments.
        let window = embedder_with(EmbedOptions {
            window_seconds: 17_120.0 / 16_000.0,
            ..EmbedOptions::default()
        });
        let pooled = window.embed_samples(&clips[0], 16_000).unwrap();
        assert_eq!(pooled.len(), 1);
        for (x, y) in pooled[0].embedding.iter().zip(&out[0].embedding) {
            assert!((x - y).abs() < 1e-6, "{x} {y}");
        }
        let segments = e.embed_samples(&clips[0], 16_000).unwrap();
        assert_eq!(segments[0].embedding, out[0].embedding);
        assert_eq!(
            segments[0].timestamps_ms.as_ref(),
            Some(&out[0].timestamps_ms)
        );
        // Too short, or not finite: errors that say so.
        let short = e.embed_clips(&[tone(1000)]).unwrap_err().to_string();
        assert!(short.contains("at least 1120"), "{short}");
        let mut nan = tone(17_120);
        nan[5] = f32::NAN;
        assert!(e
            .embed_clips(&[nan])
            .unwrap_err()
            .to_string()
            .contains("non-finite"));
    }
}
