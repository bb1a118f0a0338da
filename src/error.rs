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
    /// A value outside what an algorithm accepts (empty inputs, mismatched shapes, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on `path`, with a hint for the cases a user can fix.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let message = match source.kind() {
            std::io::ErrorKind::NotFound => format!("not found ({source})"),
            std::io::ErrorKind::StorageFull => {
                format!("{source}: the disk is full; free some space and run again (no existing file was overwritten)")
            }
            std::io::ErrorKind::PermissionDenied => format!("{source}: check the file permissions"),
            _ => source.to_string(),
        };
        Error::Io {
            path: path.into(),
            message,
            source,
        }
    }

    /// A failed tensor operation (shape mismatch, unsupported op, ...).
    pub(crate) fn tensor(e: candle_core::Error) -> Self {
        Error::Invalid(format!("tensor operation failed: {e}"))
    }

    /// An audio error on `path`.
    pub fn audio(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Audio {
            path: path.into(),
            message: message.into(),
        }
    }
}
