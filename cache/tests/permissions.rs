//! The store holds tenants' secrets: its directory is 0700 and its files 0600 whatever the umask of
//! whoever opens it, and a store left world-readable by an older version is restricted at open.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use zos_cache::Store;

fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(&next).expect("dir").map(|e| e.expect("entry")) {
            if entry.file_type().expect("type").is_dir() {
                dirs.push(entry.path());
            }
            out.push((entry.path().display().to_string(), entry.metadata().expect("meta").mode() & 0o777));
        }
    }
    out
}

#[test]
fn store_files_are_private_whatever_the_umask() {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    drop(Store::open(&path).expect("open"));
    nix::sys::stat::umask(old);
    assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o700);
    let found = modes(&path);
    assert!(!found.is_empty());
    for (file, mode) in &found {
        assert!(*mode == 0o600 || *mode == 0o700, "{file} has mode {mode:o}");
    }
    // A store an older version left readable by all is restricted when it is opened again.
    for (file, _) in &found {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(Store::open(&path).expect("reopen"));
    assert_eq!(std::fs::metadata(&path).expect("meta").mode() & 0o777, 0o700);
    assert!(modes(&path).iter().all(|(_, mode)| *mode == 0o600 || *mode == 0o700));
}
