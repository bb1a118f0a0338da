//! Saved encoders: the folder `experiment export` writes (Hub-ready: `config.json`,
//! `model.safetensors` with metadata, `README.md`), loading it from disk or from the Hub,
//! our own run folders, and PyTorch checkpoints (BYOL-A's AudioNTT2020 `.pth` and the
//! official LAPE Lightning `.ckpt`, read with candle's pickle reader: no Python).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{Pooling, Weights};
use crate::features::{FrontendConfig, NormStats};
use crate::hub::{resolve, HubSettings};
use crate::model::{Encoder, CHANNELS};

/// The architecture name written into configs.
pub const ARCHITECTURE: &str = "AudioNTT2020Task6";
/// Weights file of an exported folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Config file of an exported folder.
pub const CONFIG_FILE: &str = "config.json";

/// Everything besides the weights that is needed to embed audio as the encoder was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Always [`ARCHITECTURE`].
    pub architecture: String,
    /// Encoder width.
    pub d: usize,
    /// Dropout between the two linear layers (train mode only).
    pub dropout: f64,
    /// The log-mel front end it was trained with.
    pub frontend: FrontendConfig,
    /// The scalar log-mel statistics of its pre-training data, when known.
    pub normalization: Option<NormStats>,
    /// Pooling used for clip embeddings.
    pub pooling: Pooling,
    /// Where the weights came from (run id, file).
    pub source: String,
    /// Hash of the spec that trained it, when it came from a run of ours.
    pub spec_hash: Option<String>,
    /// slicer version that wrote the config.
    pub slicer_version: String,
}

/// An encoder with its config.
#[derive(Debug)]
pub struct PretrainedEncoder {
    /// How to feed it.
    pub config: EncoderConfig,
    /// The weights, in eval mode by convention.
    pub encoder: Encoder,
}

/// A tensor failure while reading or writing the weights at `path`.
fn tensor_err(path: &Path) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::tensor(format!("{}: encoder weights", path.display()))(e)
}

/// BYOL-A's `features.N` index for (block, layer) and ours.
const BYOLA_FEATURES: [(&str, &str); 6] = [
    ("features.0.", "features_1.0."),
    ("features.1.", "features_1.1."),
    ("features.4.", "features_2.0."),
    ("features.5.", "features_2.1."),
    ("features.8.", "features_3.0."),
    ("features.9.", "features_3.1."),
];

/// Encoder state (names as [`Encoder::state`] with no prefix) from a PyTorch state dict in
/// the LAPE (`encoder_q.encoder.*` / `encoder_k.encoder.*`) or BYOL-A (`features.0.*`,
/// optionally under a prefix) naming.
pub fn rename_pytorch_state(
    tensors: Vec<(String, Tensor)>,
    weights: Weights,
) -> std::result::Result<(PytorchFormat, HashMap<String, Tensor>), String> {
    let lape = match weights {
        Weights::Student => "encoder_q.encoder.",
        Weights::Teacher => "encoder_k.encoder.",
    };
    if tensors.iter().any(|(n, _)| n.starts_with(lape)) {
        let state = tensors
            .into_iter()
            .filter_map(|(n, t)| n.strip_prefix(lape).map(|s| (s.to_owned(), t)))
            .collect();
        return Ok((PytorchFormat::Lape, state));
    }
    let Some(prefix) = tensors
        .iter()
        .find_map(|(n, _)| n.strip_suffix("features.0.weight"))
        .map(str::to_owned)
    else {
        let names: Vec<&str> = tensors.iter().take(6).map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "neither LAPE ({lape}*) nor BYOL-A (features.0.weight) parameter names; found {}",
            names.join(", ")
        ));
    };
    let state = tensors
        .into_iter()
        .filter_map(|(name, t)| {
            let rest = name.strip_prefix(&prefix)?;
            let renamed = BYOLA_FEATURES
                .iter()
                .find_map(|(theirs, ours)| rest.strip_prefix(theirs).map(|r| format!("{ours}{r}")))
                .or_else(|| rest.starts_with("fc.").then(|| rest.to_owned()))?;
            Some((renamed, t))
        })
        .collect();
    Ok((PytorchFormat::ByolA, state))
}

