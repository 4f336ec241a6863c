//! btrfs through btrfs-progs: pools on whole disks, subvolumes with qgroup limits, usage by qgroup.

use crate::StorageError;
use crate::command::run;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Formats a whole device as a btrfs pool with `label`.
pub fn mkfs(device: &Path, label: &str) -> Result<(), StorageError> {
    run("mkfs.btrfs", &["-q".as_ref(), "-f".as_ref(), "-L".as_ref(), label.as_ref(), device.as_os_str()]).map(drop)
}

/// Mounts a btrfs device at `target` (created if needed) and enables quotas.
pub fn mount(device: &Path, target: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(target)?;
    if !is_mountpoint(target) {
        run("mount", &["-t".as_ref(), "btrfs".as_ref(), device.as_os_str(), target.as_os_str()])?;
    }
    run("btrfs", &["quota".as_ref(), "enable".as_ref(), target.as_os_str()]).map(drop)
}

/// Unmounts `target` (lazily, so that a busy pool does not block a shutdown).
pub fn umount(target: &Path) -> Result<(), StorageError> {
    run("umount", &["-l".as_ref(), target.as_os_str()]).map(drop)
}

/// True when `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(path) = std::fs::canonicalize(path) else { return false };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| info.lines().any(|line| line.split(' ').nth(4).is_some_and(|target| Path::new(target) == path)))
        .unwrap_or(false)
}

/// Creates a subvolume.
pub fn subvolume_create(path: &Path) -> Result<(), StorageError> {
    run("btrfs", &["subvolume".as_ref(), "create".as_ref(), path.as_os_str()]).map(drop)
}

/// Deletes a subvolume (and its qgroup).
pub fn subvolume_delete(path: &Path) -> Result<(), StorageError> {
    run("btrfs", &["subvolume".as_ref(), "delete".as_ref(), "--commit-after".as_ref(), path.as_os_str()]).map(drop)
}

/// True for the root directory of a subvolume (btrfs gives subvolume roots inode 256).
pub fn is_subvolume(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir() && meta.ino() == 256)
}

/// The subvolumes directly under a pool's mount point.
pub fn subvolumes(mountpoint: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(mountpoint)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
                .filter(|(_, path)| is_subvolume(path))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Sets (or, with 0, removes) the qgroup limit of a subvolume.
pub fn qgroup_limit(path: &Path, bytes: u64) -> Result<(), StorageError> {
    let limit = if bytes == 0 { "none".to_string() } else { bytes.to_string() };
    run("btrfs", &["qgroup".as_ref(), "limit".as_ref(), OsStr::new(&limit), path.as_os_str()]).map(drop)
}

/// A subvolume's qgroup numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QGroup {
    /// Referenced bytes.
    pub referenced: u64,
    /// Exclusive bytes (the "real" usage).
    pub exclusive: u64,
    /// The limit, if any.
    pub max_referenced: Option<u64>,
}

/// Parses `btrfs qgroup show -re --raw`: `0/256 10469376 10469376 10485760 none vol1`.
pub fn parse_qgroups(text: &str) -> HashMap<String, QGroup> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || !fields[0].starts_with("0/") {
                return None;
            }
            let referenced = fields[1].parse().ok()?;
            let exclusive = fields[2].parse().ok()?;
            let max_referenced = fields[3].parse().ok();
            let path = fields[5..].join(" ");
            Some((path, QGroup { referenced, exclusive, max_referenced }))
        })
        .collect()
}

/// The qgroups of a pool, by subvolume path relative to the pool.
pub fn qgroups(mountpoint: &Path) -> Result<HashMap<String, QGroup>, StorageError> {
    // Make the numbers current before reading them.
    let _ = run("btrfs", &["filesystem".as_ref(), "sync".as_ref(), mountpoint.as_os_str()]);
    let text =
        run("btrfs", &["qgroup".as_ref(), "show".as_ref(), "-re".as_ref(), "--raw".as_ref(), mountpoint.as_os_str()])?;
    Ok(parse_qgroups(&text))
}

/// Sum of the apparent sizes of the files under `path`.
pub fn files_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => files_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream `TestQGroupParse` (filesystem/btrfs_utils_test.go), in the layout of btrfs-progs 6.
    #[test]
    fn qgroup_parse() {
        let text = "Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path \n\
                    --------    ----------    ---------  --------------  -------------   ---- \n\
                    0/5              16384        16384            none           none   <toplevel>\n\
                    0/258          5804032      5804032      1073741824           none   svol\n";
        let groups = parse_qgroups(text);
        assert_eq!(
            groups["svol"],
            QGroup { referenced: 5_804_032, exclusive: 5_804_032, max_referenced: Some(1_073_741_824) }
        );
        assert_eq!(groups["<toplevel>"].max_referenced, None);
    }
}
