//! Typed experiment specs: YAML in, one sub-struct per component, strict about unknown keys,
//! defaults from the recommended column of docs/method.md §13, `--set` overrides, validation before any
//! work, and a canonical hash that names the run.
//!
//! YAML is read with `yaml_serde`, the serde_yaml fork maintained by the YAML organisation:
//! serde_yaml itself is archived (`0.9.34+deprecated`) and serde_yml is flagged unsound
//! (RUSTSEC-2025-0068); yaml_serde keeps serde_yaml's API, including the `Value` tree that
//! `--set` edits.

mod compose;

mod locate;
mod method_block;
mod overrides;

pub use crate::problems::{Problem, SpecError};
pub use compose::{merge, read_tree, resolve, take_base};
pub use overrides::Override;

use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::data::DataConfig;
use crate::device::DeviceSpec;
use crate::eval::{EvalConfig, ProbeConfig};
use crate::features::{FrontendConfig, NormalizationConfig};
use crate::methods::MethodConfig;
use crate::model::{ModelConfig, Precision};
use crate::optim::{LrSchedule, OptimizerConfig};
use crate::train::TrainConfig;

/// The master seed used when a spec does not set one.
pub const DEFAULT_SEED: u64 = 20_261_124;

/// One experiment: what to pre-train on, the front end, and how to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Experiment name, used in the run id; defaults to the spec file's stem.
    #[serde(default)]
    pub name: String,
    /// Master seed: every random stream of the run derives from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Pre-training method and its settings: `type` is `slicer` (default), `byol_a`,
    /// `delores_s`, `delores_m` or `random_init`; the other keys are that method's own.
    #[serde(default)]
    pub method: MethodConfig,
    /// Where the model trains and embeds: `cpu` (default; omitted from the resolved spec) or
    /// `cuda:N` (needs the `cuda` feature).
    #[serde(default, skip_serializing_if = "DeviceSpec::is_cpu")]
    pub device: DeviceSpec,
    /// `f32` (default; omitted from the resolved spec) or `bf16`: convolutions and matmuls
    /// in bf16, BatchNorm statistics, softmax, losses and master weights in f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Log-mel front end (docs/method.md §2.3).
    #[serde(default)]
    pub frontend: FrontendConfig,
    /// Input normalisation (docs/method.md §2.4).
    #[serde(default)]
    pub normalization: NormalizationConfig,
    /// Pre-training corpus and downstream tasks.
    pub data: DataConfig,
    /// Encoder and head sizes (docs/method.md §4, 5).
    #[serde(default)]
    pub model: ModelConfig,
    /// Augmentations (docs/method.md §3).
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Optimiser (docs/method.md §8, 13).
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default = "default_schedule")]
    pub schedule: LrSchedule,
    /// Pre-training loop.
    #[serde(default)]
    pub train: TrainConfig,
    /// Which encoders are evaluated, and how their embeddings are made (docs/method.md §9.3).
    #[serde(default)]
    pub eval: EvalConfig,
    /// Probe protocols and hyperparameters (docs/method.md §9.2, 9.3).
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Where runs and caches are written.
    #[serde(default)]
    pub output: OutputConfig,
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

fn default_schedule() -> LrSchedule {
    LrSchedule::Constant
}

/// Output locations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Results root: runs go to `<root>/runs/<run-id>/`, caches to `<root>/cache/`.
    pub root: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("results"),
        }
    }
}

const SCHEMA_HINT: &str = "run `experiment SPEC --print-config` to see every key with its default; docs/specs.md documents them";

/// A loaded, overridden and validated spec, with the text it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The resolved spec.
    pub spec: ExperimentSpec,
    /// The spec file.
    pub path: PathBuf,
    /// The overrides applied, as given.
    pub overrides: Vec<String>,
    text: String,
}

