//! Corpora and tasks: where audio comes from (the built-in synthetic corpus, folders, CSV
//! manifests, the layout of `make_tasks.sh`), how clips are loaded, and their splits.

mod clip;
mod config;
mod corpus;
mod datasets;
pub mod hear;
mod loader;
mod manifest;
mod pretrain;
pub mod synthetic;
mod task;

pub use clip::{ClipAudio, Split};
pub use config::{DataConfig, PretrainSource, SplitSizes, TaskConfig, TaskSource};
pub use corpus::{Loading, PretrainCorpus, AUTO_STREAMING_SAMPLES};
pub use datasets::{dataset, DatasetKind, DatasetRow, DATASETS};
pub use loader::{load_clips, map_clips, ClipLoad, LoadedClips};
pub use manifest::{read_labelled_manifest, ManifestRow};
pub use pretrain::{audio_files, pretrain_clips};
pub use task::{LabelledClip, Task};
