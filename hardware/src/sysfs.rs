//! Reading sysfs-style files: one value per file, a missing file is a missing value.

use crate::HardwareError;
use std::path::{Path, PathBuf};

/// The trimmed content of a file, `None` when it cannot be read.
pub(crate) fn value(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The content of a file that must exist.
pub(crate) fn required(path: PathBuf) -> Result<String, HardwareError> {
    std::fs::read_to_string(&path).map_err(|source| HardwareError::Read { path, source })
}

/// The entries of a directory, sorted by name; empty when it cannot be read.
pub(crate) fn entries(path: &Path) -> Vec<(String, PathBuf)> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(path)
        .map(|dir| {
            dir.filter_map(Result::ok).map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}
