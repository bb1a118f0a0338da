//! Spec composition: a spec may name a `base:` spec (a path relative to itself) whose values
//! it inherits; its own values are merged over the base's, mapping by mapping (a list or a
//! scalar replaces the base's whole; `null` switches a component off; a `method:` that names
//! another method's `type` replaces the base's block).

use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

use super::method_block;
use super::SpecError;

/// The deepest `base:` chain followed (a guard against cycles).
const MAX_DEPTH: usize = 8;

/// Merges the spec tree `patch` over `base`: mappings key by key, anything else replaces,
/// and a `method:` naming another `type` replaces the base's block.
pub fn merge(base: &mut Value, mut patch: Value) {
    if let (Value::Mapping(base), Value::Mapping(patch)) = (&mut *base, &mut patch) {
        method_block::before_merge(base, patch);
    }
    merge_values(base, patch);
}

/// Merges `patch` over `base`: mappings key by key, anything else replaces.
fn merge_values(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Mapping(base), Value::Mapping(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) => merge_values(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The text of the spec file at `path`.
pub fn read_text(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.to_owned(),
        line: None,
        key: String::new(),
        message: format!("cannot read the spec: {e}"),
        hint: "give the path of a YAML file, e.g. experiments/slicer.yaml".into(),
    })
}

/// Reads `path` as a YAML tree (a mapping), naming the file and line of a syntax error.
pub fn read_tree(path: &Path) -> Result<(String, Value), SpecError> {
    let text = read_text(path)?;
    let tree: Value = yaml_serde::from_str(&text).map_err(|e| SpecError {
        file: path.to_owned(),
        line: e.location().map(|l| l.line()),
        key: String::new(),
        message: format!("not valid YAML: {e}"),
        hint: "check the indentation and quoting around that line".into(),
    })?;
    if !tree.is_mapping() {
        return Err(SpecError {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            message: "the document is not a mapping of keys to values".into(),
            hint: "a spec is a YAML mapping; see experiments/slicer.yaml".into(),
        });
    }
    Ok((text, tree))
}

/// Removes `base:` from `tree` and returns it as a path relative to `file`'s folder.
pub fn take_base(file: &Path, tree: &mut Value) -> Result<Option<PathBuf>, SpecError> {
    let Some(map) = tree.as_mapping_mut() else {
        return Ok(None);
    };
    match map.remove("base") {
        None => Ok(None),
        Some(Value::String(base)) => Ok(Some(file.parent().unwrap_or(Path::new(".")).join(base))),
        Some(other) => Err(SpecError {
            file: file.to_owned(),
            line: None,
            key: "base".into(),
            message: format!("{other:?} is not a path"),
            hint: "write `base: slicer.yaml` (relative to this file)".into(),
        }),
    }
}

/// `tree` (read from `file`) with its `base:` chain resolved and merged under it.
pub fn resolve(file: &Path, mut tree: Value) -> Result<Value, SpecError> {
    resolve_at(file, &mut tree, 0)?;
    Ok(tree)
}

fn resolve_at(file: &Path, tree: &mut Value, depth: usize) -> Result<(), SpecError> {
    let Some(base_path) = take_base(file, tree)? else {
        return Ok(());
    };
    if depth >= MAX_DEPTH {
        return Err(SpecError {
            file: file.to_owned(),
            line: None,
            key: "base".into(),
            message: format!("more than {MAX_DEPTH} nested bases"),
            hint: "a spec's bases must not form a cycle".into(),
        });
    }
    let (_, mut base) = read_tree(&base_path)?;
    resolve_at(&base_path, &mut base, depth + 1)?;
    merge(
        &mut base,
        std::mem::replace(tree, Value::Mapping(Mapping::new())),
    );
    *tree = base;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_per_mapping_and_replaces_other_values() {
        let mut base: Value =
            yaml_serde::from_str("a: {x: 1, y: [1, 2]}\nb: {kmix: {k: 4}}\nc: 3").unwrap();
        let patch: Value = yaml_serde::from_str("a: {y: [9]}\nb: {kmix: null}\nd: 4").unwrap();
        merge(&mut base, patch);
        let want: Value =
            yaml_serde::from_str("a: {x: 1, y: [9]}\nb: {kmix: null}\nc: 3\nd: 4").unwrap();
        assert_eq!(base, want);
    }

    #[test]
    fn a_base_chain_is_followed_and_a_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "x: 1\ny: 1\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "base: a.yaml\ny: 2\n").unwrap();
        let file = dir.path().join("c.yaml");
        let tree: Value = yaml_serde::from_str("base: b.yaml\nz: 3").unwrap();
        let resolved = resolve(&file, tree).unwrap();
        let want: Value = yaml_serde::from_str("x: 1\ny: 2\nz: 3").unwrap();
        assert_eq!(resolved, want);
        std::fs::write(dir.path().join("loop.yaml"), "base: loop.yaml\n").unwrap();
        let tree: Value = yaml_serde::from_str("base: loop.yaml").unwrap();
        let err = resolve(&file, tree).unwrap_err();
        assert!(err.message.contains("nested bases"), "{err}");
    }
}
