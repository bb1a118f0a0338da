//! The feature cache: the log-mel spectrograms of every clip of a task split, in a folder of
//! chunk files (`chunk-00000.safetensors`, ..., each one `logmel` tensor `[clips, n_mels,
//! n_frames]` of about 32 MiB) beside `index.json` (labels, clip ids, padded frames, shape,
//! precision, clips per chunk). The folder is written under a temporary name and renamed
//! into place, so a reader sees a whole entry or none. Reading takes any range of clips by
//! seeking into the chunk files: memory holds the batch being read, never the split.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::{load_entry, FORMAT_VERSION};
use crate::data::{Split, Task};
use crate::error::{Error, Result};
use crate::features::{FrontendConfig, LogMelSpectrogram, SpectrogramSet};

/// Bytes of log-mel values per chunk file, about.
const CHUNK_BYTES: usize = 32 << 20;

/// How the feature cache stores log-mel values (`eval.feature_precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeaturePrecision {
    /// 32-bit floats: the values exactly as computed.
    #[default]
    F32,
    /// 16-bit floats (IEEE half): half the disk, values rounded to 11 significant bits.
    F16,
}

impl FeaturePrecision {
    /// Whether this is the default, `f32`.
    pub fn is_f32(&self) -> bool {
        *self == FeaturePrecision::F32
    }

    fn bytes(self) -> usize {
        match self {
            FeaturePrecision::F32 => 4,
            FeaturePrecision::F16 => 2,
        }
    }

    fn dtype(self) -> Dtype {
        match self {
            FeaturePrecision::F32 => Dtype::F32,
            FeaturePrecision::F16 => Dtype::F16,
        }
    }

    fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        match self {
            FeaturePrecision::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            FeaturePrecision::F16 => out.extend(
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
            ),
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            FeaturePrecision::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            FeaturePrecision::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32())
                .collect(),
        }
    }
}

/// Which task split a cache entry holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitHeader {
    /// Task name.
    pub task: String,
    /// Split.
    pub split: Split,
    /// Class names in label order.
    pub classes: Vec<String>,
}

/// One clip's features, as the writer takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedClip {
    /// Clip identifier (path or synthetic coordinates).
    pub id: String,
    /// Class index.
    pub label: usize,
    /// The frames `[first, end)` computed from audio rather than the window's padding.
    pub real_frames: (usize, usize),
    /// The log-mel values, `n_mels * n_frames` of them.
    pub logmel: Vec<f32>,
}

/// The features of one task split: labels, ids and padding in memory, the log-mel values
/// on disk ([`StoredSpectrograms`], read a batch at a time).
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
    /// Per clip, the frames `[first, end)` computed from its audio rather than from the
    /// window's zero padding (the whole range for clips at least a window long).
    pub real_frames: Vec<(usize, usize)>,
    /// Clips that were unreadable and skipped (`skip_bad_files: true`).
    pub skipped: usize,
    /// One spectrogram per clip, all the same shape, on disk.
    pub spectrograms: StoredSpectrograms,
}

/// `index.json` of a cache entry.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    task: String,
    split: Split,
    classes: Vec<String>,
    ids: Vec<String>,
    labels: Vec<usize>,
    real_frames: Vec<(usize, usize)>,
    skipped: usize,
    n_mels: usize,
    n_frames: usize,
    precision: FeaturePrecision,
    /// Clips in each chunk file, in order.
    chunks: Vec<usize>,
}

fn chunk_name(k: usize) -> String {
    format!("chunk-{k:05}.safetensors")
}

/// The log-mel spectrograms of a cache entry, read from its chunk files on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpectrograms {
    n_mels: usize,
    n_frames: usize,
    precision: FeaturePrecision,
    chunks: Vec<Chunk>,
    len: usize,
}

/// One chunk file: clips `[first, first + clips)`, whose values start at byte `data_start`.
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    path: PathBuf,
    first: usize,
    clips: usize,
    data_start: u64,
}

