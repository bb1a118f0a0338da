//! CSV manifests: labelled (`path,label,split`, the format `make_tasks.sh` writes as
//! `labels.csv`) and unlabeled (one path column). Paths are relative to the CSV's folder
//! unless absolute. Every error names the CSV and the line.

use std::path::{Path, PathBuf};

use super::clip::Split;
use crate::error::{Error, Result};

/// One row of a labelled manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRow {
    /// Resolved audio path.
    pub path: PathBuf,
    /// Class label as written.
    pub label: String,
    /// Split.
    pub split: Split,
    /// 1-based line in the CSV.
    pub line: usize,
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(file))
}

fn headers(reader: &mut csv::Reader<std::fs::File>, path: &Path) -> Result<Vec<String>> {
    let headers = reader.headers().map_err(|e| Error::Manifest {
        path: path.to_owned(),
        row: 1,
        message: format!("unreadable header: {e}"),
    })?;
    Ok(headers.iter().map(str::to_owned).collect())
}

fn column(headers: &[String], name: &str, path: &Path) -> Result<usize> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| Error::Manifest {
            path: path.to_owned(),
            row: 1,
            message: format!(
                "no `{name}` column (header is `{}`); expected columns path,label,split",
                headers.join(",")
            ),
        })
}

fn resolve(csv_path: &Path, entry: &str) -> PathBuf {
    let p = Path::new(entry);
    if p.is_absolute() {
        p.to_owned()
    } else {
        csv_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads a labelled manifest, checking that every file exists.
pub fn read_labelled_manifest(path: &Path) -> Result<Vec<ManifestRow>> {
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let (pc, lc, sc) = (
        column(&headers, "path", path)?,
        column(&headers, "label", path)?,
        column(&headers, "split", path)?,
    );
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let bad = |message: String| Error::Manifest {
            path: path.to_owned(),
            row: line,
            message,
        };
        let record = record.map_err(|e| bad(format!("malformed row: {e}")))?;
        let (entry, label, split) = (&record[pc], &record[lc], &record[sc]);
        if entry.is_empty() || label.is_empty() {
            return Err(bad("empty path or label".into()));
        }
        let split = Split::parse(split)
            .ok_or_else(|| bad(format!("unknown split `{split}`; use train, valid or test")))?;
        let audio = resolve(path, entry);
        if !audio.is_file() {
            return Err(bad(format!(
                "audio file {} does not exist",
                audio.display()
            )));
        }
        rows.push(ManifestRow {
            path: audio,
            label: label.to_owned(),
            split,
            line,
        });
    }
    if rows.is_empty() {
        return Err(Error::Manifest {
            path: path.to_owned(),
            row: 1,
            message: "the manifest has no rows".into(),
        });
    }
    Ok(rows)
}

/// Reads an unlabeled manifest: the paths in `column` (default: `path`, else `files` as in
/// LAPE's pre-training CSVs), as `(path, line)`, checking that every file exists.
pub fn read_path_column(path: &Path, column_name: Option<&str>) -> Result<Vec<(PathBuf, usize)>> {
    let mut reader = open(path)?;
    let headers = headers(&mut reader, path)?;
    let col = match column_name {
        Some(name) => column(&headers, name, path)?,
        None => headers
            .iter()
            .position(|h| h == "path" || h == "files")
            .ok_or_else(|| Error::Manifest {
                path: path.to_owned(),
                row: 1,
                message: format!(
                    "no `path` or `files` column (header is `{}`); set `column:` in the spec",
                    headers.join(",")
                ),
            })?,
    };
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::Manifest {
            path: path.to_owned(),
            row: line,
            message: format!("malformed row: {e}"),
        })?;
        let audio = resolve(path, &record[col]);
        if !audio.is_file() {
            return Err(Error::Manifest {
                path: path.to_owned(),
                row: line,
                message: format!("audio file {} does not exist", audio.display()),
            });
        }
        out.push((audio, line));
    }
    if out.is_empty() {
        return Err(Error::Manifest {
            path: path.to_owned(),
            row: 1,
            message: "the manifest has no rows".into(),
        });
    }
    Ok(out)
}
