//! The error of one file operation, for the agent's and the host's errors that are
//! mostly file operations: what was attempted on which file, and the cause.

use std::path::{Path, PathBuf};

/// A file operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {path}")]
pub struct FileError {
    /// What was attempted.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// For `map_err`: the io::Error of `what` on `path`.
    pub fn of(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_owned();
        move |source| FileError { what, path, source }
    }
}