/// The parts of a safetensors header a chunk file needs.
#[derive(Deserialize)]
struct TensorHeader {
    dtype: Dtype,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

impl StoredSpectrograms {
    /// Opens the chunk files `index` lists in `dir`, checking each one's header and size.
    fn open(dir: &Path, index: &Index) -> std::result::Result<Self, String> {
        let (n_mels, n_frames, precision) = (index.n_mels, index.n_frames, index.precision);
        let row_bytes = n_mels * n_frames * precision.bytes();
        let mut chunks = Vec::with_capacity(index.chunks.len());
        let mut first = 0;
        for (k, &clips) in index.chunks.iter().enumerate() {
            let path = dir.join(chunk_name(k));
            let mut file = std::fs::File::open(&path).map_err(|e| format!("{k}: {e}"))?;
            let mut len = [0u8; 8];
            file.read_exact(&mut len).map_err(|e| e.to_string())?;
            let header_len = u64::from_le_bytes(len);
            if header_len > 1 << 20 {
                return Err(format!("{}: header too large", path.display()));
            }
            let mut header = vec![0u8; header_len as usize];
            file.read_exact(&mut header).map_err(|e| e.to_string())?;
            let mut tensors: std::collections::HashMap<String, serde_json::Value> =
                serde_json::from_slice(&header).map_err(|e| e.to_string())?;
            let tensor: TensorHeader = tensors
                .remove("logmel")
                .ok_or("no `logmel` tensor")
                .and_then(|v| serde_json::from_value(v).map_err(|_| "bad `logmel` header"))?;
            let data_start = 8 + header_len;
            let expected = (precision.dtype(), vec![clips, n_mels, n_frames]);
            let size = file.metadata().map_err(|e| e.to_string())?.len();
            if (tensor.dtype, tensor.shape) != expected
                || tensor.data_offsets != (0, clips * row_bytes)
                || size != data_start + (clips * row_bytes) as u64
            {
                return Err(format!(
                    "{} does not hold {clips} {n_mels}x{n_frames} {precision:?} spectrograms",
                    path.display()
                ));
            }
            chunks.push(Chunk {
                path,
                first,
                clips,
                data_start,
            });
            first += clips;
        }
        Ok(Self {
            n_mels,
            n_frames,
            precision,
            chunks,
            len: first,
        })
    }

    /// `(n_mels, n_frames)` of every spectrogram.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_mels, self.n_frames)
    }

    /// How the values are stored.
    pub fn precision(&self) -> FeaturePrecision {
        self.precision
    }

    fn row_bytes(&self) -> usize {
        self.n_mels * self.n_frames * self.precision.bytes()
    }

    /// Reads clips `[lo, hi)` of `chunk` (all inside it).
    fn read_chunk(&self, chunk: &Chunk, lo: usize, hi: usize) -> Result<Vec<LogMelSpectrogram>> {
        let io = |e| Error::io(&chunk.path, e);
        let mut file = std::fs::File::open(&chunk.path).map_err(io)?;
        let offset = chunk.data_start + ((lo - chunk.first) * self.row_bytes()) as u64;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = vec![0u8; (hi - lo) * self.row_bytes()];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(bytes
            .chunks_exact(self.row_bytes())
            .map(|row| LogMelSpectrogram {
                n_mels: self.n_mels,
                n_frames: self.n_frames,
                data: self.precision.decode(row),
            })
            .collect())
    }
}

impl SpectrogramSet for StoredSpectrograms {
    fn len(&self) -> usize {
        self.len
    }

    fn read_range(&self, range: Range<usize>) -> Result<Vec<LogMelSpectrogram>> {
        if range.end > self.len {
            return Err(Error::Invalid(format!(
                "feature cache: clips {range:?} asked of {} stored",
                self.len
            )));
        }
        let mut out = Vec::with_capacity(range.len());
        let start = self
            .chunks
            .partition_point(|c| c.first + c.clips <= range.start);
        for chunk in self.chunks[start..]
            .iter()
            .take_while(|c| c.first < range.end)
        {
            let lo = range.start.max(chunk.first);
            let hi = range.end.min(chunk.first + chunk.clips);
            if lo < hi {
                out.extend(self.read_chunk(chunk, lo, hi)?);
            }
        }
        Ok(out)
    }
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
    precision: FeaturePrecision,
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

    /// The cache entry (a folder) for a task split under `frontend`.
    pub fn path(
        &self,
        frontend: &FrontendConfig,
        task: &Task,
        split: Split,
        skip_bad_files: bool,
        precision: FeaturePrecision,
    ) -> PathBuf {
        let parts = KeyParts {
            version: FORMAT_VERSION,
            frontend,
            task: &task.name,
            fingerprint: &task.fingerprint,
            split,
            window_seconds: task.window_seconds,
            skip_bad_files,
            precision,
        };
        let key = blake3::hash(&serde_json::to_vec(&parts).expect("serialisable")).to_hex();
        self.root
            .join(format!("{}-{split}-{}", task.name, &key[..16]))
    }

    /// Opens a cache entry; `None` if absent. A corrupt entry is reported and treated as absent.
    pub fn load(&self, path: &Path) -> Option<SplitFeatures> {
        load_entry(path, open_entry)
    }