impl LoadedSpec {
    /// Reads `path`, applies `overrides` and validates every value (paths are checked
    /// separately by [`LoadedSpec::check_paths`]).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, SpecError> {
        Self::from_text(path, compose::read_text(path)?, overrides)
    }

    /// Like [`LoadedSpec::load`] for text already in memory; `path` is used in messages and
    /// a `base:` in the text is resolved relative to it.
    pub fn from_text(path: &Path, text: String, overrides: &[String]) -> Result<Self, SpecError> {
        let spec = match yaml_serde::from_str::<yaml_serde::Value>(&text) {
            Ok(tree) => {
                let mut composed = resolve(path, tree.clone())?;
                normalise_method(path, &text, &mut composed)?;
                if composed == tree {
                    // Complete as written: typed from the text, for exact error lines.
                    parse_text(path, &text)?
                } else {
                    typed_from_tree(path, &text, composed)?
                }
            }
            // The typed parse names the line of the syntax error.
            Err(_) => parse_text(path, &text)?,
        };
        Self::finish(path, text, spec, overrides)
    }

    /// A spec from a composed YAML tree (a suite member); `text` is searched for the lines
    /// of errors and `path` names it.
    pub fn from_tree(
        path: &Path,
        text: String,
        mut tree: yaml_serde::Value,
        overrides: &[String],
    ) -> Result<Self, SpecError> {
        normalise_method(path, &text, &mut tree)?;
        let spec = typed_from_tree(path, &text, tree)?;
        Self::finish(path, text, spec, overrides)
    }

    fn finish(
        path: &Path,
        text: String,
        mut spec: ExperimentSpec,
        overrides: &[String],
    ) -> Result<Self, SpecError> {
        if !overrides.is_empty() {
            let mut tree = yaml_serde::to_value(&spec).expect("a spec always serialises");
            for raw in overrides {
                let bad = |message: String| SpecError {
                    file: path.to_owned(),
                    line: None,
                    key: String::new(),
                    message: format!("--set {raw}: {message}"),
                    hint: SCHEMA_HINT.into(),
                };
                let parsed = Override::parse(raw).map_err(bad)?;
                parsed.apply(&mut tree).map_err(|message| {
                    match method_block::moved_key(raw.trim_start_matches(['+', '~'])) {
                        Some(key) => bad(format!("{message}; the method's settings are in the `method:` block now: --set method.{key}")),
                        None => bad(message),
                    }
                })?;
            }
            spec = method_block::normalise(&mut tree)
                .and_then(|_| from_tree(tree))
                .map_err(|(key, message)| SpecError {
                    file: path.to_owned(),
                    line: None,
                    key,
                    message: format!("after --set {}: {message}", overrides.join(" --set ")),
                    hint: SCHEMA_HINT.into(),
                })?;
        }
        if spec.name.is_empty() {
            spec.name = path
                .file_stem()
                .map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
        }
        let loaded = Self {
            spec,
            path: path.to_owned(),
            overrides: overrides.to_vec(),
            text,
        };
        loaded.report(loaded.spec.problems())?;
        Ok(loaded)
    }

    /// Checks that every file and folder the spec names exists.
    pub fn check_paths(&self) -> Result<(), SpecError> {
        self.report(self.spec.data.missing_paths())
    }

    /// The resolved spec as YAML.
    pub fn resolved_yaml(&self) -> String {
        yaml_serde::to_string(&self.spec).expect("a spec always serialises")
    }

    fn report(&self, problems: Vec<Problem>) -> Result<(), SpecError> {
        match problems.into_iter().next() {
            None => Ok(()),
            Some(p) => Err(SpecError {
                file: self.path.clone(),
                line: locate::locate(
                    &self.text,
                    &p.key.split('.').map(str::to_owned).collect::<Vec<_>>(),
                ),
                key: p.key,
                message: p.message,
                hint: p.hint,
            }),
        }
    }
}

