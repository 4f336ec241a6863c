//! The mount table as the kernel shows it (`/proc/self/mountinfo`), and the checks flistd makes on a
//! mount point: whether something is mounted there, whether its FUSE server is gone (`stat` answers
//! `ENOTCONN`), and a lazy unmount (`MNT_DETACH`) that never blocks on a dead server.

use std::path::{Path, PathBuf};

/// The mount points of this mount namespace, in the order they were mounted.
pub fn mount_points() -> std::io::Result<Vec<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table.lines().filter_map(|line| line.split(' ').nth(4)).map(unescape).collect())
}

/// A mountinfo field with its octal escapes (`\040` for a space, `\134` for a backslash) decoded.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let octal = bytes.get(i.saturating_add(1)..i.saturating_add(4)).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok().filter(|_| text.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        });
        match (byte, octal) {
            (b'\\', Some(value)) => {
                out.push(value);
                i = i.saturating_add(4);
            }
            _ => {
                out.push(byte);
                i = i.saturating_add(1);
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Whether something is mounted at `path` (compared as given: flistd's paths are absolute and
/// free of symlinks by construction).
pub fn is_mounted(path: &Path) -> bool {
    mount_points().is_ok_and(|points| points.iter().any(|point| point == path))
}

/// Whether `path` is a mount whose FUSE server is gone: `stat` answers `ENOTCONN`.
pub fn is_dead(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(err) if err.raw_os_error() == Some(nix::libc::ENOTCONN))
}

/// Unmounts `path` lazily (`MNT_DETACH`): it leaves the namespace now, whatever holds it.
pub fn detach(path: &Path) -> std::io::Result<()> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)
}

/// Unmounts `path`, lazily when it is busy.
pub fn unmount(path: &Path) -> std::io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) if !is_mounted(path) => Ok(()),
        Err(err) => {
            tracing::debug!(path = %path.display(), "unmount: {err}; detaching it");
            detach(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape("/x\\134y"), PathBuf::from("/x\\y"));
        assert_eq!(unescape("/odd\\9z"), PathBuf::from("/odd\\9z"));
        assert_eq!(unescape("/end\\04"), PathBuf::from("/end\\04"));
    }

    #[test]
    fn the_root_is_mounted() {
        assert!(is_mounted(Path::new("/")));
    }
}
