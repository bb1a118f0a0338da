//! A labelled task: its classes and clips, from any [`TaskSource`].

use std::collections::BTreeSet;

use super::clip::{ClipAudio, Split};
use super::config::{TaskConfig, TaskSource};
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
            source => {
                let manifest = source.manifest_path().expect("file-based source");
                let rows = read_labelled_manifest(&manifest)?;
                let train_labels: BTreeSet<&str> = rows
                    .iter()
                    .filter(|r| r.split == Split::Train)
                    .map(|r| r.label.as_str())
                    .collect();
                if train_labels.is_empty() {
                    return Err(Error::Dataset {
                        path: manifest,
                        message: "no rows with split `train`".into(),
                    });
                }
                if let Some(row) = rows
                    .iter()
                    .find(|r| !train_labels.contains(r.label.as_str()))
                {
                    return Err(Error::Manifest {
                        path: manifest.clone(),
                        row: row.line,
                        message: format!("label `{}` never occurs in the train split, so no probe can predict it", row.label),
                    });
                }
                let classes: Vec<String> = train_labels.iter().map(|s| s.to_string()).collect();
                let clips = rows
                    .iter()
                    .map(|r| LabelledClip {
                        audio: ClipAudio::File {
                            path: r.path.clone(),
                            origin: Some((manifest.clone(), r.line)),
                        },
                        label: classes
                            .binary_search(&r.label)
                            .expect("label is a train label"),
                        split: r.split,
                    })
                    .collect();
                let bytes = std::fs::read(&manifest).map_err(|e| Error::io(&manifest, e))?;
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
            window_seconds: cfg.window_seconds,
            fingerprint,
        })
    }

    /// The clips of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &LabelledClip> {
        self.clips.iter().filter(move |c| c.split == split)
    }
}
