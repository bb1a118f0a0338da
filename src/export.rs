//! `experiment export` and `experiment convert`: Hub-ready model folders (`config.json`,
//! `model.safetensors`, `README.md` model card) from a run of ours or a PyTorch checkpoint.
//! Upload the folder as is (`huggingface-cli upload org/name OUT_DIR`).

use std::path::Path;

use crate::error::Result;
use crate::eval::{lape_table, Weights};
use crate::features::NormStats;
use crate::pretrained::PretrainedEncoder;

/// Exports the newest checkpoint of `run_dir` (student or teacher) into `out_dir`, with a
/// model card that carries the run's rows of the LAPE table (when it has scores).
pub fn export_run(run_dir: &Path, out_dir: &Path, weights: Weights) -> Result<PretrainedEncoder> {
    save_with_card(
        run_dir,
        PretrainedEncoder::from_run(run_dir, weights)?,
        out_dir,
    )
}

/// Writes the run's encoder at its seeded initialisation (what its `random_init` rows
/// score) as an exported folder: the untrained baseline, for harnesses outside this project.
/// Needs no checkpoint, only the run's `spec.yaml` and `norm_stats.json`.
pub fn export_random_init(run_dir: &Path, out_dir: &Path) -> Result<PretrainedEncoder> {
    save_with_card(
        run_dir,
        PretrainedEncoder::random_init_of_run(run_dir)?,
        out_dir,
    )
}

/// Saves `model` of the run in `run_dir` to `out_dir` with its model card (and the run's
/// table, when it has scores).
fn save_with_card(
    run_dir: &Path,
    model: PretrainedEncoder,
    out_dir: &Path,
) -> Result<PretrainedEncoder> {
    let scores = run_dir.join("scores.parquet");
    let table = if scores.is_file() {
        Some(lape_table(&crate::results::read_scores(&scores)?).to_markdown())
    } else {
        None
    };
    model.save(out_dir)?;
    crate::atomic::write(
        &out_dir.join("README.md"),
        model_card(&model, table.as_deref()).as_bytes(),
    )?;
    Ok(model)
}

/// Converts a PyTorch checkpoint (BYOL-A `.pth`, LAPE `.ckpt`) into an exported folder.
/// The front end is the checkpoint's own ([`crate::pretrained::PytorchFormat`]) unless
/// `frontend` names another ([`crate::features::FrontendConfig::from_choice`]); `norm`, when
/// given, is stored as the model's log-mel statistics (checkpoints carry none).
pub fn convert(
    input: &Path,
    out_dir: &Path,
    weights: Weights,
    frontend: Option<&str>,
    norm: Option<NormStats>,
) -> Result<PretrainedEncoder> {
    let mut model =
        PretrainedEncoder::from_pytorch(input, weights)?.with_frontend_choice(frontend)?;
    if norm.is_some() {
        model.config.normalization = norm;
    }
    model.save(out_dir)?;
    crate::atomic::write(
        &out_dir.join("README.md"),
        model_card(&model, None).as_bytes(),
    )?;
    Ok(model)
}

/// The model card: Hub front matter, what the model is, how to use it, its front end, and
/// the LAPE rows when known.
pub fn model_card(model: &PretrainedEncoder, lape_rows: Option<&str>) -> String {
    let c = &model.config;
    let f = &c.frontend;
    let norm = match c.normalization {
        Some(n) => format!(
            "log-mel mean {:.4}, std {:.4} (from {} pre-training clips)",
            n.mean, n.std, n.n_clips
        ),
        None => {
            "none stored: pass statistics when embedding (`--norm-mean`, `--norm-std`)".to_owned()
        }
    };
    let results = lape_rows.map_or_else(
        || "No evaluation was recorded with these weights.".to_owned(),
        |rows| format!("Test accuracy (%) of the run that produced these weights, mean ± std over probe seeds. `linear` selects the probe epoch on the validation split; `linear_lape` is LAPE's max-over-epochs test accuracy and selects on test.\n\n{rows}"),
    );
    format!(
        "---\nlibrary_name: slicer\ntags:\n- audio\n- self-supervised-learning\n- slicer\n- lape\n---\n\n\
# AudioNTT2020 encoder (d={d})\n\n\
An AudioNTT2020Task6 audio encoder (three conv blocks, d={d}) from `slicer`, a Rust \
implementation of SLICER (Seth et al., ICASSP 2023). Source: {source}. Spec hash: {hash}. \
Written by slicer {version}.\n\n\
## Usage\n\n\
```rust\n\
use slicer::embedder::{{EmbedOptions, Embedder}};\n\
use slicer::pretrained::PretrainedEncoder;\n\n\
let model = PretrainedEncoder::from_pretrained(\"ORG/NAME\", \"main\")?;\n\
let embedder = Embedder::new(model, None, EmbedOptions::default())?;\n\
let segments = embedder.embed_file(\"clip.wav\".as_ref())?; // one {d}-d vector per 1 s window\n\
```\n\n\
or `experiment embed --model ORG/NAME clip.wav --out embeddings.parquet`.\n\n\
## Input\n\n\
{sr} Hz mono; log-mel with n_fft {n_fft}, hop {hop}, {pad:?} centre padding, {n_mels} {scale:?}-scale mels \
from {fmin} to {fmax} Hz with {mel_norm:?} filter normalisation, `ln(mel + {offset:e})`; normalisation: {norm}. \
`config.json` holds the front end in full; embedding with another one gives other embeddings. Embeddings are {pooling:?}-pooled over time.\n\n\
## Results\n\n{results}\n",
        d = c.d,
        source = c.source,
        hash = c.spec_hash.as_deref().unwrap_or("none"),
        version = c.slicer_version,
        sr = f.sample_rate,
        n_fft = f.n_fft,
        hop = f.hop_length,
        n_mels = f.n_mels,
        scale = f.mel_scale,
        pad = f.pad_mode,
        mel_norm = f.mel_norm,
        fmin = f.f_min,
        fmax = f.f_max,
        offset = f.log_offset,
        pooling = c.pooling,
    )
}
