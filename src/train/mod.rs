//! SLICER pre-training: the data pipeline, the training step and the loop around it.

mod batches;
mod config;
mod step;
mod throughput;
mod trainer;

pub use batches::{fit_centroids, Batch, BatchPlan, Batches};
pub use config::TrainConfig;
pub use throughput::{throughput, Throughput};
pub use trainer::{pretrain, pretrain_on, Pretrained};

pub use step::{
    dropout_streams, rank_draw, slicer_step, EmaSchedule, Fidelity, InstanceLoss, ObjectiveConfig,
    StepBatch, StepDropout, StepLosses, StepResult,
};
