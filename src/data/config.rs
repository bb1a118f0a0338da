//! Data settings of an experiment spec.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::corpus::Loading;

use super::datasets::{dataset, DATASETS};
use super::synthetic::Generator;
use crate::features::FrontendConfig;
use crate::problems::Problem;

/// Pre-training corpus and downstream tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Unlabeled pre-training audio.
    pub pretrain: PretrainSource,
    /// Pre-training window in seconds (docs/method.md §2.2: 0.95 s = 96 frames).
    #[serde(default = "default_pretrain_window")]
    pub window_seconds: f64,
    /// Labelled downstream tasks.
    #[serde(default)]
    pub tasks: Vec<TaskConfig>,
    /// Skip unreadable audio files (logged with a count) instead of stopping at the first.
    #[serde(default)]
    pub skip_bad_files: bool,
    /// How the pre-training corpus is held: `auto` (default), `in_memory` or `streaming`.
    /// It does not change results, so it is left out of the spec's hash (and out of the
    /// resolved spec while it is `auto`).
    #[serde(default, skip_serializing_if = "Loading::is_auto")]
    pub loading: Loading,
}

fn default_pretrain_window() -> f64 {
    0.95
}

/// Where unlabeled pre-training audio comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PretrainSource {
    /// The built-in synthetic corpus, generated from the seed.
    Synthetic {
        /// Number of clips.
        #[serde(default = "default_pretrain_clips")]
        clips: usize,
        /// Shortest clip in seconds.
        #[serde(default = "default_min_seconds")]
        min_seconds: f64,
        /// Longest clip in seconds.
        #[serde(default = "default_max_seconds")]
        max_seconds: f64,
    },
    /// Every `.wav` and `.flac` file under a folder (recursively).
    Folder {
        /// The folder.
        path: PathBuf,
    },
    /// A CSV with one path per row (relative to the CSV unless absolute). `make_tasks.sh`
    /// writes `OUT/pretrain.csv`; LAPE's CSVs use a `files` column.
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// Column with the paths (default: `path`, else `files`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
}

fn default_pretrain_clips() -> usize {
    600
}
fn default_min_seconds() -> f64 {
    1.0
}
fn default_max_seconds() -> f64 {
    3.0
}

/// One downstream task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Task name (column of the results table).
    pub name: String,
    /// Where its labelled clips come from.
    pub source: TaskSource,
    /// Evaluation window in seconds (a centred crop or pad of each clip). Unset: the
    /// registered dataset's window (docs/method.md §9.4), else 1 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
}

impl TaskConfig {
    /// The evaluation window in seconds.
    pub fn window(&self) -> f64 {
        self.window_seconds.unwrap_or(match &self.source {
            TaskSource::Dataset { name, .. } => dataset(name).map_or(1.0, |d| d.window_seconds),
            _ => 1.0,
        })
    }
}

/// Where a task's labelled clips come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskSource {
    /// A built-in synthetic task.
    Synthetic {
        /// Which generator.
        generator: Generator,
        /// Clips per class in each split.
        #[serde(default)]
        per_class: SplitSizes,
    },
    /// A `path,label,split` CSV (paths relative to it).
    Manifest {
        /// The CSV file.
        path: PathBuf,
    },
    /// A registered dataset in its standard layout (see `data::DATASETS`).
    Dataset {
        /// Registry name, e.g. `speech_commands_v2_12`.
        name: String,
        /// The dataset's root folder.
        root: PathBuf,
    },
    /// A task written by `scripts/make_tasks.sh OUT SIZE`: `OUT/<task>/labels.csv`.
    MakeTasks {
        /// The `OUT` folder.
        root: PathBuf,
        /// `kws`, `instrument` or `pitch`.
        task: String,
    },
}

/// Number of clips per class in each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSizes {
    /// Training clips per class.
    pub train: usize,
    /// Validation clips per class.
    pub valid: usize,
    /// Test clips per class.
    pub test: usize,
}

impl Default for SplitSizes {
    fn default() -> Self {
        // 200 test clips per class: a test accuracy near 50 % on 8-10 classes is resolved to
        // about +-2.5 points (binomial 95 % half-width); 50 valid clips per class for selection.
        Self {
            train: 100,
            valid: 50,
            test: 200,
        }
    }
}

impl TaskSource {
    /// The labelled CSV this source reads, if it reads one.
    pub fn manifest_path(&self) -> Option<PathBuf> {
        match self {
            TaskSource::Synthetic { .. } | TaskSource::Dataset { .. } => None,
            TaskSource::Manifest { path } => Some(path.clone()),
            TaskSource::MakeTasks { root, task } => Some(root.join(task).join("labels.csv")),
        }
    }
}

