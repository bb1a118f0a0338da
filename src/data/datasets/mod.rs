//! The task registry: the real datasets of the LAPE benchmark (docs/method.md §9.4), each read from its
//! standard on-disk layout. A task is one row of [`DATASETS`] and one loader; adding a task
//! touches only those.
//!
//! Loaders list clips and labels without decoding audio. Where a dataset has no standard
//! validation split (or no split at all), one is made deterministically from a hash of a
//! grouping key (speaker, session, location or file), independent of the experiment seed,
//! so every experiment sees the same split; each loader documents its choice.

mod bird_audio;
mod iemocap;
mod librispeech;
mod nsynth;
mod speech_commands;
mod tut_urban;
mod voxceleb;
mod voxforge;

use std::path::{Path, PathBuf};

use super::clip::{ClipAudio, Split};
pub(crate) use super::pretrain::audio_files;
use crate::error::{Error, Result};

/// One labelled clip from a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRow {
    /// Audio source.
    pub audio: ClipAudio,
    /// Class label.
    pub label: String,
    /// Split.
    pub split: Split,
}

/// A registered dataset task.
#[derive(Debug, Clone, Copy)]
pub struct DatasetKind {
    /// Name used in specs (`source: {type: dataset, name: ..., root: ...}`).
    pub name: &'static str,
    /// What it is and the layout expected under `root`.
    pub layout: &'static str,
    /// Number of classes in the full dataset.
    pub classes: usize,
    /// Default evaluation window in seconds (docs/method.md §9.4, Protocol A).
    pub window_seconds: f64,
    /// Where train, valid and test come from.
    pub splits: &'static str,
    /// Metric reported.
    pub metric: &'static str,
    /// Lists the clips under a dataset root.
    pub load: fn(&Path) -> Result<Vec<DatasetRow>>,
}

/// Every dataset task.
pub const DATASETS: &[DatasetKind] = &[
    DatasetKind {
        name: "speech_commands_v1_12",
        layout: "Speech Commands v0.01 extracted: <word>/*.wav, _background_noise_/, validation_list.txt, testing_list.txt",
        classes: 12,
        window_seconds: 1.0,
        splits: "validation_list.txt / testing_list.txt; _unknown_ and _silence_ each 10% of a split's keyword clips (TensorFlow's recipe)",
        metric: "accuracy",
        load: speech_commands::load_v1_12,
    },
    DatasetKind {
        name: "speech_commands_v2_12",
        layout: "Speech Commands v0.02 extracted, as v1",
        classes: 12,
        window_seconds: 1.0,
        splits: "as speech_commands_v1_12",
        metric: "accuracy",
        load: speech_commands::load_v2_12,
    },
    DatasetKind {
        name: "speech_commands_v2_35",
        layout: "Speech Commands v0.02 extracted, as v1",
        classes: 35,
        window_seconds: 1.0,
        splits: "validation_list.txt / testing_list.txt; the 35 words, no _unknown_ or _silence_",
        metric: "accuracy",
        load: speech_commands::load_v2_35,
    },
    DatasetKind {
        name: "voxceleb1",
        layout: "VoxCeleb1: iden_split.txt and wav/<speaker>/<video>/<utt>.wav",
        classes: 1251,
        window_seconds: 8.0,
        splits: "iden_split.txt (1 train, 2 valid, 3 test)",
        metric: "accuracy",
        load: voxceleb::load,
    },
    DatasetKind {
        name: "librispeech_100",
        layout: "LibriSpeech train-clean-100: [LibriSpeech/]train-clean-100/<speaker>/<chapter>/*.flac",
        classes: 251,
        window_seconds: 12.0,
        splits: "speaker labels; utterances hashed 80/10/10 within each speaker",
        metric: "accuracy",
        load: librispeech::load,
    },
    DatasetKind {
        name: "iemocap_4",
        layout: "IEMOCAP_full_release: Session<n>/dialog/EmoEvaluation/*.txt and Session<n>/sentences/wav/<dialog>/<utt>.wav",
        classes: 4,
        window_seconds: 4.0,
        splits: "sessions 1-3 train, 4 valid, 5 test; neu, ang, sad, hap with exc merged into hap",
        metric: "accuracy",
        load: iemocap::load,
    },
    DatasetKind {
        name: "voxforge_6",
        layout: "VoxForge: <language>/<user>-<date>-<id>/wav/*.wav for de, en, es, fr, it, ru",
        classes: 6,
        window_seconds: 6.0,
        splits: "speaker-disjoint, speakers hashed 80/10/10 (anonymous submissions count as their own speaker)",
        metric: "accuracy",
        load: voxforge::load,
    },
    DatasetKind {
        name: "nsynth_instrument",
        layout: "NSynth: nsynth-{train,valid,test}/examples.json and audio/<note_str>.wav",
        classes: 11,
        window_seconds: 4.0,
        splits: "the official train / valid / test folders",
        metric: "accuracy",
        load: nsynth::load,
    },
    DatasetKind {
        name: "tut_urban_2018",
        layout: "TUT Urban Acoustic Scenes 2018 development: meta.csv, evaluation_setup/fold1_{train,evaluate}.txt, audio/*.wav",
        classes: 10,
        window_seconds: 9.0,
        splits: "fold1_evaluate is test; fold1_train split by recording location, 10% of locations to valid",
        metric: "accuracy",
        load: tut_urban::load,
    },
    DatasetKind {
        name: "bird_audio_detection",
        layout: "ff1010bird/ and warblrb10k_public/, each a metadata CSV (itemid, hasbird) and wav/<itemid>.wav",
        classes: 2,
        window_seconds: 10.0,
        splits: "both sets combined; items hashed 80/10/10 within each label",
        metric: "accuracy",
        load: bird_audio::load,
    },
];

