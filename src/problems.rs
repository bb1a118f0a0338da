//! Configuration problems, below every module that validates a configuration: a
//! [`Problem`] found in a typed value (key, message, hint) and a [`SpecError`] located in its
//! file. `spec` assembles the component configurations and turns their problems into spec
//! errors; the components report problems without depending on `spec`.

use std::path::PathBuf;

/// A spec error found in the typed value, before its line is looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key path.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A "must be at least 1" problem for every `(key, value, hint)` whose count is zero.
    pub fn zero_counts(counts: &[(&str, u64, &str)]) -> Vec<Problem> {
        counts
            .iter()
            .filter(|(_, value, _)| *value == 0)
            .map(|(key, _, hint)| Problem::new(*key, "must be at least 1", *hint))
            .collect()
    }

    /// The same problem under a parent key.
    pub fn under(mut self, parent: &str) -> Self {
        self.key = if self.key.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.key)
        };
        self
    }
}

/// A problem in an experiment spec or a `--set` override, reported before any work starts.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// The spec file.
    pub file: PathBuf,
    /// 1-based line of the offending key in the file, when known.
    pub line: Option<usize>,
    /// Dotted key path (`data.tasks.0.window_seconds`); empty for the whole document.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}
