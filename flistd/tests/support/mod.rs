//! What the integration tests share: the test hub, the source trees, the mount table.

pub mod hub;
pub mod tree;

use std::path::Path;

/// Whether something is mounted at `mountpoint` (by `/proc/self/mountinfo`).
#[allow(dead_code)]
pub fn mounted(mountpoint: &Path) -> bool {
    let target = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(&*target.to_string_lossy()))
}
