//! VoxCeleb1 speaker identification (Nagrani et al. 2017): `iden_split.txt`, whose lines are
//! `<set> <speaker>/<video>/<utt>.wav` with set 1 = train, 2 = valid, 3 = test, and the audio
//! under `wav/`. The label is the speaker id (1251 speakers).

use std::path::Path;

use super::{file_row, read_text, require_file, DatasetRow};
use crate::data::clip::Split;
use crate::error::{Error, Result};

/// Lists the identification split.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let list = require_file(
        root,
        "iden_split.txt",
        "VoxCeleb1's identification split; audio goes in wav/<speaker>/<video>/<utt>.wav",
    )?;
    let mut rows = Vec::new();
    for (i, line) in read_text(&list)?.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: String| Error::Manifest {
            path: list.clone(),
            row: i + 1,
            message,
        };
        let (set, entry) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("expected `<1|2|3> <path>`, got `{line}`")))?;
        let split = match set {
            "1" => Split::Train,
            "2" => Split::Valid,
            "3" => Split::Test,
            other => return Err(bad(format!("set `{other}` is not 1, 2 or 3"))),
        };
        let entry = entry.trim();
        let speaker = entry
            .split('/')
            .next()
            .filter(|s| !s.is_empty() && entry.contains('/'))
            .ok_or_else(|| bad(format!("`{entry}` is not <speaker>/<video>/<utt>.wav")))?;
        rows.push(file_row(
            root.join("wav").join(entry),
            speaker,
            split,
            Some((&list, i + 1)),
        )?);
    }
    Ok(rows)
}
