//! The unlabeled pre-training corpus as a list of clip sources.

use std::path::{Path, PathBuf};

use super::clip::ClipAudio;
use super::config::PretrainSource;
use super::manifest::read_path_column;
use crate::error::{Error, Result};

/// Every clip of the pre-training corpus; synthetic clips use master `seed`.
pub fn pretrain_clips(source: &PretrainSource, seed: u64) -> Result<Vec<ClipAudio>> {
    match source {
        PretrainSource::Synthetic {
            clips,
            min_seconds,
            max_seconds,
        } => Ok((0..*clips as u64)
            .map(|index| ClipAudio::SyntheticPretrain {
                seed,
                index,
                seconds: (*min_seconds, *max_seconds),
            })
            .collect()),
        PretrainSource::Folder { path } => {
            let files = audio_files(path)?;
            if files.is_empty() {
                return Err(Error::Dataset {
                    path: path.clone(),
                    message: "no .wav or .flac files in this folder or below it".into(),
                });
            }
            Ok(files
                .into_iter()
                .map(|path| ClipAudio::File { path, origin: None })
                .collect())
        }
        PretrainSource::Csv { path, column } => Ok(read_path_column(path, column.as_deref())?
            .into_iter()
            .map(|(audio, line)| ClipAudio::File {
                path: audio,
                origin: Some((path.clone(), line)),
            })
            .collect()),
    }
}

/// Every `.wav`/`.flac` under `dir` (recursively), sorted.
pub fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect_audio(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect_audio(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect_audio(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav") || e.eq_ignore_ascii_case("flac"))
        {
            out.push(path);
        }
    }
    Ok(())
}
