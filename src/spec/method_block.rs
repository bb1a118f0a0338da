//! The `method:` block in a YAML tree, before it is typed: the shorthand `method: byol_a`, the
//! rule that a patch naming another method's `type` replaces the block instead of merging
//! into it, and the layout before the block (`method: <name>` beside the `objective:`,
//! `byol_a:` and `delores:` sections), which run folders made before 2026-11-27 record and
//! which is still read.

use yaml_serde::{Mapping, Value};

/// The sections of the layout before the `method:` block.
const OLD_SECTIONS: [&str; 3] = ["objective", "byol_a", "delores"];

/// DeLoRes-M's settings that the old layout kept in `objective:`.
const DELORES_M_OBJECTIVE_KEYS: [&str; 5] = [
    "ema_momentum",
    "ema_schedule",
    "temperature",
    "queue_size",
    "mask_same_clip",
];

/// The key under `method:` that an old-layout key path (`objective.queue_size`) moved to.
pub fn moved_key(path: &str) -> Option<&str> {
    OLD_SECTIONS
        .iter()
        .find_map(|section| path.strip_prefix(section)?.strip_prefix('.'))
}

/// `method: <name>` as the block `{type: <name>}`; anything else as it is.
fn as_block(method: &mut Value) {
    if let Value::String(name) = method {
        *method = Value::Mapping(Mapping::from_iter([(
            "type".into(),
            Value::String(std::mem::take(name)),
        )]));
    }
}

/// The `type` a `method:` block names (a block without one is SLICER's).
fn block_type(method: &Value) -> Option<&str> {
    match method {
        Value::String(name) => Some(name),
        Value::Mapping(map) => Some(map.get("type").and_then(Value::as_str).unwrap_or("slicer")),
        _ => None,
    }
}

/// Prepares `base`'s and `patch`'s `method:` for a key-by-key merge: both as blocks, and the
/// base's dropped when the patch names another `type` (its settings belong to the other
/// method).
pub fn before_merge(base: &mut Mapping, patch: &mut Mapping) {
    let Some(patched) = patch.get_mut("method") else {
        return;
    };
    let names_type = matches!(patched, Value::String(_))
        || patched.as_mapping().is_some_and(|m| m.contains_key("type"));
    as_block(patched);
    let patch_type = block_type(patched).map(str::to_owned);
    if let Some(current) = base.get_mut("method") {
        as_block(current);
        if names_type && block_type(current).map(str::to_owned) != patch_type {
            base.remove("method");
        }
    }
}

