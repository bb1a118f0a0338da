//! Embeddings computed elsewhere, by any framework, read from a documented layout so that they
//! are scored by exactly our protocols (`eval.encoders: [{precomputed: {path, name}}]`):
//!
//! ```text
//! <path>/<task>/<split>.parquet   columns `file` (str) and `embedding` (list of floats)
//! <path>/<task>/<split>.npy       or: float32 [clips, d], rows in clip order
//! ```
//!
//! Clip `i` of a split is the file `experiment hear-tasks` writes as `<split>/{i:06}.wav`
//! (the task's clips in order), so a tool embeds those files and names each row by its file;
//! any directory part of the name is ignored. Every clip needs exactly one row.

use std::path::Path;

use crate::data::Split;
use crate::error::{Error, Result};

/// The embeddings of `clips` clips of `task`'s `split` under `dir`: their size and the
/// `clips * d` values in clip order.
pub fn read_precomputed(
    dir: &Path,
    task: &str,
    split: Split,
    clips: usize,
) -> Result<(usize, Vec<f32>)> {
    let folder = dir.join(task);
    let parquet = folder.join(format!("{split}.parquet"));
    let npy = folder.join(format!("{split}.npy"));
    let bad = |path: &Path, message: String| Error::Dataset {
        path: path.to_owned(),
        message,
    };
    let (path, rows) = if parquet.is_file() {
        (parquet.clone(), rows_by_file(&parquet, clips)?)
    } else if npy.is_file() {
        let tensor = candle_core::Tensor::read_npy(&npy)
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .map_err(|e| bad(&npy, format!("not a float array .npy: {e}")))?;
        let rows: Vec<Vec<f32>> = tensor
            .to_vec2()
            .map_err(|e| bad(&npy, format!("must be [clips, d]: {e}")))?;
        (npy.clone(), rows)
    } else {
        return Err(bad(
            &folder,
            format!("no {split}.parquet or {split}.npy of precomputed embeddings here"),
        ));
    };
    if rows.len() != clips {
        return Err(bad(
            &path,
            format!(
                "{} rows, but the {split} split of `{task}` has {clips} clips",
                rows.len()
            ),
        ));
    }
    let dim = rows.first().map_or(0, Vec::len);
    if dim == 0 || rows.iter().any(|r| r.len() != dim) {
        return Err(bad(
            &path,
            "every embedding needs the same, non-zero size".into(),
        ));
    }
    if let Some(i) = rows.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
        return Err(bad(
            &path,
            format!("the embedding of clip {i} is not finite"),
        ));
    }
    Ok((dim, rows.concat()))
}

/// The rows of a `file, embedding` table in clip order, each file name's number its clip.
fn rows_by_file(path: &Path, clips: usize) -> Result<Vec<Vec<f32>>> {
    let bad = |message: String| Error::Dataset {
        path: path.to_owned(),
        message,
    };
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; clips];
    for (file, embedding) in crate::results::read_file_embeddings(path)? {
        let stem = Path::new(&file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        let index: usize = stem
            .parse()
            .map_err(|_| bad(format!("`{file}` is not a clip name such as 000012.wav")))?;
        let slot = rows.get_mut(index).ok_or_else(|| {
            bad(format!(
                "`{file}` names clip {index}, the split has {clips}"
            ))
        })?;
        if slot.replace(embedding).is_some() {
            return Err(bad(format!("clip {index} has two rows")));
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| bad(format!("no row for clip {i:06}.wav"))))
        .collect()
}
