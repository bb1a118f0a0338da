//! SLICER pre-training: the data pipeline, the training step and the loop around it.

mod batches;
mod config;
mod learner;
mod throughput;
mod trainer;

pub use batches::{fit_centroids, Batch, BatchPlan, Batches};
pub use config::{PretrainSetup, TrainConfig};
pub use throughput::{throughput, Throughput};
pub use trainer::{pretrain_on, Pretrained, Trainer};

pub use learner::{
    dropout_streams, rank_draw, Learner, LearnerStep, NamedLosses, StepBatch, StepDropout,
    StepLosses,
};