/// Whose PyTorch checkpoint it is, which decides the front end its weights expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PytorchFormat {
    /// A BYOL-A `state_dict` (`features.0.weight`, ...): torchaudio's log-mel
    /// ([`FrontendConfig::byol_a`]).
    ByolA,
    /// A LAPE Lightning checkpoint (`encoder_q.encoder.*`): librosa's log-mel
    /// ([`FrontendConfig::lape`]).
    Lape,
}

impl PytorchFormat {
    /// The front end these weights were trained with, at `n_mels` bands.
    pub fn frontend(self, n_mels: usize) -> FrontendConfig {
        match self {
            PytorchFormat::ByolA => FrontendConfig::byol_a(n_mels),
            PytorchFormat::Lape => FrontendConfig::lape(n_mels),
        }
    }
}

impl PretrainedEncoder {
    /// Builds the encoder for `config` and loads `state` (names as [`Encoder::state`]).
    pub fn from_state(
        config: EncoderConfig,
        state: &HashMap<String, Tensor>,
        origin: &Path,
    ) -> Result<Self> {
        let mut rng = crate::rng::stream(0, "pretrained/skeleton");
        let encoder = Encoder::new(
            config.frontend.n_mels,
            config.d,
            config.dropout,
            &mut rng,
            &Device::Cpu,
        )
        .map_err(tensor_err(origin))?;
        encoder.load_state("", state).map_err(tensor_err(origin))?;
        Ok(Self { config, encoder })
    }

