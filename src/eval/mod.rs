//! Evaluation: the linear probe (SPEC 9.3) and the bag-of-frames floor it is compared with.

mod floor;
mod probe;

pub use floor::bag_of_frames;
pub use probe::{linear_probe, ProbeConfig, ProbeOutcome, ProbeSet};