/// Brings `tree` (a whole spec) to the current layout: the old sections folded into the
/// `method:` block, the shorthand expanded, and a block without `type` made SLICER's.
/// Returns whether the old layout was read; an error is `(key, message)`.
pub fn normalise(tree: &mut Value) -> Result<bool, (String, String)> {
    let Some(map) = tree.as_mapping_mut() else {
        return Ok(false);
    };
    let upgraded = upgrade_old_layout(map)?;
    let method = map
        .entry("method".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    as_block(method);
    if let Value::Mapping(block) = method {
        if !block.contains_key("type") {
            block.insert("type".into(), "slicer".into());
        }
    }
    Ok(upgraded)
}

/// Folds the old layout's sections into a `method:` block holding what that method reads.
fn upgrade_old_layout(map: &mut Mapping) -> Result<bool, (String, String)> {
    let Some(first_old) = OLD_SECTIONS.iter().find(|k| map.contains_key(**k)) else {
        return Ok(false);
    };
    let name = match map.get("method") {
        None => "slicer".to_owned(),
        Some(Value::String(name)) => name.clone(),
        Some(Value::Mapping(block)) if block.len() == 1 && block.contains_key("type") => block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("slicer")
            .to_owned(),
        Some(_) => {
            return Err((
                (*first_old).to_owned(),
                format!(
                    "`{first_old}:` belongs to the layout before the `method:` block and cannot sit beside one; move its keys into `method:` (docs/specs.md)"
                ),
            ))
        }
    };
    let mut take = |key: &str| match map.remove(key) {
        Some(Value::Mapping(section)) => Ok(section),
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(other) => Err((key.to_owned(), format!("{other:?} is not a mapping"))),
    };
    let objective = take("objective")?;
    let byol_a = take("byol_a")?;
    let delores = take("delores")?;
    let mut block = Mapping::from_iter([("type".into(), Value::String(name.clone()))]);
    match name.as_str() {
        "slicer" => block.extend(objective),
        "byol_a" => {
            block.extend(byol_a);
            if let Some(schedule) = objective.get("ema_schedule") {
                block.insert("ema_schedule".into(), schedule.clone());
            }
        }
        "delores_s" => block.extend(delores),
        "delores_m" => {
            for key in DELORES_M_OBJECTIVE_KEYS {
                if let Some(value) = objective.get(key) {
                    block.insert(key.into(), value.clone());
                }
            }
            if !delores.is_empty() {
                block.insert("barlow".into(), Value::Mapping(delores));
            }
        }
        // random_init reads nothing; an unknown name is reported by the typed parse.
        _ => {}
    }
    map.insert("method".into(), Value::Mapping(block));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Value {
        yaml_serde::from_str(text).unwrap()
    }

    #[test]
    fn the_old_layout_keeps_what_each_method_read() {
        let old = "method: delores_m\nobjective: {queue_size: 4096, cluster_weight: 0.5, ema_schedule: cosine}\ndelores: {lambda: 0.1}\nbyol_a: {hidden_dim: 8}\n";
        let mut t = tree(old);
        assert!(normalise(&mut t).unwrap());
        let want = tree("method: {type: delores_m, ema_schedule: cosine, queue_size: 4096, barlow: {lambda: 0.1}}");
        assert_eq!(t, want, "SLICER's and BYOL-A's settings are dropped");
        let mut t = tree("method: byol_a\nobjective: {ema_schedule: cosine, queue_size: 16}\nbyol_a: {hidden_dim: 8}\n");
        normalise(&mut t).unwrap();
        assert_eq!(
            t,
            tree("method: {type: byol_a, hidden_dim: 8, ema_schedule: cosine}")
        );
        let mut t = tree("objective: {queue_size: 16}\n");
        normalise(&mut t).unwrap();
        assert_eq!(t, tree("method: {type: slicer, queue_size: 16}"));
    }

    #[test]
    fn the_shorthand_and_a_missing_type_name_slicer_or_the_given_method() {
        let mut t = tree("seed: 1\n");
        assert!(!normalise(&mut t).unwrap());
        assert_eq!(t, tree("seed: 1\nmethod: {type: slicer}"));
        let mut t = tree("method: random_init\n");
        normalise(&mut t).unwrap();
        assert_eq!(t, tree("method: {type: random_init}"));
    }

    #[test]
    fn an_old_section_beside_a_block_is_an_error_naming_it() {
        let mut t =
            tree("method: {type: slicer, queue_size: 16}\nobjective: {fidelity: official}\n");
        let (key, message) = normalise(&mut t).unwrap_err();
        assert_eq!(key, "objective");
        assert!(
            message.contains("move its keys into `method:`"),
            "{message}"
        );
    }

    #[test]
    fn a_patch_naming_another_type_replaces_the_block() {
        let mut base = tree("method: {type: slicer, queue_size: 16}")
            .as_mapping()
            .cloned()
            .unwrap();
        let mut same = tree("method: {queue_size: 32}")
            .as_mapping()
            .cloned()
            .unwrap();
        before_merge(&mut base, &mut same);
        assert!(base.contains_key("method"), "no type: merged key by key");
        let mut other = tree("method: byol_a").as_mapping().cloned().unwrap();
        before_merge(&mut base, &mut other);
        assert!(!base.contains_key("method"));
        assert_eq!(other, *tree("method: {type: byol_a}").as_mapping().unwrap());
    }
}
