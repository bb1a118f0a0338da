//! `slicer._native`: slicer's encoders for Python, numpy in and numpy out, no torch needed.
//! The package `slicer` (`python/python/slicer`) re-exports [`Encoder`] and implements the
//! HEAR API on top of it (`slicer.hear`, which needs torch).
//!
//! Every call releases the GIL while Rust works and runs on the encoder's own thread pool.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use slicer::embedder::{ClipEmbedding, EmbedOptions, Embedder};
use slicer::error::Error;
use slicer::eval::Weights;
use slicer::features::NormStats;
use slicer::pretrained::PretrainedEncoder;

/// A slicer encoder, loaded from anything `experiment embed --model` takes: an exported
/// folder, a run folder, a Hub id in the offline cache (`org/name[@revision]`), a BYOL-A
/// `.pth` or a LAPE `.ckpt` file (with `norm_mean` and `norm_std`, which those carry not).
///
/// Each clip is embedded whole in one pass: `embed` gives the pooled embedding the
/// project's evaluation computes for a clip, `frames` the encoder's frames and their times.
#[pyclass(frozen, module = "slicer._native")]
struct Encoder {
    embedder: Embedder,
    pool: rayon::ThreadPool,
}

#[pymethods]
impl Encoder {
    /// Loads `model`. `frontend`: `byol_a`, `lape` or a YAML file of front-end keys (default:
    /// the model's own); `weights`: `student` or `teacher` (runs and LAPE checkpoints);
    /// `threads`: worker threads (default: every core); `batch_size`: clips per encoder batch.
    #[new]
    #[pyo3(signature = (model, *, frontend=None, weights="student", norm_mean=None, norm_std=None, threads=None, batch_size=16))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        frontend: Option<&str>,
        weights: &str,
        norm_mean: Option<f32>,
        norm_std: Option<f32>,
        threads: Option<usize>,
        batch_size: usize,
    ) -> PyResult<Self> {
        let weights = match weights {
            "student" => Weights::Student,
            "teacher" => Weights::Teacher,
            other => {
                return Err(PyValueError::new_err(format!(
                    "weights must be 'student' or 'teacher', got {other:?}"
                )))
            }
        };
        let norm = normalisation(norm_mean, norm_std)?;
        if threads == Some(0) || batch_size == 0 {
            return Err(PyValueError::new_err(
                "threads and batch_size must be at least 1",
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.unwrap_or(0))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("thread pool: {e}")))?;
        let options = EmbedOptions {
            frames: true,
            batch_size,
            ..EmbedOptions::default()
        };
        let embedder = py
            .detach(|| {
                pool.install(|| {
                    let model =
                        PretrainedEncoder::load(model, weights)?.with_frontend_choice(frontend)?;
                    Embedder::new(model, norm, options)
                })
            })
            .map_err(|e| model_error(model, &e))?;
        Ok(Self { embedder, pool })
    }

    /// The sample rate the model takes, Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.embedder.model().config.frontend.sample_rate
    }

    /// The embedding size (for the pooled embedding and for each frame).
    #[getter]
    fn dim(&self) -> usize {
        self.embedder.model().config.d
    }

    /// Milliseconds between frames.
    #[getter]
    fn hop_ms(&self) -> f64 {
        self.embedder.frame_hop_ms()
    }

    /// The fewest samples a clip may have.
    #[getter]
    fn min_samples(&self) -> usize {
        self.embedder.min_clip_samples()
    }

    /// Where the model came from.
    #[getter]
    fn source(&self) -> String {
        self.embedder.model().config.source.clone()
    }

    /// Pooled embeddings, float32 `[n, dim]`, of `audio` (float32 `[n, samples]` or
    /// `[samples]`, in [-1, 1]) at `sample_rate` Hz (the model's).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
        sample_rate: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let clips = self.clips(audio, sample_rate)?;
        let embedded = self.embed_clips(py, &clips)?;
        let flat: Vec<f32> = embedded.iter().flat_map(|c| c.embedding.clone()).collect();
        Ok(PyArray1::from_vec(py, flat)
            .reshape([embedded.len(), self.dim()])?
            .into_any())
    }

    /// Frame embeddings, float32 `[n, frames, dim]`, and their times in milliseconds from
    /// the clip's start, float64 `[n, frames]`: a regular hop, none past the clip's end.
    fn frames<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
        sample_rate: u32,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let clips = self.clips(audio, sample_rate)?;
        let embedded = self.embed_clips(py, &clips)?;
        let n_frames = embedded[0].n_frames;
        let frames: Vec<f32> = embedded.iter().flat_map(|c| c.frames.clone()).collect();
        let times: Vec<f64> = embedded
            .iter()
            .flat_map(|c| c.timestamps_ms.clone())
            .collect();
        Ok((
            PyArray1::from_vec(py, frames)
                .reshape([embedded.len(), n_frames, self.dim()])?
                .into_any(),
            PyArray1::from_vec(py, times)
                .reshape([embedded.len(), n_frames])?
                .into_any(),
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder(source={:?}, dim={}, sample_rate={})",
            self.source(),
            self.dim(),
            self.sample_rate()
        )
    }
}

