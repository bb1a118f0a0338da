//! Suites: one YAML file that runs several specs on the same corpus, tasks and protocol
//! (methods, ablations) and builds their comparison table.
//!
//! ```yaml
//! suite: baselines              # the suite's name: members are named `<suite>-<member>`
//! base: slicer.yaml             # what every member shares (corpus, tasks, loop, probe)
//! common: {eval: {floor: false}} # merged over the base for every member
//! members:                      # each merged over base + common, in order
//!   - methods/byol_a.yaml       # a spec file (its own `base:` is replaced by the suite's)
//!   - {name: no_kmix, augment: {kmix: null}}   # or an inline patch with a name
//!   - {spec: methods/byol_a.yaml, method: {ema_schedule: cosine}}   # or a file and a patch
//! ```
//!
//! `members: other_suite.yaml` reuses another suite's member list over this suite's base, so
//! the same comparison runs on another corpus.
//!
//! `seeds: [1, 2, 3]` runs every member once per pre-training seed (the spec's `seed`), and
//! the suite then also writes the seed table ([`crate::eval::SeedTable`]): mean ± std over
//! the seeds and the paired gain over `random_init` with its 95 % interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yaml_serde::{Mapping, Value};

use crate::error::Result;
use crate::eval::{curve_points, lape_table, CurveTable, LapeTable, SeedRun, SeedTable};
use crate::results::{read_metrics, read_scores};
use crate::run::RunDir;
use crate::spec::{merge, read_tree, resolve, take_base, LoadedSpec, SpecError};

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// The suite file.
    pub path: PathBuf,
    /// Members in order (with `seeds`, each member once per seed, seeds innermost).
    pub members: Vec<SuiteMember>,
    /// The pre-training seeds of `seeds:` (empty: each member runs with its spec's seed).
    pub seeds: Vec<u64>,
}

