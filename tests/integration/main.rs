//! The integration tests, one binary (each test binary links candle and polars, so one
//! link instead of eleven). The slow end-to-end tests (full runs through the binary, kills and
//! resumes, launches) are `#[ignore]`d: `cargo test` skips them, `cargo test -- --ignored`
//! runs them, and `.ci/run` runs both tiers.

mod audio;
mod cli;
mod common;
mod data;
mod datasets;
mod distributed;
mod experiment;
mod features;
mod methods;
mod model;
mod pretrained;
mod scale;
mod spec;
mod train;