impl ExperimentSpec {
    /// What pre-training reads from this spec.
    pub fn pretrain_setup(&self) -> crate::train::PretrainSetup<'_> {
        crate::train::PretrainSetup {
            spec_hash: self.hash(),
            seed: self.seed,
            method: self.method.name(),
            data: &self.data,
            frontend: &self.frontend,
            augment: &self.augment,
            optimizer: &self.optimizer,
            schedule: &self.schedule,
            train: &self.train,
            precision: self.precision,
            kept_steps: &self.eval.at_steps,
        }
    }

    /// What the pre-training method reads from this spec.
    pub fn method_setup(&self) -> crate::methods::MethodSetup<'_> {
        crate::methods::MethodSetup {
            method: &self.method,
            seed: self.seed,
            n_mels: self.frontend.n_mels,
            model: &self.model,
        }
    }

    /// Every bad value in the spec (empty when it is valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err((field, message)) = self.frontend.check() {
            problems.push(Problem::new(
                format!("frontend.{field}"),
                message,
                "docs/method.md §2.3 gives the standard values",
            ));
        } else if self.frontend.n_mels < crate::model::MEL_POOLING {
            problems.push(Problem::new(
                "frontend.n_mels",
                format!(
                    "{} mel bands is too few: the encoder pools the mel axis by {} (three 2x2 max pools), so it needs at least {}",
                    self.frontend.n_mels,
                    crate::model::MEL_POOLING,
                    crate::model::MEL_POOLING
                ),
                "docs/method.md §2.3 uses 64",
            ));
        }
        problems.extend(
            self.normalization
                .problems()
                .into_iter()
                .map(|p| p.under("normalization")),
        );
        problems.extend(
            self.data
                .problems(&self.frontend)
                .into_iter()
                .map(|p| p.under("data")),
        );
        problems.extend(self.probe.problems().into_iter().map(|p| p.under("probe")));
        problems.extend(
            self.eval
                .problems(self.method.name())
                .into_iter()
                .map(|p| p.under("eval")),
        );
        problems.extend(self.train.problems().into_iter().map(|p| p.under("train")));
        problems.extend(
            self.optimizer
                .problems()
                .into_iter()
                .map(|p| p.under("optimizer")),
        );
        problems.extend(
            self.augment
                .problems()
                .into_iter()
                .map(|p| p.under("augment")),
        );
        problems.extend(self.model.problems().into_iter().map(|p| p.under("model")));
        if let Some(why) = self.device.unsupported() {
            problems.push(Problem::new(
                "device",
                why,
                "or run on `cpu` (--device cpu); docs/gpu.md",
            ));
        }
        if self.precision == Precision::Bf16 && self.device.is_cpu() {
            problems.push(Problem::new(
                "precision",
                "bf16 needs a CUDA device: candle's CPU backend has no bf16 matmul or convolution",
                "set `device: cuda:0`, or keep `precision: f32` on the CPU",
            ));
        }
        problems.extend(
            self.method
                .problems(self.train.batch_size)
                .into_iter()
                .map(|p| p.under("method")),
        );
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(Problem::new(
                "name",
                format!(
                    "`{}` has characters other than letters, digits, - and _",
                    self.name
                ),
                "the name is part of the run folder's name",
            ));
        }
        problems
    }

    /// blake3 of the canonical JSON form of the resolved spec, in hex. `output` and
    /// `data.loading` are left out: where results are written, and whether the corpus is
    /// held in memory or streamed, do not change them.
    pub fn hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.output = OutputConfig::default();
        // In memory or streamed from disk, the batches are the same.
        unhashed.data.loading = crate::data::Loading::Auto;
        let canonical = serde_json::to_vec(&unhashed).expect("a spec always serialises");
        blake3::hash(&canonical).to_hex().to_string()
    }
}

/// Brings the `method:` block of `tree` (read from `path`) to the current layout, with a
/// warning when the file uses the layout before it.
fn normalise_method(
    path: &Path,
    text: &str,
    tree: &mut yaml_serde::Value,
) -> Result<(), SpecError> {
    let upgraded = method_block::normalise(tree).map_err(|(key, message)| SpecError {
        file: path.to_owned(),
        line: locate::locate(text, std::slice::from_ref(&key)),
        key,
        message,
        hint: SCHEMA_HINT.into(),
    })?;
    if upgraded {
        tracing::warn!(
            "{}: `objective:`, `byol_a:` and `delores:` are the layout before the `method:` block; read as `method: {{type: {}, ...}}` (docs/specs.md shows the current layout)",
            path.display(),
            tree.get("method").and_then(|m| m.get("type")).and_then(|t| t.as_str()).unwrap_or("slicer")
        );
    }
    Ok(())
}

/// A spec recorded in a run folder (`spec.yaml`), read by today's code: the layout before the
/// `method:` block is upgraded without a warning, and nothing is validated. Runs made before
/// a layout change are matched to today's specs by this reading's [`ExperimentSpec::hash`].
pub fn read_recorded(path: &Path) -> Result<ExperimentSpec, SpecError> {
    let (text, mut tree) = read_tree(path)?;
    method_block::normalise(&mut tree)
        .and_then(|_| from_tree(tree))
        .map_err(|(key, message)| SpecError {
            file: path.to_owned(),
            line: locate::locate(
                &text,
                &key.split('.').map(str::to_owned).collect::<Vec<_>>(),
            ),
            key,
            message,
            hint: "the run folder's spec.yaml is written by the run; do not edit it".into(),
        })
}

fn parse_text<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(text)).map_err(|e| {
        let key = clean_path(&e.path().to_string());
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        SpecError {
            file: path.to_owned(),
            line,
            key,
            message: strip_location(&inner.to_string()),
            hint: SCHEMA_HINT.into(),
        }
    })
}

fn typed_from_tree<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    tree: yaml_serde::Value,
) -> Result<T, SpecError> {
    from_tree(tree).map_err(|(key, message)| SpecError {
        file: path.to_owned(),
        line: locate::locate(text, &key.split('.').map(str::to_owned).collect::<Vec<_>>()),
        key,
        message,
        hint: SCHEMA_HINT.into(),
    })
}

fn from_tree<T: DeserializeOwned>(tree: yaml_serde::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        (
            clean_path(&e.path().to_string()),
            e.into_inner().to_string(),
        )
    })
}

/// serde_path_to_error writes `.` for the root and `[0]` for sequence items; we use dotted keys.
fn clean_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    path.replace('[', ".").replace(']', "")
}

/// yaml_serde appends " at line L column C"; the line is reported separately.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
