//! The embedding cache: pooled frozen-encoder embeddings of a task split as one safetensors
//! file (`embeddings` `[n, dim]` f32 and `labels` `[n]` i64), keyed by the encoder's weights,
//! the feature-cache entry and the embedding settings.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use super::{load_entry, FORMAT_VERSION};
use crate::error::{Error, Result};

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

    /// The cache file for `features_path` (a [`super::FeatureCache::path`]) embedded by the
    /// encoder whose weights hash to `encoder_hash`; `settings` is any serialisable
    /// description of the rest (normalisation, pooling).
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
        load_entry(path, |path| {
            let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
            decode(&bytes)
        })
    }

    /// Writes a cache entry atomically.
    pub fn store(&self, path: &Path, embeddings: &Embeddings) -> Result<()> {
        crate::atomic::write(path, &encode(embeddings)?)
    }
}

fn encode(e: &Embeddings) -> Result<Vec<u8>> {
    let values: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = e
        .labels
        .iter()
        .flat_map(|&l| (l as i64).to_le_bytes())
        .collect();
    let bad = Error::external("encoding an embedding-cache entry");
    let tensors = vec![
        (
            "labels",
            TensorView::new(Dtype::I64, vec![e.labels.len()], &labels),
        ),
        (
            "embeddings",
            TensorView::new(Dtype::F32, vec![e.labels.len(), e.dim], &values),
        ),
    ];
    let tensors: Vec<_> = tensors
        .into_iter()
        .map(|(name, view)| view.map(|v| (name, v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    safetensors::tensor::serialize(tensors, None)
        .map_err(Error::external("encoding an embedding-cache entry"))
}

fn decode(bytes: &[u8]) -> std::result::Result<Embeddings, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let values = st.tensor("embeddings").map_err(|e| e.to_string())?;
    let labels = st.tensor("labels").map_err(|e| e.to_string())?;
    let &[n, dim] = values.shape() else {
        return Err("embeddings are not 2-D".into());
    };
    if values.dtype() != Dtype::F32 || labels.dtype() != Dtype::I64 {
        return Err("embeddings are not f32 or labels not i64".into());
    }
    let labels: Vec<usize> = labels
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .collect();
    if labels.len() != n {
        return Err("embeddings and labels disagree in count".into());
    }
    Ok(Embeddings {
        dim,
        values: values
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_round_trip_and_keys_separate_encoders() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::new(dir.path());
        let features = Path::new("t-train-0123");
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
        std::fs::write(&a, b"garbage").unwrap();
        assert_eq!(cache.load(&a), None);
    }
}