    /// Loads an exported folder (`config.json` + `model.safetensors`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_files(&dir.join(CONFIG_FILE), &dir.join(WEIGHTS_FILE))
    }

    fn from_files(config_path: &Path, weights_path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(config_path).map_err(|e| Error::io(config_path, e))?;
        let config: EncoderConfig = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a slicer encoder config: {e}",
                config_path.display()
            ))
        })?;
        if config.architecture != ARCHITECTURE {
            return Err(Error::Invalid(format!(
                "{}: architecture `{}`, expected `{ARCHITECTURE}`",
                config_path.display(),
                config.architecture
            )));
        }
        let state = candle_core::safetensors::load(weights_path, &Device::Cpu)
            .map_err(tensor_err(weights_path))?;
        Self::from_state(config, &state, weights_path)
    }

    /// `Encoder::from_pretrained`: the exported folder of Hub model `repo` at `revision`,
    /// through the Hub cache (`HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE` honoured). Only
    /// safetensors weights are loaded from the Hub.
    pub fn from_pretrained(repo: &str, revision: &str) -> Result<Self> {
        Self::from_hub(&HubSettings::from_env(), repo, revision)
    }

    /// As [`PretrainedEncoder::from_pretrained`] with explicit settings.
    pub fn from_hub(settings: &HubSettings, repo: &str, revision: &str) -> Result<Self> {
        let config = resolve(settings, repo, revision, CONFIG_FILE)?;
        let weights = resolve(settings, repo, revision, WEIGHTS_FILE)?;
        Self::from_files(&config, &weights)
    }

    /// The newest checkpoint of one of our run folders, with the run's front end and
    /// pre-training normalisation statistics.
    pub fn from_run(run_dir: &Path, weights: Weights) -> Result<Self> {
        let root = run_dir.join("checkpoints");
        let latest = crate::checkpoint::list(&root)?
            .pop()
            .ok_or_else(|| Error::Dataset {
                path: root.clone(),
                message: "no checkpoint in this run; pre-train it first".into(),
            })?;
        Self::from_checkpoint(run_dir, &latest, weights)
    }

    /// The checkpoint folder `checkpoint` of the run in `run_dir`, with the run's front end
    /// and pre-training normalisation statistics.
    pub fn from_checkpoint(run_dir: &Path, checkpoint: &Path, weights: Weights) -> Result<Self> {
        let spec = crate::spec::LoadedSpec::load(&run_dir.join("spec.yaml"), &[])?.spec;
        let (_, tensors) = crate::checkpoint::load(checkpoint, &Device::Cpu)?;
        let state = tensors.file(match weights {
            Weights::Student => "student",
            Weights::Teacher => "teacher",
        })?;
        let state: HashMap<String, Tensor> = state
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix("encoder.")
                    .map(|s| (s.to_owned(), t.clone()))
            })
            .collect();
        let name = checkpoint
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let config = Self::run_config(run_dir, &spec, &format!("{weights:?}, {name}"));
        Self::from_state(config, &state, checkpoint)
    }

    /// A run's encoder at its seeded initialisation: what the run's `random_init` rows
    /// score, with the run's normalisation statistics.
    pub fn random_init_of_run(run_dir: &Path) -> Result<Self> {
        let spec = crate::spec::LoadedSpec::load(&run_dir.join("spec.yaml"), &[])?.spec;
        let encoder = crate::methods::initial_encoder(&spec.method_setup(), &Device::Cpu)
            .map_err(Error::tensor("initialising the random_init encoder"))?;
        Ok(Self {
            config: Self::run_config(run_dir, &spec, "random init"),
            encoder,
        })
    }

    /// The config of an encoder of the run in `run_dir` (`what`: which weights).
    fn run_config(run_dir: &Path, spec: &crate::spec::ExperimentSpec, what: &str) -> EncoderConfig {
        let normalization = std::fs::read_to_string(run_dir.join("norm_stats.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let run = run_dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        EncoderConfig {
            architecture: ARCHITECTURE.into(),
            d: spec.model.d,
            dropout: spec.model.dropout,
            frontend: spec.frontend.clone(),
            normalization,
            pooling: spec.eval.pooling,
            source: format!("{run} ({what})"),
            spec_hash: Some(spec.hash()),
            slicer_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// A PyTorch checkpoint: BYOL-A's `.pth` state dict or a LAPE Lightning `.ckpt` (the
    /// student or teacher encoder). The width and mel count come from the weight shapes;
    /// the front end is the one its authors' code computes ([`PytorchFormat::frontend`]:
    /// torchaudio's for BYOL-A, librosa's for LAPE; replace it with
    /// [`PretrainedEncoder::with_frontend`]); no normalisation statistics are known.
    pub fn from_pytorch(path: &Path, weights: Weights) -> Result<Self> {
        let bad = |message: String| Error::Invalid(format!("{}: {message}", path.display()));
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let tensors = match candle_core::pickle::read_all_with_key(path, Some("state_dict")) {
            Ok(t) if !t.is_empty() => t,
            _ => candle_core::pickle::read_all(path)
                .map_err(|e| bad(format!("not a PyTorch checkpoint candle can read: {e}")))?,
        };
        let (format, state) = rename_pytorch_state(tensors, weights).map_err(bad)?;
        let shape = |name: &str| {
            state
                .get(name)
                .map(|t| t.dims().to_vec())
                .ok_or_else(|| bad(format!("no `{name}` after renaming")))
        };
        let (fc0, fc3) = (shape("fc.0.weight")?, shape("fc.3.weight")?);
        let n_mels = fc0[1] / CHANNELS * 8;
        let state = state
            .into_iter()
            .map(|(n, t)| {
                let t = if n.ends_with("num_batches_tracked") {
                    t
                } else {
                    t.to_dtype(DType::F32)?
                };
                Ok((n, t))
            })
            .collect::<candle_core::Result<HashMap<_, _>>>()
            .map_err(tensor_err(path))?;
        let config = EncoderConfig {
            architecture: ARCHITECTURE.into(),
            d: fc3[0],
            dropout: 0.3,
            frontend: format.frontend(n_mels),
            normalization: None,
            pooling: Pooling::MaxMean,
            source: path.display().to_string(),
            spec_hash: None,
            slicer_version: env!("CARGO_PKG_VERSION").into(),
        };
        Self::from_state(config, &state, path)
    }

    /// Loads `source`: an exported folder, a run folder, a `.pth`/`.ckpt` file, or a Hub id
    /// `org/name` (optionally `@revision`).
    pub fn load(source: &str, weights: Weights) -> Result<Self> {
        let path = Path::new(source);
        let looks_like_path = source.starts_with(['/', '.', '~'])
            || source.matches('/').count() > 1
            || path.extension().is_some_and(|e| {
                ["pth", "ckpt", "pt", "safetensors", "json"].contains(&e.to_string_lossy().as_ref())
            });
        if looks_like_path && !path.exists() {
            return Err(Error::Dataset {
                path: path.to_owned(),
                message: "no such file or folder; a model is an exported folder (config.json), a run folder (run.json), a BYOL-A .pth or LAPE .ckpt file, or a Hub id `org/name[@revision]`".into(),
            });
        }
        if path.join(CONFIG_FILE).is_file() {
            return Self::from_dir(path);
        }
        if path.join("run.json").is_file() {
            return Self::from_run(path, weights);
        }
        if path
            .extension()
            .is_some_and(|e| e == "pth" || e == "ckpt" || e == "pt")
        {
            return Self::from_pytorch(path, weights);
        }
        if path.exists() {
            return Err(Error::Invalid(format!(
                "{source}: not an exported model folder (config.json), a run folder (run.json) or a .pth/.ckpt file"
            )));
        }
        let (repo, revision) = source.split_once('@').unwrap_or((source, "main"));
        Self::from_pretrained(repo, revision)
    }

    /// The same weights fed by the front end `choice` names (`byol_a`, `lape`, or a YAML file
    /// of `frontend` keys), or unchanged when there is no choice.
    pub fn with_frontend_choice(self, choice: Option<&str>) -> Result<Self> {
        match choice {
            Some(choice) => {
                let frontend = FrontendConfig::from_choice(choice, self.config.frontend.n_mels)?;
                self.with_frontend(frontend)
            }
            None => Ok(self),
        }
    }

    /// The same weights fed by `frontend` (the mel count must match the weights).
    pub fn with_frontend(mut self, frontend: FrontendConfig) -> Result<Self> {
        if frontend.n_mels != self.config.frontend.n_mels {
            return Err(Error::Invalid(format!(
                "{}: the front end makes {} mel bands, the weights take {}; set n_mels to {}",
                self.config.source,
                frontend.n_mels,
                self.config.frontend.n_mels,
                self.config.frontend.n_mels
            )));
        }
        self.config.frontend = frontend;
        Ok(self)
    }

    /// Writes `config.json` and `model.safetensors` (encoder state plus metadata:
    /// architecture, d, front end, spec hash) into `dir`, atomically each.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let state = self.encoder.state("").map_err(tensor_err(&weights_path))?;
        let config_json = serde_json::to_string_pretty(&self.config).expect("serialisable");
        let metadata = HashMap::from([
            ("format".to_owned(), "pt".to_owned()),
            ("architecture".to_owned(), ARCHITECTURE.to_owned()),
            ("d".to_owned(), self.config.d.to_string()),
            (
                "frontend".to_owned(),
                serde_json::to_string(&self.config.frontend).expect("serialisable"),
            ),
            (
                "spec_hash".to_owned(),
                self.config.spec_hash.clone().unwrap_or_default(),
            ),
            ("config".to_owned(), config_json.clone()),
        ]);
        let data: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = state
            .iter()
            .map(|(name, t)| -> candle_core::Result<_> {
                let (bytes, dtype) = match t.dtype() {
                    DType::I64 => (
                        t.flatten_all()?
                            .to_vec1::<i64>()?
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect(),
                        safetensors::Dtype::I64,
                    ),
                    _ => (
                        t.to_dtype(DType::F32)?
                            .flatten_all()?
                            .to_vec1::<f32>()?
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect(),
                        safetensors::Dtype::F32,
                    ),
                };
                Ok((name.clone(), bytes, t.dims().to_vec(), dtype))
            })
            .collect::<candle_core::Result<_>>()
            .map_err(tensor_err(&weights_path))?;
        let views = data
            .iter()
            .map(|(name, bytes, shape, dtype)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::external(format!(
                "{}: tensor views",
                weights_path.display()
            )))?;
        let bytes = safetensors::tensor::serialize(views, Some(metadata)).map_err(
            Error::external(format!("{}: serialising", weights_path.display())),
        )?;
        crate::atomic::write(&weights_path, &bytes)?;
        crate::atomic::write(&dir.join(CONFIG_FILE), config_json.as_bytes())
    }
}