impl DataConfig {
    /// Bad values, with keys relative to `data`.
    pub fn problems(&self, frontend: &FrontendConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        let min_window = frontend.n_fft as f64 / f64::from(frontend.sample_rate) / 2.0;
        if !(self.window_seconds.is_finite() && self.window_seconds > min_window) {
            problems.push(Problem::new(
                "window_seconds",
                format!("{} s is too short", self.window_seconds),
                "docs/method.md §2.2 uses 0.95",
            ));
        }
        if let PretrainSource::Synthetic {
            clips,
            min_seconds,
            max_seconds,
        } = self.pretrain
        {
            if clips == 0 {
                problems.push(Problem::new(
                    "pretrain.clips",
                    "must be at least 1",
                    "the demo uses 600",
                ));
            }
            if !(min_seconds > 0.0 && min_seconds <= max_seconds && max_seconds <= 60.0) {
                problems.push(Problem::new(
                    "pretrain.min_seconds",
                    format!("need 0 < min_seconds <= max_seconds <= 60, got {min_seconds} and {max_seconds}"),
                    "the demo uses 1.0 and 3.0",
                ));
            }
        }
        for (i, task) in self.tasks.iter().enumerate() {
            let key = format!("tasks.{i}");
            let valid_name = !task.name.is_empty()
                && task
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                problems.push(Problem::new(
                    format!("{key}.name"),
                    format!("`{}` is not a valid task name", task.name),
                    "use letters, digits, - and _",
                ));
            }
            if self.tasks[..i].iter().any(|t| t.name == task.name) {
                problems.push(Problem::new(
                    format!("{key}.name"),
                    format!("task `{}` appears twice", task.name),
                    "give each task its own name",
                ));
            }
            if let TaskSource::Dataset { name, .. } = &task.source {
                if dataset(name).is_none() {
                    let known: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
                    problems.push(Problem::new(
                        format!("{key}.source.name"),
                        format!("no dataset called `{name}`"),
                        format!("registered datasets: {}", known.join(", ")),
                    ));
                }
            }
            let window = task.window();
            if !(window.is_finite() && window > min_window) {
                problems.push(Problem::new(
                    format!("{key}.window_seconds"),
                    format!("{window} s is too short"),
                    "LAPE uses 1 s for keywords and up to 12 s for speakers",
                ));
            }
            if let TaskSource::Synthetic { per_class, .. } = task.source {
                if per_class.train == 0 || per_class.valid == 0 || per_class.test == 0 {
                    problems.push(Problem::new(
                        format!("{key}.source.per_class"),
                        "every split needs at least one clip per class",
                        "the demo uses train 100, valid 50, test 200",
                    ));
                }
            }
        }
        problems
    }

    /// Files and folders the spec names that do not exist, with keys relative to the spec root.
    pub fn missing_paths(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match &self.pretrain {
            PretrainSource::Folder { path } if !path.is_dir() => problems.push(Problem::new(
                "data.pretrain.path",
                format!("folder {} does not exist", path.display()),
                "point it at a folder of .wav/.flac files",
            )),
            PretrainSource::Csv { path, .. } if !path.is_file() => problems.push(Problem::new(
                "data.pretrain.path",
                format!("file {} does not exist", path.display()),
                "for make_tasks.sh output use OUT/pretrain.csv",
            )),
            _ => {}
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if let TaskSource::Dataset { name, root } = &task.source {
                if !root.is_dir() {
                    let layout = dataset(name).map_or("", |d| d.layout);
                    problems.push(Problem::new(
                        format!("data.tasks.{i}.source.root"),
                        format!("folder {} does not exist", root.display()),
                        format!("point it at the dataset: {layout}"),
                    ));
                }
            }
            let Some(manifest) = task.source.manifest_path() else {
                continue;
            };
            if manifest.is_file() {
                continue;
            }
            let (key, hint) = match &task.source {
                TaskSource::MakeTasks { root, .. } if !root.is_dir() => (
                    format!("data.tasks.{i}.source.root"),
                    format!("folder {} does not exist; create it with scripts/make_tasks.sh {} small (docs/data.md)", root.display(), root.display()),
                ),
                TaskSource::MakeTasks { .. } => (
                    format!("data.tasks.{i}.source.task"),
                    "make_tasks.sh writes the tasks kws, instrument and pitch".to_owned(),
                ),
                _ => (format!("data.tasks.{i}.source.path"), "a manifest is a CSV with columns path,label,split".to_owned()),
            };
            problems.push(Problem::new(
                key,
                format!("{} does not exist", manifest.display()),
                hint,
            ));
        }
        problems
    }
}