    /// A writer for the entry `path` of split `header`, whose spectrograms are
    /// `(n_mels, n_frames)` and stored with `precision`.
    pub fn writer(
        &self,
        path: &Path,
        header: SplitHeader,
        (n_mels, n_frames): (usize, usize),
        precision: FeaturePrecision,
    ) -> Result<FeatureWriter> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.root)
            .map_err(|e| Error::io(&self.root, e))?;
        Ok(FeatureWriter {
            target: path.to_owned(),
            tmp,
            index: Index {
                version: FORMAT_VERSION,
                task: header.task,
                split: header.split,
                classes: header.classes,
                ids: Vec::new(),
                labels: Vec::new(),
                real_frames: Vec::new(),
                skipped: 0,
                n_mels,
                n_frames,
                precision,
                chunks: Vec::new(),
            },
        })
    }
}

fn open_entry(dir: &Path) -> std::result::Result<SplitFeatures, String> {
    let text = std::fs::read(dir.join("index.json")).map_err(|e| format!("index.json: {e}"))?;
    let index: Index = serde_json::from_slice(&text).map_err(|e| format!("index.json: {e}"))?;
    if index.version != FORMAT_VERSION {
        return Err(format!(
            "format {} (expected {FORMAT_VERSION})",
            index.version
        ));
    }
    let n = index.labels.len();
    if index.ids.len() != n || index.real_frames.len() != n {
        return Err("ids, labels and real frames disagree in count".into());
    }
    let spectrograms = StoredSpectrograms::open(dir, &index)?;
    if spectrograms.len() != n {
        return Err(format!(
            "{} labels but {} spectrograms",
            n,
            spectrograms.len()
        ));
    }
    Ok(SplitFeatures {
        task: index.task,
        split: index.split,
        classes: index.classes,
        ids: index.ids,
        labels: index.labels,
        real_frames: index.real_frames,
        skipped: index.skipped,
        spectrograms,
    })
}

/// Writes one cache entry chunk by chunk into a temporary folder beside it, and moves it
/// into place on [`FeatureWriter::finish`]; dropped unfinished, it leaves nothing behind.
#[derive(Debug)]
pub struct FeatureWriter {
    target: PathBuf,
    tmp: tempfile::TempDir,
    index: Index,
}

impl FeatureWriter {
    /// How many clips to pass to each [`FeatureWriter::write_chunk`]: about 32 MiB of values.
    pub fn chunk_clips(&self) -> usize {
        let row = self.index.n_mels * self.index.n_frames * self.index.precision.bytes();
        (CHUNK_BYTES / row.max(1)).max(1)
    }

    /// Writes `clips` as the next chunk file.
    pub fn write_chunk(&mut self, clips: Vec<CachedClip>) -> Result<()> {
        if clips.is_empty() {
            return Ok(());
        }
        let index = &mut self.index;
        let (n_mels, n_frames) = (index.n_mels, index.n_frames);
        let path = self.tmp.path().join(chunk_name(index.chunks.len()));
        let mut bytes = Vec::with_capacity(clips.len() * n_mels * n_frames * 4);
        for clip in &clips {
            if clip.logmel.len() != n_mels * n_frames {
                return Err(Error::Invalid(format!(
                    "feature cache: clip {} has {} values, not {n_mels}x{n_frames}",
                    clip.id,
                    clip.logmel.len()
                )));
            }
            index.precision.encode(&clip.logmel, &mut bytes);
        }
        let view = TensorView::new(
            index.precision.dtype(),
            vec![clips.len(), n_mels, n_frames],
            &bytes,
        )
        .map_err(Error::external(format!("{}: encoding", path.display())))?;
        safetensors::tensor::serialize_to_file([("logmel", view)], None, &path)
            .map_err(Error::external(format!("{}: writing", path.display())))?;
        index.chunks.push(clips.len());
        for clip in clips {
            index.ids.push(clip.id);
            index.labels.push(clip.label);
            index.real_frames.push(clip.real_frames);
        }
        Ok(())
    }

    /// How many clips have been written.
    pub fn clips(&self) -> usize {
        self.index.labels.len()
    }

    /// Records `count` more unreadable clips that were skipped.
    pub fn skipped(&mut self, count: usize) {
        self.index.skipped += count;
    }