/// One member: its short name and its resolved spec (named `<suite>-<member>`).
#[derive(Debug, Clone)]
pub struct SuiteMember {
    /// The member's name within the suite.
    pub name: String,
    /// The member's pre-training seed (its spec's `seed`).
    pub seed: u64,
    /// The member's spec.
    pub spec: LoadedSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    suite: String,
    base: PathBuf,
    #[serde(default)]
    common: Option<Value>,
    #[serde(default)]
    seeds: Vec<u64>,
    members: Members,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Members {
    List(Vec<Member>),
    From(PathBuf),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Member {
    File(PathBuf),
    Inline(Mapping),
}

/// Whether the YAML file at `path` is a suite (has a top-level `suite:` key).
pub fn is_suite(path: &Path) -> bool {
    read_tree(path).is_ok_and(|(_, tree)| tree.get("suite").is_some())
}

fn error(path: &Path, key: &str, message: String, hint: &str) -> SpecError {
    SpecError {
        file: path.to_owned(),
        line: None,
        key: key.to_owned(),
        message,
        hint: hint.to_owned(),
    }
}

fn parse_suite(path: &Path) -> std::result::Result<(String, SuiteFile), SpecError> {
    let (text, tree) = read_tree(path)?;
    let file: SuiteFile = serde_path_to_error::deserialize(tree).map_err(|e| {
        error(
            path,
            &e.path().to_string(),
            e.into_inner().to_string(),
            "a suite has `suite`, `base`, optional `common`, and `members` (a list of spec files, named patches or `{spec: FILE, ...patch}`, or another suite file)",
        )
    })?;
    Ok((text, file))
}

impl Suite {
    /// Reads the suite at `path` and resolves every member (`overrides` apply to each).
    pub fn load(path: &Path, overrides: &[String]) -> std::result::Result<Self, SpecError> {
        Self::load_seeded(path, overrides, None)
    }

    /// [`Suite::load`] with `seeds` in place of the file's `seeds:` when given.
    pub fn load_seeded(
        path: &Path,
        overrides: &[String],
        seeds: Option<&[u64]>,
    ) -> std::result::Result<Self, SpecError> {
        let (text, mut file) = parse_suite(path)?;
        if let Some(seeds) = seeds {
            file.seeds = seeds.to_vec();
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let (_, base_tree) = read_tree(&dir.join(&file.base))?;
        let mut shared = resolve(&dir.join(&file.base), base_tree)?;
        if let Some(common) = file.common {
            merge(&mut shared, common);
        }
        let (members, members_dir) = match file.members {
            Members::List(list) => (list, dir.to_owned()),
            Members::From(other) => {
                let other = dir.join(other);
                let (_, parsed) = parse_suite(&other)?;
                match parsed.members {
                    Members::List(list) => {
                        (list, other.parent().unwrap_or(Path::new(".")).to_owned())
                    }
                    Members::From(_) => {
                        return Err(error(
                            path,
                            "members",
                            format!("{} takes its members from a third suite", other.display()),
                            "point `members:` at a suite that lists its members",
                        ))
                    }
                }
            }
        };
        if members.is_empty() {
            return Err(error(
                path,
                "members",
                "the suite has no members".into(),
                "list at least one spec file or named patch",
            ));
        }
        let mut out: Vec<SuiteMember> = Vec::new();
        for (i, member) in members.into_iter().enumerate() {
            let (member_path, member_text, mut patch) = match member {
                Member::File(file) => {
                    let file = members_dir.join(file);
                    let (member_text, mut tree) = read_tree(&file)?;
                    take_base(&file, &mut tree)?;
                    (file, member_text, tree)
                }
                Member::Inline(mut map) => match map.remove("spec") {
                    None => (path.to_owned(), text.clone(), Value::Mapping(map)),
                    Some(Value::String(file)) => {
                        let file = members_dir.join(file);
                        let (member_text, mut tree) = read_tree(&file)?;
                        take_base(&file, &mut tree)?;
                        merge(&mut tree, Value::Mapping(map));
                        (file, member_text, tree)
                    }
                    Some(other) => {
                        return Err(error(
                            path,
                            &format!("members.{i}.spec"),
                            format!("{other:?} is not a path"),
                            "write `spec: methods/byol_a.yaml` (relative to the suite file) beside the patch's keys",
                        ))
                    }
                },
            };
            let name = match patch.get("name") {
                Some(Value::String(n)) => n.clone(),
                _ if member_path == path => {
                    return Err(error(
                        path,
                        &format!("members.{i}"),
                        "an inline member has no `name`".into(),
                        "give every inline member a `name:`",
                    ))
                }
                _ => member_path
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            };
            if out.iter().any(|m: &SuiteMember| m.name == name) {
                return Err(error(
                    path,
                    &format!("members.{i}"),
                    format!("two members are called `{name}`"),
                    "give each member its own name",
                ));
            }
            if let Some(map) = patch.as_mapping_mut() {
                map.insert("name".into(), format!("{}-{name}", file.suite).into());
            }
            let mut tree = shared.clone();
            merge(&mut tree, patch);
            let seeds: Vec<Option<u64>> = if file.seeds.is_empty() {
                vec![None]
            } else {
                file.seeds.iter().copied().map(Some).collect()
            };
            for seed in seeds {
                let mut tree = tree.clone();
                if let Some(seed) = seed {
                    merge(
                        &mut tree,
                        Value::Mapping(Mapping::from_iter([("seed".into(), seed.into())])),
                    );
                }
                let spec =
                    LoadedSpec::from_tree(&member_path, member_text.clone(), tree, overrides)
                        .map_err(|mut e| {
                            if e.line.is_none() {
                                e.message = format!(
                                    "{} (suite member `{name}` over {})",
                                    e.message,
                                    file.base.display()
                                );
                            }
                            e
                        })?;
                out.push(SuiteMember {
                    name: name.clone(),
                    seed: spec.spec.seed,
                    spec,
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twin) = file.seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(error(
                path,
                "seeds",
                format!("seed {twin} is listed twice"),
                "list each pre-training seed once",
            ));
        }
        Ok(Self {
            name: file.suite,
            path: path.to_owned(),
            members: out,
            seeds: file.seeds,
        })
    }
}

impl Suite {
    /// One spec run once per pre-training seed: a suite named after the spec with one
    /// member, so it gets the seed table too.
    pub fn of_spec(
        path: &Path,
        overrides: &[String],
        seeds: &[u64],
    ) -> std::result::Result<Self, SpecError> {
        if seeds.is_empty() {
            return Err(error(
                path,
                "seeds",
                "no seed given".into(),
                "pass --seeds 1,2,3",
            ));
        }
        let mut members = Vec::new();
        for &seed in seeds {
            let mut with_seed = overrides.to_vec();
            with_seed.push(format!("seed={seed}"));
            let spec = LoadedSpec::load(path, &with_seed)?;
            members.push(SuiteMember {
                name: spec.spec.name.clone(),
                seed,
                spec,
            });
        }
        Ok(Self {
            name: members[0].name.clone(),
            path: path.to_owned(),
            members,
            seeds: seeds.to_vec(),
        })
    }
}

impl SuiteMember {
    /// The run folders of this member's exact spec, oldest first.
    pub fn runs(&self) -> Result<Vec<RunDir>> {
        let spec = &self.spec.spec;
        RunDir::of_spec(&spec.output.root, &spec.hash())
    }

    /// The newest run of this member's exact spec that finished every stage.
    pub fn scored_run(&self) -> Result<Option<RunDir>> {
        Ok(self.runs()?.into_iter().rfind(RunDir::is_scored))
    }
}

impl Suite {
    /// The names of the members, each once, in order.
    pub fn member_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for m in &self.members {
            if !names.contains(&m.name.as_str()) {
                names.push(&m.name);
            }
        }
        names
    }

    /// The comparison table: the scores of each member's newest finished run, with the
    /// member's short name (and seed, in a seeded suite) in the `spec` column. Members
    /// without a finished run are left out with a warning; none at all is an error.
    pub fn table(&self) -> Result<LapeTable> {
        let mut scores = Vec::new();
        for member in &self.members {
            let Some(run) = member.scored_run()? else {
                tracing::warn!(
                    "suite {}: member `{}` (seed {}) has no finished run under {}; left out of the table",
                    self.name,
                    member.name,
                    member.seed,
                    member.spec.spec.output.root.join("runs").display()
                );
                continue;
            };
            let label = if self.seeds.is_empty() {
                member.name.clone()
            } else {
                format!("{} seed {}", member.name, member.seed)
            };
            scores.extend(
                read_scores(&run.file("scores.parquet"))?
                    .into_iter()
                    .map(|row| crate::results::ScoreRow {
                        spec: label.clone(),
                        ..row
                    }),
            );
        }
        if scores.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "suite {}: no member has a finished run; run the suite",
                self.name
            )));
        }
        Ok(lape_table(&scores))
    }