/// The registered dataset called `name`.
pub fn dataset(name: &str) -> Option<&'static DatasetKind> {
    DATASETS.iter().find(|d| d.name == name)
}

/// A fixed split from a hash of `key`: `test` and `valid` are fractions.
pub(crate) fn hash_split(key: &str, valid: f64, test: f64) -> Split {
    let h = blake3::hash(key.as_bytes());
    let x =
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
    if x < test {
        Split::Test
    } else if x < test + valid {
        Split::Valid
    } else {
        Split::Train
    }
}

/// `root/relative` if it is a file, else an error saying what was expected there.
pub(crate) fn require_file(root: &Path, relative: &str, what: &str) -> Result<PathBuf> {
    let path = root.join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(root, &format!("expected {relative} ({what})")))
    }
}

/// A layout error at `root`.
pub(crate) fn missing(root: &Path, message: &str) -> Error {
    let exists = if root.is_dir() {
        ""
    } else {
        " (the folder does not exist)"
    };
    Error::Dataset {
        path: root.to_owned(),
        message: format!("{message}{exists}"),
    }
}

/// Reads a text file, naming it on error.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// A row for an existing audio file; `listed_in` (file and 1-based line) names where the
/// path came from when it is missing.
pub(crate) fn file_row(
    path: PathBuf,
    label: impl Into<String>,
    split: Split,
    listed_in: Option<(&Path, usize)>,
) -> Result<DatasetRow> {
    if !path.is_file() {
        let message = format!("audio file {} does not exist", path.display());
        return Err(match listed_in {
            Some((list, line)) => Error::Manifest {
                path: list.to_owned(),
                row: line,
                message,
            },
            None => Error::Invalid(message),
        });
    }
    Ok(DatasetRow {
        audio: ClipAudio::File {
            path,
            origin: listed_in.map(|(p, l)| (p.to_owned(), l)),
        },
        label: label.into(),
        split,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_hash_splits_have_the_asked_proportions() {
        for (i, d) in DATASETS.iter().enumerate() {
            assert!(DATASETS[..i].iter().all(|e| e.name != d.name), "{}", d.name);
            assert!(d.window_seconds > 0.0 && d.classes >= 2);
        }
        assert_eq!(dataset("voxceleb1").unwrap().classes, 1251);
        let splits: Vec<Split> = (0..10_000)
            .map(|i| hash_split(&format!("key{i}"), 0.1, 0.2))
            .collect();
        let share = |s| splits.iter().filter(|&&x| x == s).count() as f64 / 10_000.0;
        assert!((share(Split::Test) - 0.2).abs() < 0.02);
        assert!((share(Split::Valid) - 0.1).abs() < 0.02);
        assert_eq!(hash_split("same", 0.1, 0.1), hash_split("same", 0.1, 0.1));
    }
}
