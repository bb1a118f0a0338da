//! The pre-training corpus as the data workers read it: decoded into memory once, or
//! streamed from disk window by window.
//!
//! Streaming keeps memory flat in the corpus size. A WAV file already at the model's sample
//! rate is read by seeking to the window: the same integer-to-float scaling and channel mean
//! as a whole-file decode, so the window's samples are bit-identical to cutting it from the
//! decoded clip. Other files (FLAC, or another sample rate, which must be resampled whole)
//! are decoded by the worker when a batch needs them, through a cache bounded in samples.
//! The window positions come from the same seeded draws over the same clip lengths, so a
//! run streams exactly the batches it would have built in memory, and resumes the same way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::clip::ClipAudio;
use super::loader::load_clips;
use crate::audio::{fixed_window, WindowMode};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// How the pre-training corpus is held (`data.loading`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loading {
    /// `in_memory` up to [`AUTO_STREAMING_SAMPLES`] samples of audio at the model rate,
    /// `streaming` beyond (the choice is logged).
    #[default]
    Auto,
    /// Decode every clip once, before the first step (fastest for small corpora).
    InMemory,
    /// Read each window from disk when a batch needs it.
    Streaming,
}

impl Loading {
    /// Whether this is the default, `auto`.
    pub fn is_auto(&self) -> bool {
        *self == Loading::Auto
    }
}

/// Corpora above this many samples at the model rate stream under `loading: auto`: 2^29
/// samples, 2 GiB as f32, about 9.3 hours at 16 kHz.
pub const AUTO_STREAMING_SAMPLES: u64 = 1 << 29;

/// Decoded clips a streaming corpus keeps (in samples at the model rate, all workers
/// together): 2^24, 64 MiB.
const CACHE_SAMPLES: usize = 1 << 24;

/// The pre-training corpus.
#[derive(Debug)]
pub enum PretrainCorpus {
    /// Every clip at the model rate.
    InMemory(Vec<Vec<f32>>),
    /// Clips read from disk when needed.
    Streaming(StreamingCorpus),
}

impl PretrainCorpus {
    /// Loads (or indexes, when streaming) `clips` at `sample_rate`, skipping unreadable
    /// files when `skip_bad_files`.
    pub fn open(
        clips: &[ClipAudio],
        sample_rate: u32,
        loading: Loading,
        skip_bad_files: bool,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let streaming = match loading {
            Loading::InMemory => false,
            Loading::Streaming => true,
            Loading::Auto => {
                let total = estimated_samples(clips, sample_rate);
                let stream = total > AUTO_STREAMING_SAMPLES;
                tracing::info!(
                    "data.loading: auto: about {:.1} h of audio ({total} samples at {sample_rate} Hz) -> {}",
                    total as f64 / f64::from(sample_rate) / 3600.0,
                    if stream { "streaming" } else { "in_memory" }
                );
                stream
            }
        };
        if !streaming {
            let loaded = load_clips(
                clips,
                sample_rate,
                skip_bad_files,
                "decode pre-training audio",
                progress,
            )?;
            return Ok(Self::InMemory(
                loaded.loaded.into_iter().map(|(_, s)| s).collect(),
            ));
        }
        StreamingCorpus::index(clips, sample_rate, skip_bad_files, progress).map(Self::Streaming)
    }

    /// Clips in the corpus.
    pub fn len(&self) -> usize {
        match self {
            Self::InMemory(clips) => clips.len(),
            Self::Streaming(s) => s.clips.len(),
        }
    }

    /// Whether the corpus has no clips.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len`-sample training window of clip `clip`, as [`fixed_window`] cuts it with
    /// `rng` from the decoded clip.
    pub fn window(&self, clip: usize, len: usize, rng: &mut impl Rng) -> Result<Vec<f32>> {
        match self {
            Self::InMemory(clips) => Ok(fixed_window(&clips[clip], len, WindowMode::Random(rng))),
            Self::Streaming(s) => s.window(clip, len, rng),
        }
    }
}

/// Samples at `sample_rate` of the file clips (from their headers: WAV's frame count, FLAC's
/// total samples), plus the synthetic clips' nominal lengths; files whose header cannot be
/// read count as nothing (they are reported when loaded).
fn estimated_samples(clips: &[ClipAudio], sample_rate: u32) -> u64 {
    clips
        .iter()
        .map(|clip| match clip {
            ClipAudio::File { path, .. } => hound::WavReader::open(path)
                .map(|r| {
                    let rate = r.spec().sample_rate.max(1);
                    u64::from(r.duration()) * u64::from(sample_rate) / u64::from(rate)
                })
                .unwrap_or(0),
            ClipAudio::SyntheticPretrain { seconds, .. } => {
                (seconds.1 * f64::from(sample_rate)) as u64
            }
            _ => 0,
        })
        .sum()
}

/// A corpus read from disk: each clip's length at the model rate and how to read it.
#[derive(Debug)]
pub struct StreamingCorpus {
    clips: Vec<StreamedClip>,
    sample_rate: u32,
    cache: Mutex<ClipCache>,
}

