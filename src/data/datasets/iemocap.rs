//! IEMOCAP 4-class emotion recognition (Busso et al. 2008) from `IEMOCAP_full_release`:
//! labels from `Session<n>/dialog/EmoEvaluation/<dialog>.txt` (lines
//! `[start - end]\t<utterance>\t<emotion>\t[v, a, d]`), audio in
//! `Session<n>/sentences/wav/<dialog>/<utterance>.wav`.
//!
//! Classes: neutral, anger, sadness and happiness with excitement merged into happiness, the
//! usual 4-class set; every other label (frustration, surprise, fear, disgust, other, xxx) is
//! left out. Split by session, so speakers never cross splits: sessions 1-3 train, 4 valid,
//! 5 test (one fold of the standard leave-one-session-out scheme).

use std::path::Path;

use super::{file_row, missing, read_text, DatasetRow};
use crate::data::clip::Split;
use crate::error::Result;

fn class(code: &str) -> Option<&'static str> {
    match code {
        "neu" => Some("neutral"),
        "ang" => Some("anger"),
        "sad" => Some("sadness"),
        "hap" | "exc" => Some("happiness"),
        _ => None,
    }
}

/// Lists the 4-class utterances of the five sessions.
pub fn load(root: &Path) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for session in 1..=5 {
        let dir = root.join(format!("Session{session}"));
        let labels = dir.join("dialog").join("EmoEvaluation");
        if !labels.is_dir() {
            return Err(missing(
                root,
                &format!("expected Session{session}/dialog/EmoEvaluation/*.txt and Session{session}/sentences/wav/ (IEMOCAP_full_release)"),
            ));
        }
        let split = match session {
            1..=3 => Split::Train,
            4 => Split::Valid,
            _ => Split::Test,
        };
        let mut files: Vec<_> = std::fs::read_dir(&labels)
            .map_err(|e| crate::error::Error::io(&labels, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for file in files {
            for (i, line) in read_text(&file)?.lines().enumerate() {
                if !line.starts_with('[') {
                    continue;
                }
                let fields: Vec<&str> = line.split('\t').collect();
                let (Some(utterance), Some(code)) = (fields.get(1), fields.get(2)) else {
                    continue;
                };
                let Some(label) = class(code.trim()) else {
                    continue;
                };
                let dialog = utterance.rsplit_once('_').map_or(*utterance, |(d, _)| d);
                let wav = dir
                    .join("sentences")
                    .join("wav")
                    .join(dialog)
                    .join(format!("{utterance}.wav"));
                rows.push(file_row(wav, label, split, Some((&file, i + 1)))?);
            }
        }
    }
    Ok(rows)
}
