//! Training checkpoints: `checkpoints/step-NNNNNNNN/` holding one safetensors file per part of
//! the learner (`student.safetensors` always, with the encoder under `encoder.`; `teacher`,
//! `queue` where the method has them) and `optimizer.safetensors`, the metrics so far
//! (`metrics.parquet`), and `state.json` (step, epoch, position, spec hash). A checkpoint is written into a temporary folder and renamed into place, so a
//! killed process leaves either a complete checkpoint or none; the newest `keep_last` are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where training stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Epoch of the next step.
    pub epoch: usize,
    /// Step within that epoch of the next step.
    pub step_in_epoch: usize,
    /// Hash of the resolved spec that produced the run.
    pub spec_hash: String,
    /// Master seed.
    pub seed: u64,
}

/// The tensors of a checkpoint: file stem -> tensor name -> tensor.
#[derive(Debug, Default)]
pub struct CheckpointTensors {
    /// The checkpoint folder (for messages).
    pub dir: PathBuf,
    /// Every `*.safetensors` file of the folder, by stem.
    pub files: HashMap<String, HashMap<String, Tensor>>,
}

impl CheckpointTensors {
    /// The tensors of `<stem>.safetensors`; an error naming the folder when it is absent.
    pub fn file(&self, stem: &str) -> Result<&HashMap<String, Tensor>> {
        self.files.get(stem).ok_or_else(|| {
            let mut have: Vec<&str> = self.files.keys().map(String::as_str).collect();
            have.sort();
            Error::Invalid(format!(
                "{}: no {stem}.safetensors (this checkpoint has {}); a method without a teacher or queue has none: evaluate its student",
                self.dir.display(),
                have.join(", ")
            ))
        })
    }
}

/// Named tensors for one checkpoint file.
pub type NamedTensors = Vec<(String, Tensor)>;

/// A hex blake3 digest of checkpoint files (stems, tensor names, shapes and values as f32,
/// in order): equal digests mean the same training state. Multi-rank jobs compare it across
/// ranks (see [`crate::distributed::ensure_in_sync`]).
pub fn digest(files: &[(&str, NamedTensors)]) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for (stem, tensors) in files {
        hasher.update(stem.as_bytes());
        for (name, t) in tensors {
            hasher.update(name.as_bytes());
            for d in t.dims() {
                hasher.update(&(*d as u64).to_le_bytes());
            }
            let values: Vec<f32> = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(Error::tensor(format!("checkpoint digest of `{name}`")))?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            hasher.update(&bytes);
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// How many checkpoints [`save`] keeps: the newest `last`, and those of the `steps` listed.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    /// The newest checkpoints kept.
    pub last: usize,
    /// Steps whose checkpoints are always kept.
    pub steps: &'a [u64],
}

/// The folder of the checkpoint at `step` under `root`.
pub fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

/// The step of the checkpoint folder `dir` (`step-NNNNNNNN`), from its name.
pub fn step_of(dir: &Path) -> Result<u64> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("step-"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not a checkpoint folder (step-NNNNNNNN)",
                dir.display()
            ))
        })
}

/// Writes a checkpoint under `root` (one safetensors file per `(stem, tensors)`) and prunes
/// the others but those `keep` names.
pub fn save(
    root: &Path,
    state: &TrainState,
    files: Vec<(&str, NamedTensors)>,
    metrics: &[crate::results::MetricRow],
    keep: Keep<'_>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let final_dir = step_dir(root, state.step);
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-step-")
        .tempdir_in(root)
        .map_err(|e| Error::io(root, e))?;
    for (name, entries) in files {
        let path = tmp.path().join(format!("{name}.safetensors"));
        let map: HashMap<String, Tensor> = entries.into_iter().collect();
        candle_core::safetensors::save(&map, &path)
            .map_err(Error::tensor("writing tensors"))
            .map_err(Error::checkpoint(&path))?;
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&path, e))?;
    }
    crate::results::write_metrics(&tmp.path().join("metrics.parquet"), metrics)?;
    let text = serde_json::to_string_pretty(state).expect("serialisable");
    crate::atomic::write(&tmp.path().join("state.json"), text.as_bytes())?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    let kept: Vec<PathBuf> = keep.steps.iter().map(|&s| step_dir(root, s)).collect();
    let all = list(root)?;
    for old in all
        .iter()
        .take(all.len().saturating_sub(keep.last))
        .filter(|d| !kept.contains(d))
    {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(final_dir)
}

/// Complete checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").is_file()
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Reads the checkpoint in `dir`.
pub fn load(dir: &Path, device: &Device) -> Result<(TrainState, CheckpointTensors)> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: state_path.clone(),
        what: "a checkpoint's state".into(),
        source,
    })?;
    let mut tensors = CheckpointTensors {
        dir: dir.to_owned(),
        files: HashMap::new(),
    };
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let map = candle_core::safetensors::load(&path, device)
                .map_err(Error::tensor("reading tensors"))
                .map_err(Error::checkpoint(&path))?;
            tensors.files.insert(stem, map);
        }
    }
    tensors.file("student")?;
    Ok((state, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_steps_outlive_keep_last() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap();
        for step in 1..=6 {
            let state = TrainState {
                step,
                epoch: 0,
                step_in_epoch: 0,
                spec_hash: "h".into(),
                seed: 0,
            };
            let files = vec![("student", vec![("w".to_owned(), t.clone())])];
            let keep = Keep {
                last: 2,
                steps: &[2, 6],
            };
            save(dir.path(), &state, files, &[], keep).unwrap();
        }
        let steps: Vec<u64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|d| step_of(d).unwrap())
            .collect();
        // The newest two, and step 2; step 6 is both.
        assert_eq!(steps, [2, 5, 6]);
        assert!(step_of(Path::new("checkpoints/latest")).is_err());
    }
}