impl Encoder {
    /// The clips of `audio`, checked: a float32 array of one or two dimensions, at the
    /// model's rate, not empty (the library checks their length and that every sample is
    /// finite).
    fn clips(&self, audio: &Bound<'_, PyAny>, sample_rate: u32) -> PyResult<Vec<Vec<f32>>> {
        let rate = self.sample_rate();
        if sample_rate != rate {
            return Err(PyValueError::new_err(format!(
                "the audio is at {sample_rate} Hz, but this model takes {rate} Hz: resample it first"
            )));
        }
        let array = audio.cast::<PyArrayDyn<f32>>().map_err(|_| {
            let what = audio
                .getattr("dtype")
                .map(|dtype| format!("an array of {dtype}"))
                .unwrap_or_else(|_| format!("{}", audio.get_type()));
            PyTypeError::new_err(format!(
                "audio must be a float32 numpy array of shape [n, samples], got {what}"
            ))
        })?;
        let shape = array.shape().to_vec();
        let view = array.readonly();
        let view = view.as_array();
        let clips: Vec<Vec<f32>> = match shape.len() {
            1 => vec![view.iter().copied().collect()],
            2 => view
                .outer_iter()
                .map(|row| row.iter().copied().collect())
                .collect(),
            n => {
                return Err(PyValueError::new_err(format!(
                    "audio must have shape [n, samples] or [samples], got {n} dimensions {shape:?}"
                )))
            }
        };
        if clips.is_empty() || clips[0].is_empty() {
            return Err(PyValueError::new_err(format!(
                "audio is empty (shape {shape:?})"
            )));
        }
        Ok(clips)
    }

    /// Embeds `clips` whole, without the GIL, on this encoder's threads.
    fn embed_clips(&self, py: Python<'_>, clips: &[Vec<f32>]) -> PyResult<Vec<ClipEmbedding>> {
        py.detach(|| self.pool.install(|| self.embedder.embed_clips(clips)))
            .map_err(|e| PyValueError::new_err(chain(&e)))
    }
}

/// The normalisation statistics given with the model, both or neither.
fn normalisation(mean: Option<f32>, std: Option<f32>) -> PyResult<Option<NormStats>> {
    match (mean, std) {
        (None, None) => Ok(None),
        (Some(mean), Some(std)) => NormStats::given(mean, std)
            .map(Some)
            .map_err(|e| PyValueError::new_err(e.to_string())),
        _ => Err(PyValueError::new_err(
            "give norm_mean and norm_std together",
        )),
    }
}

/// A model that could not be loaded: `FileNotFoundError` when its path does not exist.
fn model_error(model: &str, e: &Error) -> PyErr {
    let message = format!("model {model:?}: {}", chain(e));
    match e {
        Error::Dataset { path, .. } if !path.exists() => PyFileNotFoundError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// An error with its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Encoder>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
