//! NSynth instrument family (Engel et al. 2017): `nsynth-{train,valid,test}/examples.json`
//! (an object keyed by note name, each with `instrument_family_str`) and
//! `nsynth-<split>/audio/<note>.wav`. 11 families; the official splits.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{file_row, read_text, require_file, DatasetRow};
use crate::data::clip::Split;
use crate::error::{Error, Result};

#[derive(Deserialize)]
struct Note {
    instrument_family_str: String,
}

/// Lists the three official splits.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for (split, folder) in [
        (Split::Train, "nsynth-train"),
        (Split::Valid, "nsynth-valid"),
        (Split::Test, "nsynth-test"),
    ] {
        let json = require_file(
            root,
            &format!("{folder}/examples.json"),
            "NSynth's note metadata, next to audio/<note>.wav",
        )?;
        let notes: BTreeMap<String, Note> =
            serde_json::from_str(&read_text(&json)?).map_err(|e| Error::Manifest {
                path: json.clone(),
                row: e.line(),
                message: format!("not NSynth's examples.json: {e}"),
            })?;
        for (note, meta) in notes {
            let wav = root.join(folder).join("audio").join(format!("{note}.wav"));
            rows.push(file_row(
                wav,
                meta.instrument_family_str,
                split,
                Some((&json, 1)),
            )?);
        }
    }
    Ok(rows)
}
