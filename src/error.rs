//! The library's error type. Every variant names the file, row, key or field at fault and,
//! where one exists, what to do about it.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named path.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// What failed, with a hint when one is known (for example a full disk).
        message: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Audio that cannot be decoded or is unusable (empty, corrupt, non-finite samples).
    #[error("{}: {message}", path.display())]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// Why it was rejected.
        message: String,
    },
    /// A bad experiment spec, located as precisely as possible.
    #[error(transparent)]
    Spec(#[from] crate::problems::SpecError),
    /// A bad row in a manifest or label file.
    #[error("{}:{row}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        row: usize,
        /// What is wrong with the row.
        message: String,
    },
    /// A dataset folder that does not have the expected layout.
    #[error("{}: {message}", path.display())]
    Dataset {
        /// The dataset root or file.
        path: PathBuf,
        /// What was expected there.
        message: String,
    },
    /// A file that could not be had from the Hugging Face Hub or its local cache.
    #[error("{repo}@{revision}: {file}: {message} (cache: {})", cache.display())]
    Hub {
        /// Repository id, `org/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
        /// File in the repository.
        file: String,
        /// The cache folder that was searched.
        cache: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// A task of the spec that could not be set up.
    #[error("task `{task}`")]
    Task {
        /// The task's name in the spec.
        task: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// A tensor operation that failed; `context` says what was being computed.
    #[error("{context}")]
    Tensor {
        /// What was being computed.
        context: String,
        /// candle's error.
        #[source]
        source: Box<candle_core::Error>,
    },
    /// A result table (Parquet) that could not be written or read.
    #[error("{}: cannot {action} this table", path.display())]
    Table {
        /// The table file.
        path: PathBuf,
        /// `write` or `read`.
        action: &'static str,
        /// polars' error.
        #[source]
        source: Box<polars::error::PolarsError>,
    },
    /// A JSON file that could not be read or written as `what`.
    #[error("{}: not valid as {what}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// What it should hold.
        what: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint that could not be written, read or resumed from.
    #[error("checkpoint {}", path.display())]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What went wrong (a missing tensor names its key).
        #[source]
        source: Box<Error>,
    },
    /// A failure inside a library we call (the resampler, safetensors), with what was being
    /// done.
    #[error("{context}")]
    External {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value outside what an algorithm accepts (empty inputs, mismatched shapes, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on `path`, with a hint for the cases a user can fix.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        // The source's own text follows in the error chain (`{:#}`), so it is not repeated.
        let message = match source.kind() {
            std::io::ErrorKind::NotFound => "not found".to_owned(),
            std::io::ErrorKind::StorageFull => {
                "the disk is full; free some space and run again (no existing file was overwritten)"
                    .to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied: check the file permissions".to_owned()
            }
            _ => "input/output error".to_owned(),
        };
        Error::Io {
            path: path.into(),
            message,
            source,
        }
    }

    /// Wraps a failed tensor operation with what was being computed:
    /// `.map_err(Error::tensor("fine-tuning"))`.
    pub(crate) fn tensor(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.into();
        move |source| Error::Tensor {
            context,
            source: Box::new(source),
        }
    }

    /// Wraps a library's error with what was being done: `.map_err(Error::external("..."))`.
    pub(crate) fn external<E: std::error::Error + Send + Sync + 'static>(
        context: impl Into<String>,
    ) -> impl FnOnce(E) -> Self {
        let context = context.into();
        move |source| Error::External {
            context,
            source: Box::new(source),
        }
    }

    /// Wraps a table failure on `path` (`action`: `write` or `read`).
    pub(crate) fn table<'a>(
        path: &'a std::path::Path,
        action: &'static str,
    ) -> impl Fn(polars::error::PolarsError) -> Self + 'a {
        move |source| Error::Table {
            path: path.to_owned(),
            action,
            source: Box::new(source),
        }
    }

    /// Wraps a failure to resume from or write the checkpoint at `path`.
    pub(crate) fn checkpoint(path: &std::path::Path) -> impl FnOnce(Error) -> Self + '_ {
        move |source| Error::Checkpoint {
            path: path.to_owned(),
            source: Box::new(source),
        }
    }

    /// An audio error on `path`.
    pub fn audio(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Audio {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// Every message of an error's chain, as the binary prints it (`{:#}`).
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            parts.push(cause.to_string());
            next = cause.source();
        }
        parts.join(": ")
    }

    /// A resume that finds no queue tensor names the checkpoint, the step and the key, and
    /// keeps candle's error as the source.
    #[test]
    fn a_missing_checkpoint_tensor_keeps_its_path_context_and_cause() {
        let missing = candle_core::Error::Msg("queue state has no `queue`".into());
        let path = std::path::Path::new("runs/r/checkpoints/step-00000010");
        let e = Error::checkpoint(path)(Error::tensor("restoring the queue")(missing));
        let text = chain(&e);
        assert_eq!(
            text,
            "checkpoint runs/r/checkpoints/step-00000010: restoring the queue: queue state has no `queue`"
        );
        let tensor = std::error::Error::source(&e).expect("the tensor error");
        assert!(
            std::error::Error::source(tensor).is_some(),
            "candle's error is kept"
        );
    }
}
