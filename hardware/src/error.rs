//! What can go wrong reading a machine.

use std::path::PathBuf;

/// A file discovery needs is missing or does not say what it must.
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but lacks what discovery needs.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
}
