//! LibriSpeech train-clean-100 speaker identification: `<speaker>/<chapter>/*.flac` under
//! `root/LibriSpeech/train-clean-100`, `root/train-clean-100` or `root` itself.
//!
//! The label is the speaker (251 classes). LAPE's CSV has 585 classes (docs/method.md §9.4), a
//! granularity nobody has documented, so it cannot be rebuilt; speakers are the standard
//! choice. LibriSpeech has no speaker-ID split: each speaker's utterances are hashed 80/10/10
//! into train/valid/test, so every speaker is in every split.

use std::path::Path;

use super::{audio_files, hash_split, missing, DatasetRow};
use crate::data::clip::ClipAudio;
use crate::error::Result;

/// Lists train-clean-100 with speaker labels.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let base = [
        root.join("LibriSpeech").join("train-clean-100"),
        root.join("train-clean-100"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .unwrap_or_else(|| root.to_owned());
    let files = if base.is_dir() {
        audio_files(&base)?
    } else {
        Vec::new()
    };
    let rows: Vec<DatasetRow> = files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&base).ok()?;
            let speaker = relative
                .components()
                .next()?
                .as_os_str()
                .to_str()?
                .to_owned();
            let utterance = path.file_stem()?.to_str()?.to_owned();
            (relative.components().count() == 3).then(|| DatasetRow {
                split: hash_split(&utterance, 0.1, 0.1),
                audio: ClipAudio::File { path, origin: None },
                label: speaker,
            })
        })
        .collect();
    if rows.is_empty() {
        return Err(missing(
            root,
            "expected LibriSpeech/train-clean-100/<speaker>/<chapter>/*.flac (or train-clean-100/ or the speaker folders directly)",
        ));
    }
    Ok(rows)
}
