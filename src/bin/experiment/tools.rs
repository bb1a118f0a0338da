//! The model tools: `embed` (audio files to a Parquet table of embeddings), `export` (a
//! run's encoder to a Hub-ready folder) and `convert` (a PyTorch checkpoint to one).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use slicer::data::hear;
use slicer::device::DeviceSpec;
use slicer::embedder::{EmbedOptions, Embedder};
use slicer::eval::Weights;
use slicer::features::NormStats;
use slicer::pretrained::PretrainedEncoder;
use slicer::results::{write_embeddings, EmbeddingRow};

use crate::bars::Bars;
use crate::launch::{launch, LaunchArgs};

/// A model tool.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed audio files with a model and write a Parquet table
    /// (path, start_s, end_s, embedding[, frames, n_frames, timestamps_ms]).
    Embed(EmbedArgs),
    /// Write a run's encoder (newest checkpoint) as a Hub-ready folder.
    Export {
        /// The run folder, `results/runs/<run-id>`.
        run_dir: PathBuf,
        /// Output folder (config.json, model.safetensors, README.md).
        out_dir: PathBuf,
        /// Export the EMA teacher instead of the student.
        #[arg(long, conflicts_with = "random_init")]
        teacher: bool,
        /// Export the run's seeded initial encoder (its `random_init` rows) instead; needs no
        /// checkpoint.
        #[arg(long)]
        random_init: bool,
    },
    /// Pre-train one spec data-parallel over N GPUs (one process per GPU, NCCL).
    Launch(LaunchArgs),
    /// Write a spec's tasks in the HEAR benchmark's task layout (`OUT/<task>-v1/`), for
    /// hear-eval-kit and other HEAR harnesses; optionally the built-in event task too.
    HearTasks {
        /// The experiment spec whose `data.tasks` to write.
        spec: PathBuf,
        /// Output folder.
        out: PathBuf,
        /// Override a spec value, as for a run (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Also write the event task `events-v1` (the demo's notes on its scenes) with
        /// these clips per split.
        #[arg(long, value_name = "TRAIN,VALID,TEST", value_delimiter = ',')]
        events: Vec<usize>,
    },
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
        /// Store these log-mel statistics in the folder (PyTorch checkpoints carry none), so
        /// the folder embeds without --norm-mean and --norm-std.
        #[command(flatten)]
        norm: NormArgs,
    },
}

/// The log-mel normalisation statistics given on the command line.
#[derive(Debug, Args)]
pub struct NormArgs {
    /// Log-mel mean, for models without stored statistics (PyTorch checkpoints).
    #[arg(long, requires = "norm_std", allow_negative_numbers = true)]
    norm_mean: Option<f32>,
    /// Log-mel std, with --norm-mean.
    #[arg(long, requires = "norm_mean")]
    norm_std: Option<f32>,
}

impl NormArgs {
    /// The statistics, when given; a std that is not positive is an error.
    fn stats(&self) -> anyhow::Result<Option<NormStats>> {
        match (self.norm_mean, self.norm_std) {
            (Some(mean), Some(std)) => Ok(Some(NormStats::given(mean, std)?)),
            _ => Ok(None),
        }
    }
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
    #[arg(long, default_value_t = 1.0, conflicts_with = "frames")]
    window: f64,
    /// One row per file, embedded whole in one pass: its frames (80 ms apart at 16 kHz),
    /// their times in milliseconds, and their pooled embedding.
    #[arg(long)]
    frames: bool,
    /// Use the teacher of a run or LAPE checkpoint.
    #[arg(long)]
    teacher: bool,
    #[command(flatten)]
    norm: NormArgs,
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
            random_init,
        } => {
            let model = if random_init {
                slicer::export::export_random_init(&run_dir, &out_dir)?
            } else {
                slicer::export::export_run(&run_dir, &out_dir, weights(teacher))?
            };
            println!(
                "exported {} (d={}) to {}",
                model.config.source,
                model.config.d,
                out_dir.display()
            );
            Ok(())
        }
        Command::HearTasks {
            spec,
            out,
            set,
            events,
        } => hear_tasks(&spec, &out, &set, &events),
        Command::Convert {
            input,
            out_dir,
            teacher,
            frontend,
            norm,
        } => {
            let model = slicer::export::convert(
                &input,
                &out_dir,
                weights(teacher),
                frontend.as_deref(),
                norm.stats()?,
            )?;
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

/// `experiment hear-tasks`: each task of the spec, then the event task when asked for.
fn hear_tasks(spec: &Path, out: &Path, set: &[String], events: &[usize]) -> anyhow::Result<()> {
    let spec = slicer::spec::LoadedSpec::load(spec, set)?.spec;
    for task in &spec.data.tasks {
        let task = slicer::data::Task::from_config(task, spec.seed)?;
        let written = hear::write_scene_task(&task, spec.frontend.sample_rate, out)?;
        println!(
            "{}: {:?} train/valid/test clips",
            written.dir.display(),
            written.clips
        );
    }
    match *events {
        [] => Ok(()),
        [train, valid, test] => {
            let written = hear::write_event_task("events", [train, valid, test], spec.seed, out)?;
            println!(
                "{}: {:?} train/valid/test clips",
                written.dir.display(),
                written.clips
            );
            Ok(())
        }
        _ => anyhow::bail!(
            "--events takes three clip counts, TRAIN,VALID,TEST (e.g. 120,30,60); got {events:?}"
        ),
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
    let mut model = PretrainedEncoder::load(&args.model, weights(args.teacher))?
        .with_frontend_choice(args.frontend.as_deref())?;
    model.encoder = model.encoder.to_device(&args.device.open()?)?;
    let norm = args.norm.stats()?;
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
                timestamps_ms: s.timestamps_ms,
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
        "{} {} from {} files -> {}{}",
        rows.len(),
        if args.frames { "clips" } else { "windows" },
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