#[derive(Debug)]
struct StreamedClip {
    source: ClipAudio,
    /// Samples at the model rate.
    len: usize,
    /// A WAV file at the model rate: read by seeking.
    seekable: bool,
}

impl StreamingCorpus {
    /// Reads each clip's length: from the header of a WAV file at `sample_rate`, otherwise
    /// by decoding it once (and dropping the samples).
    fn index(
        clips: &[ClipAudio],
        sample_rate: u32,
        skip_bad_files: bool,
        progress: &dyn Progress,
    ) -> Result<Self> {
        progress.start("index pre-training audio", clips.len() as u64, "clips");
        let mut indexed = Vec::with_capacity(clips.len());
        let mut skipped = 0usize;
        for clip in clips {
            let entry = match seekable_len(clip, sample_rate) {
                Some(len) => len.map(|len| (len, true)),
                None => clip.load(sample_rate).map(|s| (s.len(), false)),
            };
            progress.advance(1);
            match entry {
                Ok((len, seekable)) => indexed.push(StreamedClip {
                    source: clip.clone(),
                    len,
                    seekable,
                }),
                Err(e) if skip_bad_files => {
                    tracing::warn!("skipping unreadable clip: {e}");
                    skipped += 1;
                }
                Err(e) => return Err(e),
            }
        }
        progress.finish();
        if skipped > 0 {
            tracing::warn!(
                "skipped {skipped} of {} clips (skip_bad_files: true)",
                clips.len()
            );
        }
        let seekable = indexed.iter().filter(|c| c.seekable).count();
        tracing::info!(
            "streaming {} clips: {seekable} WAV files at {sample_rate} Hz read by seeking, {} decoded when needed",
            indexed.len(),
            indexed.len() - seekable
        );
        Ok(Self {
            clips: indexed,
            sample_rate,
            cache: Mutex::new(ClipCache::default()),
        })
    }

    fn window(&self, clip: usize, len: usize, rng: &mut impl Rng) -> Result<Vec<f32>> {
        let entry = &self.clips[clip];
        if !entry.seekable {
            let samples = self.decoded(clip)?;
            return Ok(fixed_window(&samples, len, WindowMode::Random(rng)));
        }
        let ClipAudio::File { path, .. } = &entry.source else {
            unreachable!("only files are seekable");
        };
        // fixed_window's choice, made on the length alone.
        if entry.len < len {
            let left = (len - entry.len) / 2;
            let mut out = vec![0.0; len];
            out[left..left + entry.len].copy_from_slice(&read_wav(path, 0, entry.len)?);
            return Ok(out);
        }
        let start = if entry.len == len {
            0
        } else {
            rng.random_range(0..=entry.len - len)
        };
        read_wav(path, start, len)
    }

    /// Clip `clip` decoded at the model rate, from the cache or the disk.
    fn decoded(&self, clip: usize) -> Result<Arc<Vec<f32>>> {
        if let Some(hit) = self.cache.lock().expect("not poisoned").get(clip) {
            return Ok(hit);
        }
        let samples = Arc::new(self.clips[clip].source.load(self.sample_rate)?);
        self.cache
            .lock()
            .expect("not poisoned")
            .put(clip, samples.clone());
        Ok(samples)
    }
}

/// `Some(len)` for a WAV file at `sample_rate` (its frame count, or the error opening it);
/// `None` for anything that must be decoded whole.
fn seekable_len(clip: &ClipAudio, sample_rate: u32) -> Option<Result<usize>> {
    let ClipAudio::File { path, .. } = clip else {
        return None;
    };
    let reader = hound::WavReader::open(path).ok()?;
    let spec = reader.spec();
    let supported = match spec.sample_format {
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
        hound::SampleFormat::Int => true,
    };
    if spec.sample_rate != sample_rate || spec.channels == 0 || !supported {
        return None;
    }
    let len = reader.duration() as usize;
    Some(if len == 0 {
        Err(Error::audio(path, "the file holds no audio samples"))
    } else {
        Ok(len)
    })
}

/// `frames` mono frames of the WAV file at `path` from frame `start`: the same scaling and
/// channel mean as [`crate::audio::decode`].
fn read_wav(path: &std::path::Path, start: usize, frames: usize) -> Result<Vec<f32>> {
    let wav_err = |e: hound::Error| Error::audio(path, format!("corrupt or unsupported WAV: {e}"));
    let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    reader.seek(start as u32).map_err(|e| Error::io(path, e))?;
    let count = frames * usize::from(spec.channels);
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .take(count)
            .collect::<std::result::Result<_, _>>()
            .map_err(wav_err)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            reader
                .samples::<i32>()
                .take(count)
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<std::result::Result<_, _>>()
                .map_err(wav_err)?
        }
    };
    if interleaved.len() < count {
        return Err(Error::audio(
            path,
            format!(
                "the file ends before frame {} that its header promises",
                start + frames
            ),
        ));
    }
    let mono = crate::audio::downmix(&interleaved, usize::from(spec.channels));
    if mono.iter().any(|s| !s.is_finite()) {
        return Err(Error::audio(
            path,
            "NaN or infinite samples; the file is corrupt",
        ));
    }
    Ok(mono)
}

