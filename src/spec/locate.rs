//! Finds the line of a dotted key path in block-style YAML text, so that errors found after
//! parsing (bad values, missing files) still point at a line. Best effort: flow-style
//! mappings are not searched, and a key that is not written in the file (a default) has no line.

/// 1-based line of `path` (segments are keys or sequence indices) in `text`, if written there.
pub fn locate(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut lo, mut hi) = (0, lines.len());
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for segment in path {
        let child = |i: usize| {
            let (indent, body) = key_indent(lines[i]);
            (!body.is_empty() && !body.starts_with('#') && parent_indent.is_none_or(|p| indent > p))
                .then_some((indent, body))
        };
        let hit = if let Ok(index) = segment.parse::<usize>() {
            let dash_lines: Vec<usize> = (lo..hi)
                .filter(|&i| lines[i].trim_start().starts_with("- ") && child(i).is_some())
                .collect();
            let dash_indent = dash_lines.iter().map(|&i| indent_of(lines[i])).min();
            dash_lines
                .into_iter()
                .filter(|&i| Some(indent_of(lines[i])) == dash_indent)
                .nth(index)
        } else {
            let mut candidates =
                (lo..hi).filter_map(|i| child(i).map(|(ind, body)| (i, ind, body)));
            let first_indent = candidates.clone().map(|(_, ind, _)| ind).min();
            candidates
                .find(|(_, ind, body)| {
                    Some(*ind) == first_indent
                        && body
                            .strip_prefix(segment.as_str())
                            .is_some_and(|rest| rest.trim_start().starts_with(':'))
                })
                .map(|(i, _, _)| i)
        }?;
        found = Some(hit);
        let (indent, _) = key_indent(lines[hit]);
        let is_item = segment.parse::<usize>().is_ok();
        // The block of this key runs until the next line at the same or smaller indent.
        let own = if is_item {
            indent_of(lines[hit])
        } else {
            indent
        };
        hi = (hit + 1..hi)
            .find(|&i| {
                let (ind, body) = key_indent(lines[i]);
                !body.is_empty()
                    && !body.starts_with('#')
                    && (if is_item {
                        indent_of(lines[i]) <= own
                    } else {
                        ind <= own
                    })
            })
            .unwrap_or(hi);
        lo = if is_item { hit } else { hit + 1 };
        parent_indent = Some(if is_item { own } else { indent });
    }
    found.map(|i| i + 1)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Indent of the key on a line, treating a leading "- " as indentation.
fn key_indent(line: &str) -> (usize, &str) {
    let mut indent = indent_of(line);
    let mut body = line.trim_start();
    while let Some(rest) = body.strip_prefix("- ") {
        indent += 2 + (rest.len() - rest.trim_start().len());
        body = rest.trim_start();
    }
    (indent, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\ndata:\n  pretrain:\n    type: synthetic\n    clips: 10\n  tasks:\n    - name: a\n      window_seconds: 1.0\n    - name: b\n      source:\n        type: manifest\n        path: m.csv\nseed: 3\n";

    fn at(path: &str) -> Option<usize> {
        locate(TEXT, &path.split('.').map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(at("seed"), Some(13));
        assert_eq!(at("data.pretrain.clips"), Some(5));
        assert_eq!(at("data.tasks.0.window_seconds"), Some(8));
        assert_eq!(at("data.tasks.1.name"), Some(9));
        assert_eq!(at("data.tasks.1.source.path"), Some(12));
        assert_eq!(at("data.tasks.0.source"), None);
        assert_eq!(at("frontend.n_mels"), None);
    }
}
