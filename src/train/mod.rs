//! SLICER pre-training: the training step (and, to come, the loop around it).

mod step;

pub use step::{slicer_step, Fidelity, ObjectiveConfig, StepDropout, StepLosses, StepResult};
