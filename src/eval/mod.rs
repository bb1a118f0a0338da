//! Evaluation: frozen-encoder embeddings, the linear probe (SPEC 9.3), the bag-of-frames
//! floor it is compared with, and the LAPE summary table.

mod config;
mod embed;
mod finetune;
mod floor;
mod probe;
mod scoring;
mod summary;

pub use config::{
    BuiltinEncoder, EncoderChoice, EvalConfig, ExternalEncoder, InputNormalization, Weights,
};
pub use embed::{embed_frames, embed_spectrograms, encoder_hash, Pooling};
pub use finetune::{finetune, FinetuneData};
pub use floor::bag_of_frames;
pub use probe::{linear_probe, ProbeConfig, ProbeOutcome, ProbeSet, Protocol};
pub use scoring::{finetune_scores, linear_scores, mean_std, ProbeInputs, ScoreContext};
pub use summary::{lape_table, latest_scores, Cell, LapeRow, LapeTable, TABLE_METRIC};
