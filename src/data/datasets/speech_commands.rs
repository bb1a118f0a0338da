//! Speech Commands (Warden 2018), v0.01 and v0.02, from the extracted archive: one folder per
//! word, `_background_noise_/`, and the official `validation_list.txt` / `testing_list.txt`
//! (every file in neither list is train).
//!
//! The 12-way tasks follow TensorFlow's `input_data.py`, the recipe the 12-class benchmark
//! comes from: the ten keywords; `_unknown_` = the other words, shuffled with TensorFlow's
//! seed (59185) and cut to 10% of the split's keyword clips; `_silence_` = as many clips,
//! each a 1 s excerpt of a background-noise recording. The recordings are cut in time
//! (first 80% of each file for train, next 10% for valid, last 10% for test) so no excerpt
//! crosses splits; TensorFlow instead mixes noise at a random volume into silent clips
//! during training, which a fixed-embedding probe cannot do.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{missing, read_text, require_file, DatasetRow};
use crate::data::clip::{ClipAudio, Split};
use crate::error::{Error, Result};

/// The ten keywords of the 12-way task.
const KEYWORDS: [&str; 10] = [
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
];
/// TensorFlow's `RANDOM_SEED` in `input_data.py`.
const TF_SEED: u64 = 59185;
/// `_unknown_` and `_silence_` sizes, as a share of a split's keyword clips.
const EXTRA_SHARE: f64 = 0.1;
/// Length of a `_silence_` excerpt.
const SILENCE_SECONDS: f64 = 1.0;

/// Speech Commands v0.01, 12 classes.
pub fn load_v1_12(root: &Path) -> Result<Vec<DatasetRow>> {
    twelve_way(root)
}

/// Speech Commands v0.02, 12 classes.
pub fn load_v2_12(root: &Path) -> Result<Vec<DatasetRow>> {
    twelve_way(root)
}

/// Speech Commands v0.02, all 35 words.
pub fn load_v2_35(root: &Path) -> Result<Vec<DatasetRow>> {
    let rows = words(root)?;
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.len() != 35 {
        return Err(missing(
            root,
            &format!(
                "speech_commands_v2_35 needs the 35 word folders of v0.02, found {} ({}); is this v0.01 (30 words)?",
                labels.len(),
                labels.join(", ")
            ),
        ));
    }
    Ok(rows)
}

/// Every word clip with its official split.
fn words(root: &Path) -> Result<Vec<DatasetRow>> {
    let what = "one of the Speech Commands archive's split lists";
    let lists = [
        (
            Split::Valid,
            require_file(root, "validation_list.txt", what)?,
        ),
        (Split::Test, require_file(root, "testing_list.txt", what)?),
    ];
    let mut listed = std::collections::HashMap::new();
    for (split, list) in &lists {
        for (i, line) in read_text(list)?.lines().enumerate() {
            let entry = line.trim();
            if entry.is_empty() {
                continue;
            }
            if !root.join(entry).is_file() {
                return Err(Error::Manifest {
                    path: list.clone(),
                    row: i + 1,
                    message: format!("{} does not exist", root.join(entry).display()),
                });
            }
            listed.insert(entry.to_owned(), *split);
        }
    }
    let mut rows = Vec::new();
    let mut folders: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let word = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if word.starts_with('_') {
            continue;
        }
        for path in super::audio_files(&folder)? {
            let relative = format!(
                "{word}/{}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            );
            let split = listed.get(&relative).copied().unwrap_or(Split::Train);
            rows.push(DatasetRow {
                audio: ClipAudio::File { path, origin: None },
                label: word.clone(),
                split,
            });
        }
    }
    if rows.is_empty() {
        return Err(missing(
            root,
            "no <word>/*.wav folders; point root at the extracted Speech Commands archive",
        ));
    }
    Ok(rows)
}

fn twelve_way(root: &Path) -> Result<Vec<DatasetRow>> {
    let all = words(root)?;
    let noise = background_noise(root)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(TF_SEED);
    let mut rows = Vec::new();
    for split in Split::ALL {
        let (keywords, mut unknown): (Vec<_>, Vec<_>) = all
            .iter()
            .filter(|r| r.split == split)
            .cloned()
            .partition(|r| KEYWORDS.contains(&r.label.as_str()));
        let extra = (keywords.len() as f64 * EXTRA_SHARE).ceil() as usize;
        unknown.shuffle(&mut rng);
        unknown.truncate(extra);
        rows.extend(keywords);
        rows.extend(unknown.into_iter().map(|r| DatasetRow {
            label: "_unknown_".into(),
            ..r
        }));
        for _ in 0..extra {
            let (path, seconds) = &noise[rng.random_range(0..noise.len())];
            let (from, to) = match split {
                Split::Train => (0.0, 0.8),
                Split::Valid => (0.8, 0.9),
                Split::Test => (0.9, 1.0),
            };
            let span = ((to - from) * seconds - SILENCE_SECONDS).max(0.0);
            let start = from * seconds + rng.random_range(0.0..=span);
            rows.push(DatasetRow {
                audio: ClipAudio::Segment {
                    path: path.clone(),
                    start_seconds: start,
                    seconds: SILENCE_SECONDS,
                },
                label: "_silence_".into(),
                split,
            });
        }
    }
    Ok(rows)
}

/// The background-noise recordings and their durations (from the WAV headers).
fn background_noise(root: &Path) -> Result<Vec<(std::path::PathBuf, f64)>> {
    let dir = root.join("_background_noise_");
    let files = if dir.is_dir() {
        super::audio_files(&dir)?
    } else {
        Vec::new()
    };
    let noise = files
        .into_iter()
        .map(|path| {
            let reader = hound::WavReader::open(&path)
                .map_err(|e| Error::audio(&path, format!("unreadable WAV header: {e}")))?;
            let seconds = f64::from(reader.duration()) / f64::from(reader.spec().sample_rate);
            Ok((path, seconds))
        })
        .collect::<Result<Vec<_>>>()?;
    // Each split's share of a recording must hold a whole excerpt.
    let usable: Vec<_> = noise
        .into_iter()
        .filter(|(_, s)| 0.1 * s >= SILENCE_SECONDS)
        .collect();
    if usable.is_empty() {
        return Err(missing(
            root,
            "expected _background_noise_/*.wav of at least 10 s each (the _silence_ class is cut from them)",
        ));
    }
    Ok(usable)
}
