//! VoxForge language identification, six languages as in BYOL-A's and LAPE's benchmarks:
//! `<language>/<user>-<date>-<id>/wav/*.wav` (the layout of VoxForge's per-submission
//! archives, extracted into one folder per language; `de`/`german` and so on are both
//! accepted).
//!
//! VoxForge has no official split. Splits are speaker-disjoint: the user name (before the
//! first `-`) is hashed 80/10/10; `anonymous` submissions cannot be told apart, so each
//! counts as its own speaker.

use std::path::Path;

use super::{audio_files, hash_split, missing, DatasetRow};
use crate::data::clip::ClipAudio;
use crate::error::Result;

const LANGUAGES: [(&str, &str); 6] = [
    ("de", "german"),
    ("en", "english"),
    ("es", "spanish"),
    ("fr", "french"),
    ("it", "italian"),
    ("ru", "russian"),
];

/// Lists the six languages.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for (code, name) in LANGUAGES {
        let Some(dir) = [root.join(code), root.join(name)]
            .into_iter()
            .find(|p| p.is_dir())
        else {
            return Err(missing(
                root,
                &format!(
                    "expected a folder {code}/ (or {name}/) holding <user>-<date>-<id>/wav/*.wav"
                ),
            ));
        };
        for path in audio_files(&dir)? {
            let Some(submission) = path
                .strip_prefix(&dir)
                .ok()
                .and_then(|r| r.components().next())
                .and_then(|c| c.as_os_str().to_str())
            else {
                continue;
            };
            let user = submission.split('-').next().unwrap_or(submission);
            let speaker = if user.eq_ignore_ascii_case("anonymous") {
                submission
            } else {
                user
            };
            rows.push(DatasetRow {
                split: hash_split(&format!("{code}/{speaker}"), 0.1, 0.1),
                audio: ClipAudio::File { path, origin: None },
                label: name.to_owned(),
            });
        }
    }
    Ok(rows)
}
