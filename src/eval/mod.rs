//! Evaluation: frozen-encoder embeddings, the linear probe (docs/method.md §9.3), the bag-of-frames
//! floor it is compared with, and the LAPE summary table.

mod config;
mod curve;
mod embed;
mod few_shot;
mod finetune;
mod floor;
mod logistic;
mod precomputed;
mod probe;
mod scoring;
mod seeds;
mod summary;

pub use config::{
    BuiltinEncoder, EncoderChoice, EvalConfig, ExternalEncoder, InputNormalization,
    PrecomputedEmbeddings, Weights,
};
pub use curve::{curve_points, CurvePoint, CurveTable, FLOOR_ENCODER};
pub use embed::{
    embed_frames, embed_spectrograms, encoder_hash, encoder_span, normalised_batch, recalibrated,
    Pooling,
};
pub use few_shot::{few_shot_scores, per_class_subset};
pub use finetune::{finetune, FinetuneData};
pub use floor::bag_of_frames;
pub use logistic::{logistic_probe, LogisticOutcome, L2_GRID};
pub use precomputed::read_precomputed;
pub use probe::{linear_probe, FewShotConfig, ProbeConfig, ProbeOutcome, ProbeSet, Protocol};
pub use scoring::{
    finetune_scores, linear_scores, logistic_scores, mean_std, ProbeInputs, ScoreContext,
};
pub use seeds::{
    paired_differences, sample_mean_sd, seed_rows, t_975, Interval, PairedDifference, SeedRow,
    SeedRun, SeedTable, BASELINE_ENCODER, MEAN_TASK,
};
pub use summary::{lape_table, Cell, LapeRow, LapeTable, TABLE_METRIC};
