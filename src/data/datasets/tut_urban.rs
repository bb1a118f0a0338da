//! TUT Urban Acoustic Scenes 2018, development set (DCASE 2018 task 1A): `meta.csv`
//! (tab-separated `filename, scene_label, identifier, source_label`, header optional) and the
//! fold lists `evaluation_setup/fold1_train.txt` and `fold1_evaluate.txt` (`filename\tlabel`;
//! `.csv` names are accepted too).
//!
//! `fold1_evaluate` is the test split. The fold has no validation list, so one is cut from
//! `fold1_train` by recording location (`identifier`): 10% of the locations, so no location
//! is in both train and valid, as the official fold keeps locations apart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{file_row, hash_split, missing, read_text, require_file, DatasetRow};
use crate::data::clip::Split;
use crate::error::{Error, Result};

/// Tab-separated rows of a file, without an optional `filename` header.
fn rows(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    Ok(read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                i + 1,
                l.split('\t')
                    .map(|f| f.trim().to_owned())
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, f)| f[0] != "filename")
        .collect())
}

fn fold_list(root: &Path, stem: &str) -> Result<PathBuf> {
    ["txt", "csv"]
        .iter()
        .map(|ext| root.join("evaluation_setup").join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            missing(
                root,
                &format!("expected evaluation_setup/{stem}.txt (the DCASE 2018 task 1A fold list)"),
            )
        })
}

/// Lists fold 1 with a location-disjoint validation split.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let meta = require_file(
        root,
        "meta.csv",
        "the development set's metadata: filename, scene_label, identifier",
    )?;
    let mut location: HashMap<String, String> = HashMap::new();
    for (line, fields) in rows(&meta)? {
        let [file, _, identifier, ..] = fields.as_slice() else {
            return Err(Error::Manifest {
                path: meta.clone(),
                row: line,
                message: "expected tab-separated filename, scene_label, identifier".into(),
            });
        };
        location.insert(file.clone(), identifier.clone());
    }
    let mut out = Vec::new();
    for (stem, is_test) in [("fold1_train", false), ("fold1_evaluate", true)] {
        let list = fold_list(root, stem)?;
        for (line, fields) in rows(&list)? {
            let bad = |message: String| Error::Manifest {
                path: list.clone(),
                row: line,
                message,
            };
            let [file, label, ..] = fields.as_slice() else {
                return Err(bad("expected tab-separated filename and scene_label".into()));
            };
            let split = if is_test {
                Split::Test
            } else {
                let place = location
                    .get(file)
                    .ok_or_else(|| bad(format!("{file} is not in meta.csv")))?;
                hash_split(place, 0.1, 0.0)
            };
            out.push(file_row(
                root.join(file),
                label.clone(),
                split,
                Some((&list, line)),
            )?);
        }
    }
    Ok(out)
}
