//! The SLICER model: AudioNTT2020Task6 encoder, instance and cluster heads (docs/method.md §4, 5) and the
//! MoCo key queue (docs/method.md §6).

mod autocast;
mod conv;
mod encoder;
mod fused;
mod layers;
mod params;
mod queue;
mod slicer;
#[cfg(test)]
mod testing;

pub use autocast::{autocast, compute_dtype, AutocastGuard, Precision};
pub(crate) use encoder::load_params;
pub use encoder::{pool_max_mean, ConvBlock, Encoder, CHANNELS, MEL_POOLING};
pub use layers::{BatchNorm2d, Conv3x3, Dropout, Linear};
pub use params::{copy_params, ema_update};
pub use queue::KeyQueue;
pub use slicer::{ModelConfig, SlicerNet, SlicerOutput};
