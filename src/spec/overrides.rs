//! `--set` overrides on the YAML tree: `a.b=v` replaces an existing key (a typo is an error),
//! `+a.b=v` adds a key, `~a.b` deletes one. Values are parsed as YAML, so `3`, `true`,
//! `[1, 2]` and `{type: folder, path: x}` have their natural types. Sequence items are
//! addressed by index: `data.tasks.0.window_seconds=2`.

use yaml_serde::Value;

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// `a.b=v`: the key must exist.
    Replace(Vec<String>, Value),
    /// `+a.b=v`: the key may be new.
    Add(Vec<String>, Value),
    /// `~a.b`: remove the key.
    Delete(Vec<String>),
}

impl Override {
    /// Parses `a.b=v`, `+a.b=v` or `~a.b`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(key) = text.strip_prefix('~') {
            return Ok(Override::Delete(split_key(key)?));
        }
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not of the form key=value"))?;
        let value: Value = yaml_serde::from_str(value)
            .map_err(|e| format!("value of `{text}` is not valid YAML: {e}"))?;
        match key.strip_prefix('+') {
            Some(key) => Ok(Override::Add(split_key(key)?, value)),
            None => Ok(Override::Replace(split_key(key)?, value)),
        }
    }

    /// The dotted key this override touches.
    pub fn key(&self) -> String {
        match self {
            Override::Replace(k, _) | Override::Add(k, _) | Override::Delete(k) => k.join("."),
        }
    }

    /// Applies the override to `root`.
    pub fn apply(&self, root: &mut Value) -> Result<(), String> {
        let (path, last) = match self {
            Override::Replace(k, _) | Override::Add(k, _) | Override::Delete(k) => {
                (&k[..k.len() - 1], &k[k.len() - 1])
            }
        };
        let mut node = root;
        for (depth, segment) in path.iter().enumerate() {
            node = child_mut(node, segment)
                .ok_or_else(|| format!("no key `{}` in the spec", path[..=depth].join(".")))?;
        }
        match self {
            Override::Replace(_, value) => {
                let slot = child_mut(node, last).ok_or_else(|| {
                    format!(
                        "no key `{}` in the spec; check the spelling, or write `+{}=...` to add it",
                        self.key(),
                        self.key()
                    )
                })?;
                *slot = value.clone();
            }
            Override::Add(_, value) => match node {
                Value::Mapping(map) => {
                    map.insert(Value::String(last.clone()), value.clone());
                }
                Value::Sequence(seq)
                    if last == "+" || last.parse::<usize>().ok() == Some(seq.len()) =>
                {
                    seq.push(value.clone())
                }
                _ => {
                    return Err(format!(
                        "cannot add `{}`: its parent is not a mapping",
                        self.key()
                    ))
                }
            },
            Override::Delete(_) => {
                let removed = match node {
                    Value::Mapping(map) => map.remove(last.as_str()).is_some(),
                    Value::Sequence(seq) => match last.parse::<usize>() {
                        Ok(i) if i < seq.len() => {
                            seq.remove(i);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(format!("cannot delete `{}`: no such key", self.key()));
                }
            }
        }
        Ok(())
    }
}

fn split_key(key: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = key.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!(
            "`{key}` is not a dotted key like data.pretrain.clips"
        ));
    }
    Ok(parts)
}

fn child_mut<'a>(node: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match node {
        Value::Mapping(map) => map.get_mut(segment),
        Value::Sequence(seq) => segment
            .parse::<usize>()
            .ok()
            .and_then(move |i| seq.get_mut(i)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Value {
        yaml_serde::from_str("a:\n  b: 1\n  list: [{x: 1}, {x: 2}]\n").unwrap()
    }

    fn apply(text: &str) -> Result<Value, String> {
        let mut v = tree();
        Override::parse(text)?.apply(&mut v)?;
        Ok(v)
    }

    #[test]
    fn replaces_adds_and_deletes() {
        assert_eq!(apply("a.b=2").unwrap()["a"]["b"], Value::from(2));
        assert_eq!(
            apply("a.list.1.x=true").unwrap()["a"]["list"][1]["x"],
            Value::Bool(true)
        );
        assert_eq!(apply("+a.c=hello").unwrap()["a"]["c"], Value::from("hello"));
        assert!(apply("~a.b").unwrap()["a"].get("b").is_none());
    }

    #[test]
    fn typos_are_errors() {
        assert!(apply("a.bb=2").unwrap_err().contains("no key `a.bb`"));
        assert!(apply("z.b=2").unwrap_err().contains("no key `z`"));
        assert!(apply("a.b").unwrap_err().contains("key=value"));
        assert!(apply("~a.zz").is_err());
    }
}
