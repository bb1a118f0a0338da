//! The feature cache: the log-mel spectrograms of every clip of a task split, stored as
//! safetensors under a key that hashes everything they depend on (front end, task source
//! fingerprint, split, window). A second run reads them instead of decoding audio again.
//! The embedding cache does the same for frozen-encoder embeddings, keyed by the encoder's
//! weights, so re-running a probe does no audio or network work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use crate::data::{Split, Task};
use crate::error::{Error, Result};
use crate::features::{FrontendConfig, LogMelSpectrogram};

/// Bumped whenever the stored layout or the feature computation changes.
const FORMAT_VERSION: u32 = 2;

/// The log-mels and labels of one task split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitFeatures {
    /// Task name.
    pub task: String,
    /// Split.
    pub split: Split,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Clip identifiers (paths or synthetic coordinates).
    pub ids: Vec<String>,
    /// Class index per clip.
    pub labels: Vec<usize>,
    /// One spectrogram per clip, all the same shape.
    pub spectrograms: Vec<LogMelSpectrogram>,
    /// Per clip, the frames `[first, end)` computed from its audio rather than from the
    /// window's zero padding (the whole range for clips at least a window long).
    pub real_frames: Vec<(usize, usize)>,
    /// Clips that were unreadable and skipped (`skip_bad_files: true`).
    pub skipped: usize,
}

#[derive(Serialize)]
struct KeyParts<'a> {
    version: u32,
    frontend: &'a FrontendConfig,
    task: &'a str,
    fingerprint: &'a str,
    split: Split,
    window_seconds: f64,
    skip_bad_files: bool,
}

/// A folder of cached [`SplitFeatures`].
#[derive(Debug, Clone)]
pub struct FeatureCache {
    root: PathBuf,
}

impl FeatureCache {
    /// A cache in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache file for a task split under `frontend`.
    pub fn path(
        &self,
        frontend: &FrontendConfig,
        task: &Task,
        split: Split,
        skip_bad_files: bool,
    ) -> PathBuf {
        let parts = KeyParts {
            version: FORMAT_VERSION,
            frontend,
            task: &task.name,
            fingerprint: &task.fingerprint,
            split,
            window_seconds: task.window_seconds,
            skip_bad_files,
        };
        let key = blake3::hash(&serde_json::to_vec(&parts).expect("serialisable")).to_hex();
        self.root
            .join(format!("{}-{split}-{}.safetensors", task.name, &key[..16]))
    }

    /// Reads a cache entry; `None` if absent. A corrupt entry is reported and treated as absent.
    pub fn load(&self, path: &Path) -> Option<SplitFeatures> {
        load_entry(path, decode)
    }

    /// Writes a cache entry atomically.
    pub fn store(&self, path: &Path, features: &SplitFeatures) -> Result<()> {
        crate::atomic::write(path, &encode(features)?)
    }
}

/// A stored tensor set: one f32 array of any shape, the labels, and string metadata.
struct Stored {
    shape: Vec<usize>,
    values: Vec<f32>,
    labels: Vec<usize>,
    meta: HashMap<String, String>,
}

impl Stored {
    fn encode(&self, values_name: &str) -> Result<Vec<u8>> {
        let values: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = self
            .labels
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        let bad = |e: safetensors::SafeTensorError| Error::Invalid(format!("cache encoding: {e}"));
        let tensors = vec![
            (
                "labels",
                TensorView::new(Dtype::I64, vec![self.labels.len()], &labels).map_err(bad)?,
            ),
            (
                values_name,
                TensorView::new(Dtype::F32, self.shape.clone(), &values).map_err(bad)?,
            ),
        ];
        safetensors::tensor::serialize(tensors, Some(self.meta.clone())).map_err(bad)
    }

    fn decode(bytes: &[u8], values_name: &str) -> std::result::Result<Self, String> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let meta = header.metadata().clone().ok_or("no metadata")?;
        let values = st.tensor(values_name).map_err(|e| e.to_string())?;
        let labels = st.tensor("labels").map_err(|e| e.to_string())?;
        let shape = values.shape().to_vec();
        let values: Vec<f32> = values
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let labels: Vec<usize> = labels
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .collect();
        if shape.first() != Some(&labels.len()) {
            return Err(format!("{values_name} and labels disagree in count"));
        }
        Ok(Self {
            shape,
            values,
            labels,
            meta,
        })
    }

    fn meta(&self, key: &str) -> std::result::Result<&str, String> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or(format!("metadata has no `{key}`"))
    }
}

/// Reads a cache entry; `None` if absent. A corrupt entry is reported and treated as absent.
fn load_entry<T>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match decode(&bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!("ignoring corrupt cache entry {}: {e}", path.display());
            None
        }
    }
}

fn encode(f: &SplitFeatures) -> Result<Vec<u8>> {
    let (n_mels, n_frames) = f
        .spectrograms
        .first()
        .map_or((0, 0), |s| (s.n_mels, s.n_frames));
    Stored {
        shape: vec![f.spectrograms.len(), n_mels, n_frames],
        values: f
            .spectrograms
            .iter()
            .flat_map(|s| s.data.iter().copied())
            .collect(),
        labels: f.labels.clone(),
        meta: HashMap::from([
            ("task".to_owned(), f.task.clone()),
            ("split".to_owned(), f.split.to_string()),
            (
                "classes".to_owned(),
                serde_json::to_string(&f.classes).expect("strings"),
            ),
            (
                "ids".to_owned(),
                serde_json::to_string(&f.ids).expect("strings"),
            ),
            ("skipped".to_owned(), f.skipped.to_string()),
            (
                "real_frames".to_owned(),
                serde_json::to_string(&f.real_frames).expect("pairs"),
            ),
        ]),
    }
    .encode("logmel")
}

