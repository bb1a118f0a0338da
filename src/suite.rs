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
//! ```
//!
//! `members: other_suite.yaml` reuses another suite's member list over this suite's base, so
//! the same comparison runs on another corpus.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use yaml_serde::{Mapping, Value};

use crate::error::Result;
use crate::eval::{lape_table, LapeTable};
use crate::results::read_scores;
use crate::run::RunDir;
use crate::spec::{merge, read_tree, resolve, take_base, LoadedSpec, SpecError};

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// The suite file.
    pub path: PathBuf,
    /// Members in order.
    pub members: Vec<SuiteMember>,
}

/// One member: its short name and its resolved spec (named `<suite>-<member>`).
#[derive(Debug, Clone)]
pub struct SuiteMember {
    /// The member's name within the suite.
    pub name: String,
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
            "a suite has `suite`, `base`, optional `common`, and `members` (a list of spec files or named patches, or another suite file)",
        )
    })?;
    Ok((text, file))
}

impl Suite {
    /// Reads the suite at `path` and resolves every member (`overrides` apply to each).
    pub fn load(path: &Path, overrides: &[String]) -> std::result::Result<Self, SpecError> {
        let (text, file) = parse_suite(path)?;
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
                Member::Inline(map) => (path.to_owned(), text.clone(), Value::Mapping(map)),
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
            if out.iter().any(|m| m.name == name) {
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
            let spec = LoadedSpec::from_tree(&member_path, member_text, tree, overrides).map_err(
                |mut e| {
                    if e.line.is_none() {
                        e.message = format!(
                            "{} (suite member `{name}` over {})",
                            e.message,
                            file.base.display()
                        );
                    }
                    e
                },
            )?;
            out.push(SuiteMember { name, spec });
        }
        Ok(Self {
            name: file.suite,
            path: path.to_owned(),
            members: out,
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
    /// The comparison table: the scores of each member's newest finished run, with the
    /// member's short name in the `spec` column. A member without one is an error naming it.
    pub fn table(&self) -> Result<LapeTable> {
        let mut scores = Vec::new();
        for member in &self.members {
            let run = member.scored_run()?.ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "suite member `{}` has no finished run under {}; run the suite",
                    member.name,
                    member.spec.spec.output.root.join("runs").display()
                ))
            })?;
            scores.extend(
                read_scores(&run.file("scores.parquet"))?
                    .into_iter()
                    .map(|row| crate::results::ScoreRow {
                        spec: member.name.clone(),
                        ..row
                    }),
            );
        }
        Ok(lape_table(&scores))
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
