//! The model tools: `embed` (audio files to a Parquet table of embeddings), `export` (a
//! run's encoder to a Hub-ready folder) and `convert` (a PyTorch checkpoint to one).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use slicer::device::DeviceSpec;
use slicer::embedder::{EmbedOptions, Embedder};
use slicer::eval::Weights;
use slicer::features::{FrontendConfig, NormStats};
use slicer::pretrained::PretrainedEncoder;
use slicer::results::{write_embeddings, EmbeddingRow};

use crate::bars::Bars;
use crate::launch::{launch, LaunchArgs};

/// A model tool.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed audio files with a model and write a Parquet table
    /// (path, start_s, end_s, embedding[, frames, n_frames]).
    Embed(EmbedArgs),
    /// Write a run's encoder (newest checkpoint) as a Hub-ready folder.
    Export {
        /// The run folder, `results/runs/<run-id>`.
        run_dir: PathBuf,
        /// Output folder (config.json, model.safetensors, README.md).
        out_dir: PathBuf,
        /// Export the EMA teacher instead of the student.
        #[arg(long)]
        teacher: bool,
    },
    /// Pre-train one spec data-parallel over N GPUs (one process per GPU, NCCL).
    Launch(LaunchArgs),
    /// Convert a BYOL-A .pth or LAPE .ckpt checkpoint into a Hub-ready folder.
    Convert {
        /// The PyTorch checkpoint.
        input: PathBuf,
        /// Output folder.
        out_dir: PathBuf,
        /// From a LAPE checkpoint, take the teacher (encoder_k) instead of the student.
        #[arg(long)]
        teacher: bool,
        /// The front end the weights expect: `byol_a`, `lape`, or a YAML file of `frontend`
        /// keys (default: the checkpoint's own, BYOL-A's for a .pth, LAPE's for a .ckpt).
        #[arg(long, value_name = "byol_a|lape|FILE.yaml")]
        frontend: Option<String>,
    },
}

/// `experiment embed` arguments.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// A Hub id (`org/name` or `org/name@revision`), an exported folder, a run folder, or a
    /// .pth/.ckpt file.
    #[arg(long)]
    model: String,
    /// Audio files (WAV or FLAC), or folders: every .wav/.flac below them, sorted.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// Window length in seconds; longer files give one row per window.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Also write frame-level embeddings.
    #[arg(long)]
    frames: bool,
    /// Use the teacher of a run or LAPE checkpoint.
    #[arg(long)]
    teacher: bool,
    /// Log-mel mean, for models without stored statistics (PyTorch checkpoints).
    #[arg(long, requires = "norm_std", allow_negative_numbers = true)]
    norm_mean: Option<f32>,
    /// Log-mel std, with --norm-mean.
    #[arg(long, requires = "norm_mean")]
    norm_std: Option<f32>,
    /// Write the files that embed and report the others, instead of failing.
    #[arg(long)]
    skip_bad_files: bool,
    /// Where the encoder runs: `cpu` or `cuda:N` (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Replace the model's front end: `byol_a`, `lape`, or a YAML file of `frontend` keys
    /// (default: the model's own, recorded in its config.json or implied by its checkpoint).
    #[arg(long, value_name = "byol_a|lape|FILE.yaml")]
    frontend: Option<String>,
}

/// `model` with the front end `choice` names, when given.
fn with_frontend(
    model: PretrainedEncoder,
    choice: Option<&str>,
) -> anyhow::Result<PretrainedEncoder> {
    Ok(match choice {
        Some(choice) => {
            let frontend = FrontendConfig::from_choice(choice, model.config.frontend.n_mels)?;
            model.with_frontend(frontend)?
        }
        None => model,
    })
}

fn weights(teacher: bool) -> Weights {
    if teacher {
        Weights::Teacher
    } else {
        Weights::Student
    }
}

/// Runs a tool.
pub fn run(command: Command, bars: &Bars) -> anyhow::Result<()> {
    match command {
        Command::Embed(args) => embed(args, bars),
        Command::Launch(args) => launch(args, bars),
        Command::Export {
            run_dir,
            out_dir,
            teacher,
        } => {
            let model = slicer::export::export_run(&run_dir, &out_dir, weights(teacher))?;
            println!(
                "exported {} (d={}) to {}",
                model.config.source,
                model.config.d,
                out_dir.display()
            );
            Ok(())
        }
        Command::Convert {
            input,
            out_dir,
            teacher,
            frontend,
        } => {
            let model =
                slicer::export::convert(&input, &out_dir, weights(teacher), frontend.as_deref())?;
            println!(
                "converted {} (d={}) to {}",
                input.display(),
                model.config.d,
                out_dir.display()
            );
            Ok(())
        }
    }
}

/// The files to embed: each file as given (an unreadable one is reported with the others),
/// and every `.wav`/`.flac` below each folder, recursively and sorted.
fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = slicer::data::audio_files(input)?;
            if found.is_empty() {
                anyhow::bail!(
                    "{}: no .wav or .flac files in this folder or below it",
                    input.display()
                );
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn embed(args: EmbedArgs, bars: &Bars) -> anyhow::Result<()> {
    let mut model = with_frontend(
        PretrainedEncoder::load(&args.model, weights(args.teacher))?,
        args.frontend.as_deref(),
    )?;
    model.encoder = model.encoder.to_device(&args.device.open()?)?;
    let norm = match (args.norm_mean, args.norm_std) {
        (Some(mean), Some(std)) if std > 0.0 => Some(NormStats {
            mean,
            std,
            n_clips: 0,
        }),
        (Some(_), Some(std)) => anyhow::bail!("--norm-std must be positive, got {std}"),
        _ => None,
    };
    let options = EmbedOptions {
        window_seconds: args.window,
        frames: args.frames,
        ..EmbedOptions::default()
    };
    let embedder = Embedder::new(model, norm, options)?;
    let inputs = expand_inputs(&args.inputs)?;
    let results = embedder.embed_files(&inputs, bars);
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (path, result) in inputs.iter().zip(results) {
        match result {
            Ok(segments) => rows.extend(segments.into_iter().map(|s| EmbeddingRow {
                path: path.display().to_string(),
                start_s: s.start_s,
                end_s: s.end_s,
                embedding: s.embedding,
                frames: s.frames,
            })),
            Err(e) => {
                eprintln!("error: {e}");
                failed.push(path.display().to_string());
            }
        }
    }
    if !failed.is_empty() && !args.skip_bad_files {
        anyhow::bail!(
            "{} of {} files could not be embedded (listed above); nothing was written. Fix them or pass --skip-bad-files",
            failed.len(),
            inputs.len()
        );
    }
    if rows.is_empty() {
        anyhow::bail!("no file could be embedded; nothing was written");
    }
    write_embeddings(&args.out, &rows)?;
    println!(
        "{} windows from {} files -> {}{}",
        rows.len(),
        inputs.len() - failed.len(),
        args.out.display(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({} files skipped)", failed.len())
        }
    );
    Ok(())
}