fn decode(bytes: &[u8]) -> std::result::Result<SplitFeatures, String> {
    let stored = Stored::decode(bytes, "logmel")?;
    let &[n, n_mels, n_frames] = stored.shape.as_slice() else {
        return Err("logmel is not 3-D".into());
    };
    let ids: Vec<String> = serde_json::from_str(stored.meta("ids")?).map_err(|e| e.to_string())?;
    let real_frames: Vec<(usize, usize)> =
        serde_json::from_str(stored.meta("real_frames")?).map_err(|e| e.to_string())?;
    if ids.len() != n || real_frames.len() != n {
        return Err("ids, real frames and spectrograms disagree in count".into());
    }
    let step = n_mels * n_frames;
    Ok(SplitFeatures {
        task: stored.meta("task")?.to_owned(),
        split: Split::parse(stored.meta("split")?).ok_or("bad split")?,
        classes: serde_json::from_str(stored.meta("classes")?).map_err(|e| e.to_string())?,
        ids,
        spectrograms: (0..n)
            .map(|i| LogMelSpectrogram {
                n_mels,
                n_frames,
                data: stored.values[i * step..(i + 1) * step].to_vec(),
            })
            .collect(),
        real_frames,
        skipped: stored
            .meta("skipped")?
            .parse()
            .map_err(|_| "bad skipped count")?,
        labels: stored.labels,
    })
}

/// Pooled embeddings of one task split: `n x dim`, row-major, with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Embedding size.
    pub dim: usize,
    /// `n * dim` values.
    pub values: Vec<f32>,
    /// Class index per row.
    pub labels: Vec<usize>,
}

/// A folder of cached [`Embeddings`], keyed by everything they depend on: the encoder's
/// weights, the feature-cache entry they were computed from, the input normalisation and
/// the pooling.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    root: PathBuf,
}

impl EmbeddingCache {
    /// A cache in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache file for `features_path` (a [`FeatureCache::path`]) embedded by the encoder
    /// whose weights hash to `encoder_hash`; `settings` is any serialisable description of
    /// the rest (normalisation, pooling).
    pub fn path(
        &self,
        encoder_hash: &str,
        features_path: &Path,
        settings: &impl Serialize,
    ) -> PathBuf {
        let key = serde_json::json!({
            "version": FORMAT_VERSION,
            "encoder": encoder_hash,
            "features": features_path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "settings": settings,
        });
        let key = blake3::hash(key.to_string().as_bytes()).to_hex();
        let stem = features_path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        self.root.join(format!("{stem}-{}.safetensors", &key[..16]))
    }

    /// Reads a cache entry; `None` if absent. A corrupt entry is reported and treated as absent.
    pub fn load(&self, path: &Path) -> Option<Embeddings> {
        load_entry(path, |bytes| {
            let stored = Stored::decode(bytes, "embeddings")?;
            let &[_, dim] = stored.shape.as_slice() else {
                return Err("embeddings are not 2-D".into());
            };
            Ok(Embeddings {
                dim,
                values: stored.values,
                labels: stored.labels,
            })
        })
    }

    /// Writes a cache entry atomically.
    pub fn store(&self, path: &Path, embeddings: &Embeddings) -> Result<()> {
        let bytes = Stored {
            shape: vec![embeddings.labels.len(), embeddings.dim],
            values: embeddings.values.clone(),
            labels: embeddings.labels.clone(),
            meta: HashMap::new(),
        }
        .encode("embeddings")?;
        crate::atomic::write(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let f = SplitFeatures {
            task: "t".into(),
            split: Split::Valid,
            classes: vec!["a".into(), "b".into()],
            ids: vec!["x".into(), "y".into()],
            labels: vec![1, 0],
            spectrograms: vec![
                LogMelSpectrogram {
                    n_mels: 2,
                    n_frames: 1,
                    data: vec![1.0, 2.0],
                },
                LogMelSpectrogram {
                    n_mels: 2,
                    n_frames: 1,
                    data: vec![3.0, -4.0],
                },
            ],
            real_frames: vec![(0, 1), (0, 1)],
            skipped: 1,
        };
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        let path = dir.path().join("t.safetensors");
        cache.store(&path, &f).unwrap();
        assert_eq!(cache.load(&path), Some(f));
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(cache.load(&path), None);
    }

    #[test]
    fn embeddings_round_trip_and_keys_separate_encoders() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::new(dir.path());
        let features = Path::new("t-train-0123.safetensors");
        let a = cache.path("encoder-a", features, &"max_mean");
        assert_ne!(a, cache.path("encoder-b", features, &"max_mean"));
        assert_ne!(a, cache.path("encoder-a", features, &"mean"));
        let e = Embeddings {
            dim: 2,
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            labels: vec![0, 1, 1],
        };
        assert_eq!(cache.load(&a), None);
        cache.store(&a, &e).unwrap();
        assert_eq!(cache.load(&a), Some(e));
    }
}