/// Recently decoded clips, oldest evicted first, at most [`CACHE_SAMPLES`] samples in all.
#[derive(Debug, Default)]
struct ClipCache {
    clips: VecDeque<(usize, Arc<Vec<f32>>)>,
    samples: usize,
}

impl ClipCache {
    fn get(&self, clip: usize) -> Option<Arc<Vec<f32>>> {
        self.clips
            .iter()
            .find(|(c, _)| *c == clip)
            .map(|(_, s)| s.clone())
    }

    fn put(&mut self, clip: usize, samples: Arc<Vec<f32>>) {
        if self.get(clip).is_some() {
            return;
        }
        self.samples += samples.len();
        self.clips.push_back((clip, samples));
        while self.samples > CACHE_SAMPLES && self.clips.len() > 1 {
            if let Some((_, old)) = self.clips.pop_front() {
                self.samples -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{Loading, PretrainCorpus};
    use crate::data::ClipAudio;
    use crate::progress::Silent;

    /// A WAV file of `seconds` of a chirp-like signal, in `format` (bits, float) with
    /// `channels` channels at `rate`.
    fn wav(
        dir: &Path,
        name: &str,
        rate: u32,
        channels: u16,
        bits: u16,
        float: bool,
        seconds: f64,
    ) -> PathBuf {
        let path = dir.join(name);
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        let frames = (seconds * f64::from(rate)) as usize;
        for i in 0..frames {
            for c in 0..channels {
                let t = i as f64 / f64::from(rate);
                let v = (0.6 * (t * (300.0 + 200.0 * t + 50.0 * f64::from(c))).sin()) as f32;
                if float {
                    w.write_sample(v).unwrap();
                } else {
                    let max = (1i64 << (bits - 1)) as f32 - 1.0;
                    w.write_sample((v * max) as i32).unwrap();
                }
            }
        }
        w.finalize().unwrap();
        path
    }

    /// Streaming cuts exactly the windows that cutting the decoded clips in memory gives, for
    /// 16/24-bit and float WAV, stereo, a clip shorter than the window (padding), a WAV at
    /// another rate and a FLAC file (both decoded by the worker), from the same draws.
    #[test]
    fn streamed_windows_equal_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let files = [
            wav(d, "mono16.wav", 16_000, 1, 16, false, 2.0),
            wav(d, "stereo24.wav", 16_000, 2, 24, false, 1.5),
            wav(d, "float.wav", 16_000, 1, 32, true, 3.0),
            wav(d, "short.wav", 16_000, 1, 16, false, 0.5),
            wav(d, "exact.wav", 16_000, 1, 16, false, 0.95),
            wav(d, "rate22k.wav", 22_050, 1, 16, false, 2.0),
            data.join("tone_16k_24bit.flac"),
            data.join("tone_22k_stereo.flac"),
        ];
        let clips: Vec<ClipAudio> = files
            .iter()
            .map(|p| ClipAudio::File {
                path: p.clone(),
                origin: None,
            })
            .collect();
        let open = |loading| PretrainCorpus::open(&clips, 16_000, loading, false, &Silent).unwrap();
        let (memory, streamed) = (open(Loading::InMemory), open(Loading::Streaming));
        assert!(matches!(memory, PretrainCorpus::InMemory(_)));
        assert!(matches!(streamed, PretrainCorpus::Streaming(_)));
        assert_eq!(memory.len(), streamed.len());
        for (clip, file) in files.iter().enumerate() {
            for draw in 0..8u64 {
                let rng = || crate::rng::stream_indexed(7, "test/window", draw);
                let a = memory.window(clip, 15_200, &mut rng()).unwrap();
                let b = streamed.window(clip, 15_200, &mut rng()).unwrap();
                assert!(a == b, "clip {} draw {draw}", file.display());
            }
        }
        assert!(
            matches!(open(Loading::Auto), PretrainCorpus::InMemory(_)),
            "a small corpus stays in memory under auto"
        );
    }

    /// A WAV file whose data ends before its header says fails at the window that needs the
    /// missing frames, naming the file.
    #[test]
    fn a_truncated_wav_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = wav(dir.path(), "cut.wav", 16_000, 1, 16, false, 2.0);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let clips = [ClipAudio::File {
            path: path.clone(),
            origin: None,
        }];
        let corpus =
            PretrainCorpus::open(&clips, 16_000, Loading::Streaming, false, &Silent).unwrap();
        let errors = (0..16u64)
            .filter_map(|draw| {
                let mut rng = crate::rng::stream_indexed(1, "test/window", draw);
                corpus.window(0, 15_200, &mut rng).err()
            })
            .collect::<Vec<_>>();
        assert!(!errors.is_empty(), "some window reaches past the data");
        assert!(errors[0].to_string().contains("cut.wav"), "{}", errors[0]);
    }
}
