//! # slicer
//!
//! SLICER (Seth, Ghosh, Umesh, Manocha, ICASSP 2023) low-resource self-supervised audio
//! representation learning, and the LAPE benchmark that evaluates it.
//!
//! The modules follow the data flow: [`audio`] (decode, resample, window) →
//! [`features`] (log-mel, normalisation) → [`data`] (corpora, tasks) → [`cache`] (feature
//! cache) → [`augment`] (two views) → [`model`] (encoder, heads, queue) → [`loss`] →
//! [`optim`] → [`methods`] (SLICER and the baselines as learners) → [`train`] (step, data
//! thread, loop) → [`checkpoint`] → [`eval`] (frozen
//! embeddings, linear probe, fine-tuning, LAPE table) → [`results`] (Parquet) and [`run`]
//! (run folders and provenance), driven by a typed experiment [`spec`]. [`experiment`] runs
//! the stages of a spec (and suites of specs) as library calls; the `experiment` binary is a
//! thin layer over it. [`data`] also holds the registry of LAPE datasets and their loaders.
//!
//! Saved models: [`pretrained`] (exported folders, the Hub through [`hub`], runs, PyTorch
//! checkpoints), [`export`] (Hub-ready folders) and [`embedder`] (audio to embeddings).
//!
//! Suites ([`experiment::suite`]) run several specs (methods, ablations) with one command and
//! build their comparison table.

pub mod allocator;
pub mod atomic;
pub mod audio;
pub mod augment;
pub mod cache;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod distributed;
pub mod embedder;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod features;
pub mod host;
pub mod hub;
pub mod loss;
pub mod methods;
pub mod model;
pub mod optim;
pub mod pretrained;
pub mod problems;
pub mod progress;
pub mod results;
pub mod rng;
pub mod run;
pub mod spec;
pub mod train;

pub use error::{Error, Result};
