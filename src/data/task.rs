//! A labelled task: its classes and clips, from any [`TaskSource`].

use std::collections::BTreeSet;
use std::path::Path;

use super::clip::{ClipAudio, Split};
use super::config::{TaskConfig, TaskSource};
use super::datasets::{dataset, DatasetRow};
use super::manifest::read_labelled_manifest;
use crate::error::{Error, Result};

/// A clip with its class index and split.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledClip {
    /// Audio source.
    pub audio: ClipAudio,
    /// Index into [`Task::classes`].
    pub label: usize,
    /// Split.
    pub split: Split,
}

/// A labelled downstream task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Task name.
    pub name: String,
    /// Class names in label order (sorted for file-based tasks, so ids are stable across runs).
    pub classes: Vec<String>,
    /// All clips.
    pub clips: Vec<LabelledClip>,
    /// Evaluation window in seconds.
    pub window_seconds: f64,
    /// A fingerprint of the source's content (seed and sizes, or the manifest's bytes).
    pub fingerprint: String,
}

impl Task {
    /// Builds the task from its spec; synthetic clips use master `seed`.
    pub fn from_config(cfg: &TaskConfig, seed: u64) -> Result<Self> {
        let (classes, clips, fingerprint) = match &cfg.source {
            TaskSource::Synthetic {
                generator,
                per_class,
            } => {
                let classes = generator.classes();
                let mut clips = Vec::new();
                for split in Split::ALL {
                    let count = match split {
                        Split::Train => per_class.train,
                        Split::Valid => per_class.valid,
                        Split::Test => per_class.test,
                    };
                    for class in 0..classes.len() {
                        for index in 0..count as u64 {
                            let audio = ClipAudio::Synthetic {
                                generator: *generator,
                                class,
                                split,
                                seed,
                                index,
                            };
                            clips.push(LabelledClip {
                                audio,
                                label: class,
                                split,
                            });
                        }
                    }
                }
                (
                    classes,
                    clips,
                    format!("synthetic:{generator:?}:{seed}:{per_class:?}"),
                )
            }
            TaskSource::Dataset { name, root } => {
                let kind = dataset(name).ok_or_else(|| {
                    Error::Invalid(format!("task `{}`: no dataset called `{name}`", cfg.name))
                })?;
                let rows = (kind.load)(root)?;
                let mut fingerprint = blake3::Hasher::new();
                fingerprint.update(name.as_bytes());
                for row in &rows {
                    fingerprint.update(row.audio.id().as_bytes());
                    fingerprint.update(row.label.as_bytes());
                    fingerprint.update(row.split.to_string().as_bytes());
                }
                let fingerprint = format!("dataset:{name}:{}", fingerprint.finalize().to_hex());
                let (classes, clips) = index_labels(root, rows)?;
                (classes, clips, fingerprint)
            }
            source => {
                let manifest = source.manifest_path().expect("file-based source");
                let rows = read_labelled_manifest(&manifest)?;
                let bytes = std::fs::read(&manifest).map_err(|e| Error::io(&manifest, e))?;
                let rows = rows
                    .into_iter()
                    .map(|r| DatasetRow {
                        audio: ClipAudio::File {
                            path: r.path,
                            origin: Some((manifest.clone(), r.line)),
                        },
                        label: r.label,
                        split: r.split,
                    })
                    .collect();
                let (classes, clips) = index_labels(&manifest, rows)?;
                (
                    classes,
                    clips,
                    format!("manifest:{}", blake3::hash(&bytes).to_hex()),
                )
            }
        };
        for split in Split::ALL {
            if !clips.iter().any(|c: &LabelledClip| c.split == split) {
                return Err(Error::Invalid(format!("task `{}` has no clips in the {split} split; every task needs train, valid and test", cfg.name)));
            }
        }
        Ok(Self {
            name: cfg.name.clone(),
            classes,
            clips,
            window_seconds: cfg.window(),
            fingerprint,
        })
    }

    /// The clips of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &LabelledClip> {
        self.clips.iter().filter(move |c| c.split == split)
    }
}

/// Class ids from the train split's labels (sorted, so ids are stable); a label that never
/// occurs in train is an error naming where it came from.
fn index_labels(source: &Path, rows: Vec<DatasetRow>) -> Result<(Vec<String>, Vec<LabelledClip>)> {
    let classes: Vec<String> = rows
        .iter()
        .filter(|r| r.split == Split::Train)
        .map(|r| r.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.is_empty() {
        return Err(Error::Dataset {
            path: source.to_owned(),
            message: "no clips in the train split".into(),
        });
    }
    rows.into_iter()
        .map(|r| {
            let Ok(label) = classes.binary_search(&r.label) else {
                let message = format!(
                    "label `{}` never occurs in the train split, so no probe can predict it",
                    r.label
                );
                return Err(match &r.audio {
                    ClipAudio::File {
                        origin: Some((path, row)),
                        ..
                    } => Error::Manifest {
                        path: path.clone(),
                        row: *row,
                        message,
                    },
                    audio => Error::Dataset {
                        path: source.to_owned(),
                        message: format!("{}: {message}", audio.id()),
                    },
                });
            };
            Ok(LabelledClip {
                audio: r.audio,
                label,
                split: r.split,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(|clips| (classes, clips))
}