    /// Writes the index and moves the entry into place (replacing a corrupt one), then
    /// opens it.
    pub fn finish(self) -> Result<SplitFeatures> {
        let index_path = self.tmp.path().join("index.json");
        let json = serde_json::to_vec(&self.index).map_err(|e| Error::Json {
            path: index_path.clone(),
            what: "a feature-cache index".into(),
            source: e,
        })?;
        std::fs::write(&index_path, json).map_err(|e| Error::io(&index_path, e))?;
        let staged = self.tmp.keep();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&staged, e))?;
        }
        let target = &self.target;
        if target.exists() {
            std::fs::remove_dir_all(target).map_err(|e| Error::io(target, e))?;
        }
        if let Err(e) = std::fs::rename(&staged, target) {
            // Best effort: the staged copy is of no use once the rename failed.
            let _ = std::fs::remove_dir_all(&staged);
            return Err(Error::io(target, e));
        }
        open_entry(target).map_err(|message| Error::Dataset {
            path: target.clone(),
            message: format!("the feature-cache entry just written does not read back: {message}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::batches;

    fn clip(i: usize, n_mels: usize, n_frames: usize) -> CachedClip {
        CachedClip {
            id: format!("clip{i}"),
            label: i % 3,
            real_frames: (0, n_frames - i % 2),
            logmel: (0..n_mels * n_frames)
                .map(|k| (i * 1000 + k) as f32 * 0.37 - 11.0)
                .collect(),
        }
    }

    fn write(
        cache: &FeatureCache,
        path: &Path,
        precision: FeaturePrecision,
        chunks: &[usize],
    ) -> SplitFeatures {
        let header = SplitHeader {
            task: "t".into(),
            split: Split::Valid,
            classes: vec!["a".into(), "b".into(), "c".into()],
        };
        let mut writer = cache.writer(path, header, (3, 5), precision).unwrap();
        let mut next = 0;
        for &n in chunks {
            writer
                .write_chunk((next..next + n).map(|i| clip(i, 3, 5)).collect())
                .unwrap();
            next += n;
        }
        writer.skipped(2);
        writer.finish().unwrap()
    }

    #[test]
    fn chunked_entries_read_back_in_any_range_and_corruption_is_absence() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        let path = dir.path().join("t-valid-0123");
        let written = write(&cache, &path, FeaturePrecision::F32, &[4, 1, 3]);
        assert_eq!(cache.load(&path), Some(written.clone()));
        assert_eq!(written.skipped, 2);
        assert_eq!(written.labels, [0, 1, 2, 0, 1, 2, 0, 1]);
        assert_eq!(written.ids[7], "clip7");
        let set = &written.spectrograms;
        assert_eq!((set.len(), set.shape()), (8, (3, 5)));
        // Every range, across chunk boundaries, equals the clips written.
        for start in 0..8 {
            for end in start..=8 {
                let got = set.read_range(start..end).unwrap();
                let want: Vec<Vec<f32>> = (start..end).map(|i| clip(i, 3, 5).logmel).collect();
                let got: Vec<Vec<f32>> = got.into_iter().map(|s| s.data).collect();
                assert_eq!(got, want, "{start}..{end}");
            }
        }
        assert_eq!(batches(set, 3).count(), 3);
        assert_eq!(set.read(&[6, 2]).unwrap()[0].data, clip(6, 3, 5).logmel);
        assert!(set.read_range(7..9).is_err());
        // Nothing is left beside the entry.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // A truncated chunk makes the entry absent; writing it again replaces it.
        let chunk = path.join(chunk_name(1));
        let bytes = std::fs::read(&chunk).unwrap();
        std::fs::write(&chunk, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(cache.load(&path), None);
        std::fs::write(path.join("index.json"), b"{").unwrap();
        assert_eq!(cache.load(&path), None);
        let again = write(&cache, &path, FeaturePrecision::F32, &[8]);
        assert_eq!(cache.load(&path), Some(again));
    }

    #[test]
    fn half_precision_halves_the_values_and_rounds_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path());
        let (full, half) = (dir.path().join("full"), dir.path().join("half"));
        let f32s = write(&cache, &full, FeaturePrecision::F32, &[5]);
        let f16s = write(&cache, &half, FeaturePrecision::F16, &[5]);
        let size = |p: &Path| std::fs::metadata(p.join(chunk_name(0))).unwrap().len();
        assert!(
            size(&half) * 2 < size(&full) + 200,
            "{} vs {}",
            size(&half),
            size(&full)
        );
        let a = f32s.spectrograms.read_range(0..5).unwrap();
        let b = f16s.spectrograms.read_range(0..5).unwrap();
        for (x, y) in a.iter().zip(&b) {
            for (u, v) in x.data.iter().zip(&y.data) {
                assert!((u - v).abs() <= u.abs() / 1024.0, "{u} vs {v}");
            }
        }
        assert_ne!(a, b, "f16 rounds");
        assert_eq!(f16s.spectrograms.precision(), FeaturePrecision::F16);
    }

    #[test]
    fn keys_separate_precisions() {
        let cache = FeatureCache::new("root");
        let task = Task {
            name: "t".into(),
            classes: vec!["a".into()],
            clips: Vec::new(),
            window_seconds: 1.0,
            fingerprint: "f".into(),
        };
        let frontend = FrontendConfig::default();
        let key = |p| cache.path(&frontend, &task, Split::Train, false, p);
        assert_ne!(key(FeaturePrecision::F32), key(FeaturePrecision::F16));
    }
}
