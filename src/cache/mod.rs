//! The evaluation caches. The feature cache keeps the log-mel spectrograms of every clip of a
//! task split in chunked files on disk, under a key that hashes everything they depend on
//! (front end, task source fingerprint, split, window, storage precision); evaluation reads
//! them a batch at a time, so its memory does not grow with the split. The embedding cache
//! keeps frozen-encoder embeddings, keyed by the encoder's weights, so re-running a probe
//! does no audio or network work.

mod embeddings;
mod features;

pub use embeddings::{EmbeddingCache, Embeddings};
pub use features::{
    CachedClip, FeatureCache, FeaturePrecision, FeatureWriter, SplitFeatures, SplitHeader,
    StoredSpectrograms,
};

/// Bumped whenever the stored layout or the feature computation changes.
const FORMAT_VERSION: u32 = 3;

/// Reads a cache entry with `read`; `None` if absent. A corrupt entry is reported and
/// treated as absent.
fn load_entry<T>(
    path: &std::path::Path,
    read: impl FnOnce(&std::path::Path) -> std::result::Result<T, String>,
) -> Option<T> {
    if !path.exists() {
        return None;
    }
    match read(path) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!("ignoring corrupt cache entry {}: {e}", path.display());
            None
        }
    }
}
