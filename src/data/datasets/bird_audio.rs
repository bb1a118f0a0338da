//! Bird audio detection (DCASE 2018 task 3 development data), freefield1010 and Warblr
//! combined as in LAPE: `ff1010bird/` and `warblrb10k_public/`, each with a metadata CSV
//! (`itemid`, `hasbird`; any `*.csv` in the folder) and `wav/<itemid>.wav`.
//!
//! LAPE splits the combined set 80/20 with scikit-learn; this loader hashes each item
//! 80/10/10 into train/valid/test, which keeps the label balance in expectation.

use std::path::Path;

use super::{file_row, hash_split, missing, DatasetRow};
use crate::error::{Error, Result};

const PARTS: [&str; 2] = ["ff1010bird", "warblrb10k_public"];

/// Lists both sets.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for part in PARTS {
        let dir = root.join(part);
        let csv_path = std::fs::read_dir(&dir)
            .ok()
            .and_then(|entries| {
                let mut csvs: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "csv"))
                    .collect();
                csvs.sort();
                csvs.into_iter().next()
            })
            .ok_or_else(|| {
                missing(
                    root,
                    &format!("expected {part}/<metadata>.csv (itemid, hasbird) and {part}/wav/<itemid>.wav"),
                )
            })?;
        let mut reader = csv::Reader::from_path(&csv_path).map_err(|e| Error::Manifest {
            path: csv_path.clone(),
            row: 1,
            message: e.to_string(),
        })?;
        let headers = reader.headers().map_err(|e| Error::Manifest {
            path: csv_path.clone(),
            row: 1,
            message: e.to_string(),
        })?;
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| Error::Manifest {
                    path: csv_path.clone(),
                    row: 1,
                    message: format!("no `{name}` column; expected itemid, hasbird"),
                })
        };
        let (id_col, label_col) = (column("itemid")?, column("hasbird")?);
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let bad = |message: String| Error::Manifest {
                path: csv_path.clone(),
                row: line,
                message,
            };
            let record = record.map_err(|e| bad(e.to_string()))?;
            let (id, has_bird) = (record[id_col].trim(), record[label_col].trim());
            let label = match has_bird {
                "0" => "no_bird",
                "1" => "bird",
                other => return Err(bad(format!("hasbird `{other}` is not 0 or 1"))),
            };
            let split = hash_split(&format!("{part}/{id}"), 0.1, 0.1);
            let wav = dir.join("wav").join(format!("{id}.wav"));
            rows.push(file_row(wav, label, split, Some((&csv_path, line)))?);
        }
    }
    Ok(rows)
}
