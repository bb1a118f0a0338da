//! The feature cache: the log-mel spectrograms of every clip of a task split, stored as
//! safetensors under a key that hashes everything they depend on (front end, task source
//! fingerprint, split, window). A second run reads them instead of decoding audio again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use crate::data::{Split, Task};
use crate::error::{Error, Result};
use crate::features::{FrontendConfig, LogMelSpectrogram};

/// Bumped whenever the stored layout or the feature computation changes.
const FORMAT_VERSION: u32 = 1;

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
        let bytes = std::fs::read(path).ok()?;
        match decode(&bytes) {
            Ok(features) => Some(features),
            Err(e) => {
                tracing::warn!("ignoring corrupt feature cache {}: {e}", path.display());
                None
            }
        }
    }

    /// Writes a cache entry atomically.
    pub fn store(&self, path: &Path, features: &SplitFeatures) -> Result<()> {
        crate::atomic::write(path, &encode(features)?)
    }
}

fn encode(f: &SplitFeatures) -> Result<Vec<u8>> {
    let (n_mels, n_frames) = f
        .spectrograms
        .first()
        .map_or((0, 0), |s| (s.n_mels, s.n_frames));
    let values: Vec<u8> = f
        .spectrograms
        .iter()
        .flat_map(|s| s.data.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let labels: Vec<u8> = f
        .labels
        .iter()
        .flat_map(|&l| (l as i64).to_le_bytes())
        .collect();
    let bad =
        |e: safetensors::SafeTensorError| Error::Invalid(format!("feature cache encoding: {e}"));
    let tensors = vec![
        (
            "labels",
            TensorView::new(Dtype::I64, vec![f.labels.len()], &labels).map_err(bad)?,
        ),
        (
            "logmel",
            TensorView::new(
                Dtype::F32,
                vec![f.spectrograms.len(), n_mels, n_frames],
                &values,
            )
            .map_err(bad)?,
        ),
    ];
    let meta = HashMap::from([
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
    ]);
    safetensors::tensor::serialize(tensors, Some(meta)).map_err(bad)
}

fn decode(bytes: &[u8]) -> std::result::Result<SplitFeatures, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let meta = header.metadata().clone().ok_or("no metadata")?;
    let get = |k: &str| meta.get(k).cloned().ok_or(format!("metadata has no `{k}`"));
    let logmel = st.tensor("logmel").map_err(|e| e.to_string())?;
    let labels = st.tensor("labels").map_err(|e| e.to_string())?;
    let &[n, n_mels, n_frames] = logmel.shape() else {
        return Err("logmel is not 3-D".into());
    };
    let values: Vec<f32> = logmel
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let labels: Vec<usize> = labels
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .collect();
    let ids: Vec<String> = serde_json::from_str(&get("ids")?).map_err(|e| e.to_string())?;
    if labels.len() != n || ids.len() != n {
        return Err("labels, ids and spectrograms disagree in count".into());
    }
    let step = n_mels * n_frames;
    Ok(SplitFeatures {
        task: get("task")?,
        split: Split::parse(&get("split")?).ok_or("bad split")?,
        classes: serde_json::from_str(&get("classes")?).map_err(|e| e.to_string())?,
        ids,
        labels,
        spectrograms: (0..n)
            .map(|i| LogMelSpectrogram {
                n_mels,
                n_frames,
                data: values[i * step..(i + 1) * step].to_vec(),
            })
            .collect(),
        skipped: get("skipped")?.parse().map_err(|_| "bad skipped count")?,
    })
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
}
