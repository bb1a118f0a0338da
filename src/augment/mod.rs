//! The SLICER augmentations (docs/method.md §3): random-partner log-mixup-exp with a memory bank,
//! random resize crop, and k-mix (cluster-guided mixup), producing two views per clip.

mod kmix;
mod kmix_bank;
mod mixup;
mod rrc;
mod views;

pub use kmix::{descriptor, spherical_kmeans, Kmix, KmixConfig, PartnerPolicy};
pub use mixup::{log_mixup_exp, mixup, MemoryBank, MixupConfig};
pub use rrc::{bicubic_resize, crop_resize, random_resize_crop, CropBox, RrcConfig};
pub use views::{AugmentConfig, KmixPlacement, TwoViews};
