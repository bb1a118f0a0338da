//! Run folders: `<results>/runs/<yyyymmdd-hhmmss>-<name>-<hash8>/` holding the resolved spec
//! and the provenance of the run (spec hash, seed, git commit, toolchain and crate versions).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::results::{read_scores, ScoreRow};
use crate::spec::LoadedSpec;

/// What produced a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Run id (the folder name).
    pub run_id: String,
    /// Spec name.
    pub spec_name: String,
    /// Spec file as given.
    pub spec_file: PathBuf,
    /// blake3 of the resolved spec.
    pub spec_hash: String,
    /// Master seed.
    pub seed: u64,
    /// `--set` overrides as given.
    pub overrides: Vec<String>,
    /// `git rev-parse HEAD` of the working directory, if it is a repository.
    pub git_commit: Option<String>,
    /// Whether tracked files outside `results/` had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The commit the running binary was built from (it can differ from `git_commit` when
    /// the checkout moved on after the build).
    #[serde(default)]
    pub build_commit: Option<String>,
    /// Whether the binary was built from a tree with uncommitted changes.
    #[serde(default)]
    pub build_dirty: Option<bool>,
    /// This crate's version.
    pub slicer_version: String,
    /// The compiler that built it.
    pub rustc: String,
    /// Locked versions of the crates that decide numerical results.
    pub dependencies: BTreeMap<String, String>,
    /// Start time, UTC, RFC 3339.
    pub created_at: String,
    /// The machine (CPU model and vector extensions decide the last bits of every result;
    /// absent in runs made before it was recorded).
    #[serde(default)]
    pub host: Option<crate::host::Host>,
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Run id.
    pub id: String,
    /// Folder path.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates the run folder under `<output.root>/runs` and writes `spec.yaml` and `run.json`.
    pub fn create(loaded: &LoadedSpec) -> Result<Self> {
        let spec = &loaded.spec;
        let now = chrono::Utc::now();
        let hash = spec.hash();
        let base = format!(
            "{}-{}-{}",
            now.format("%Y%m%d-%H%M%S"),
            spec.name,
            &hash[..8]
        );
        let runs = spec.output.root.join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
        // Two runs started in the same second get distinct folders: create_dir is atomic.
        let (id, path) = (1..)
            .map(|k| {
                if k == 1 {
                    base.clone()
                } else {
                    format!("{base}-{k}")
                }
            })
            .map(|id| (id.clone(), runs.join(&id)))
            .find_map(|(id, path)| match std::fs::create_dir(&path) {
                Ok(()) => Some(Ok((id, path))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(Error::io(&path, e))),
            })
            .expect("an unused name exists")?;
        let (git_commit, git_dirty) = git_state();
        let build_commit = env!("SLICER_BUILD_COMMIT");
        if let Some(head) = git_commit
            .as_deref()
            .filter(|h| !build_commit.is_empty() && *h != build_commit)
        {
            // A stale binary, or a build folder shared with another checkout (cargo then
            // reuses that checkout's build-script output, commit included).
            tracing::warn!(
                "the binary records commit {build_commit} but the checkout is at {head}: run.json keeps both; rebuild (cargo build --release) so they agree"
            );
        }
        let provenance = Provenance {
            run_id: id.clone(),
            spec_name: spec.name.clone(),
            spec_file: loaded.path.clone(),
            spec_hash: hash,
            seed: spec.seed,
            overrides: loaded.overrides.clone(),
            git_commit,
            git_dirty,
            build_commit: Some(build_commit)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            build_dirty: env!("SLICER_BUILD_DIRTY").parse().ok(),
            slicer_version: env!("CARGO_PKG_VERSION").to_owned(),
            rustc: env!("SLICER_RUSTC_VERSION").to_owned(),
            dependencies: env!("SLICER_DEPENDENCY_VERSIONS")
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            created_at: now.to_rfc3339(),
            host: Some(crate::host::Host::detect()),
        };
        let run = Self { id, path };
        crate::atomic::write(
            &run.path.join("spec.yaml"),
            loaded.resolved_yaml().as_bytes(),
        )?;
        run.write_json("run.json", &provenance)?;
        Ok(run)
    }

    /// Opens an existing run folder (to resume it).
    pub fn open(path: &Path) -> Result<Self> {
        let run = Self {
            id: String::new(),
            path: path.to_owned(),
        };
        Ok(Self {
            id: run.provenance()?.run_id,
            ..run
        })
    }

    /// The folder's `run.json`.
    pub fn provenance(&self) -> Result<Provenance> {
        let path = self.file("run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            what: "a run folder's run.json".into(),
            source,
        })
    }

    /// The run folders under `<results_root>/runs` made by the spec hashing to `spec_hash`
    /// (full hex), oldest first.
    pub fn of_spec(results_root: &Path, spec_hash: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for path in run_folders_with(results_root, "run.json")? {
            let run = Self::open(&path)?;
            if run.made_by(spec_hash)? {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Whether this run was made by the spec hashing to `spec_hash` today: the hash it
    /// recorded, or, for a run recorded in an older layout of the spec (before the `method:`
    /// block), the hash of its `spec.yaml` as today's code reads it.
    pub fn made_by(&self, spec_hash: &str) -> Result<bool> {
        if self.provenance()?.spec_hash == spec_hash {
            return Ok(true);
        }
        Ok(self.recorded_spec_hash().as_deref() == Some(spec_hash))
    }

    /// The hash of the run's `spec.yaml` as today's code reads it (`None` when it cannot),
    /// computed once per run folder and process: a run never rewrites its spec.
    fn recorded_spec_hash(&self) -> Option<String> {
        static HASHES: OnceLock<Mutex<HashMap<PathBuf, Option<String>>>> = OnceLock::new();
        let hashes = HASHES.get_or_init(Default::default);
        if let Some(known) = hashes.lock().expect("no panic holds it").get(&self.path) {
            return known.clone();
        }
        let hash = match crate::spec::read_recorded(&self.file("spec.yaml")) {
            Ok(spec) => Some(spec.hash()),
            // A spec.yaml that today's code cannot read was made by no spec of today.
            Err(e) => {
                tracing::debug!("{e}");
                None
            }
        };
        hashes
            .lock()
            .expect("no panic holds it")
            .insert(self.path.clone(), hash.clone());
        hash
    }

    /// Whether every stage finished (the scores are written last).
    pub fn is_scored(&self) -> bool {
        self.file("scores.parquet").is_file()
    }

    /// Reads a JSON file written by [`RunDir::write_json`].
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.path.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            what: format!("the run's {name}"),
            source,
        })
    }

    /// Writes `value` as pretty JSON to `name` in the run folder, atomically.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let path = self.path.join(name);
        let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
            path: path.clone(),
            what: format!("the run's {name}"),
            source,
        })?;
        crate::atomic::write(&path, text.as_bytes())
    }

    /// A file inside the run folder.
    pub fn file(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

/// The folders under `<results_root>/runs` that hold `file`, oldest (by name) first; none
/// when there is no `runs` folder yet.
pub fn run_folders_with(results_root: &Path, file: &str) -> Result<Vec<PathBuf>> {
    let runs = results_root.join("runs");
    let entries = match std::fs::read_dir(&runs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&runs, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(file).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The newest run folder under `<results_root>/runs` made by the spec named `spec_name` (as
/// its `run.json` records it: a suite member `study-slicer` is not `slicer`) that holds
/// `file`; `None` when there is none.
pub fn newest_run(results_root: &Path, spec_name: &str, file: &str) -> Result<Option<RunDir>> {
    for path in run_folders_with(results_root, file)?.into_iter().rev() {
        let run = RunDir::open(&path)?;
        if run.provenance()?.spec_name == spec_name {
            return Ok(Some(run));
        }
    }
    Ok(None)
}

/// Every score of the newest scored run of each spec (name and hash) under `results_root/runs`.
pub fn latest_scores(results_root: &Path) -> Result<Vec<ScoreRow>> {
    let dirs = run_folders_with(results_root, "scores.parquet")?;
    let mut newest: BTreeMap<(String, String), Vec<ScoreRow>> = BTreeMap::new();
    for dir in dirs {
        let rows = read_scores(&dir.join("scores.parquet"))?;
        if let Some(first) = rows.first() {
            newest.insert((first.spec.clone(), first.spec_hash.clone()), rows);
        }
    }
    Ok(newest.into_values().flatten().collect())
}

fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and(run(&[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
        ]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}