    /// The seed table over every member's finished runs (one per seed); `None` for a suite
    /// without `seeds:`. Members without a finished run are left out (the runs that exist
    /// are reported, with their seed count).
    pub fn seed_table(&self) -> Result<Option<SeedTable>> {
        if self.seeds.is_empty() {
            return Ok(None);
        }
        Ok(Some(SeedTable::new(&self.seed_runs()?)))
    }

    /// The learning curves of a seeded suite evaluated at several steps (`eval.at_steps`):
    /// `None` when no member was.
    pub fn curve_table(&self) -> Result<Option<CurveTable>> {
        if self.seeds.is_empty() {
            return Ok(None);
        }
        // Pre-training seconds to each step of each finished run, from its metrics.
        let mut seconds: BTreeMap<(String, u64), Vec<(u64, f64)>> = BTreeMap::new();
        for member in &self.members {
            let Some(run) = member.scored_run()? else {
                continue;
            };
            let metrics = run.file("metrics.parquet");
            if !metrics.is_file() {
                continue;
            }
            let batch = member.spec.spec.train.batch_size as f64;
            let mut total = 0.0;
            let cumulative = read_metrics(&metrics)?
                .iter()
                .map(|m| {
                    total += batch / m.clips_per_s;
                    (m.step, total)
                })
                .collect();
            seconds.insert((member.name.clone(), member.seed), cumulative);
        }
        let points = curve_points(&self.seed_runs()?, |member, seed, step| {
            let steps = seconds.get(&(member.to_owned(), seed))?;
            steps.iter().find(|(s, _)| *s == step).map(|&(_, t)| t)
        });
        Ok((!points.is_empty()).then_some(CurveTable { points }))
    }

    /// The scores of every member's finished run, with its member name and pre-training
    /// seed (what [`crate::eval::paired_differences`] compares across suites).
    pub fn seed_runs(&self) -> Result<Vec<SeedRun>> {
        let mut runs = Vec::new();
        for member in &self.members {
            if let Some(run) = member.scored_run()? {
                runs.push(SeedRun {
                    member: member.name.clone(),
                    seed: member.seed,
                    scores: read_scores(&run.file("scores.parquet"))?,
                });
            }
        }
        Ok(runs)
    }

    /// Where the suite's table is written: `<output.root of its first member>/suites/<name>`.
    pub fn table_dir(&self) -> PathBuf {
        self.members
            .first()
            .map_or_else(
                || PathBuf::from("results"),
                |m| m.spec.spec.output.root.clone(),
            )
            .join("suites")
            .join(&self.name)
    }
}
