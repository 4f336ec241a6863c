//! An flist extracted into a directory tree, every block fetched and verified: the fallback where
//! FUSE is not available, and what tests compare against the source. Unsafe archives are refused
//! before anything is written for the entry at fault: names with `/`, `.` or `..`, loops in `parent`,
//! sizes the blocks do not add up to (or beyond [`MAX_FILE_SIZE`]), and device nodes unless asked for
//! (a VM's root filesystem). Nothing is ever written outside the destination: entries are created
//! fresh (`create_new`), never through an existing path.

use crate::FlistError;
use crate::meta::{Inode, ROOT, Reader};
use crate::store::Router;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The largest file an flist may declare (1 TiB).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// What an extraction may create.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Create device nodes, FIFOs and sockets (a VM's root filesystem); refused otherwise.
    pub devices: bool,
}

fn check_name(inode: &Inode) -> Result<(), FlistError> {
    let name = inode.name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(FlistError::Unsafe(format!("inode {} has the name {name:?}", inode.ino)));
    }
    Ok(())
}

/// Owner first (a chown clears the setuid and setgid bits), then permissions, then times.
fn set_metadata(path: &Path, inode: &Inode, symlink: bool) -> Result<(), FlistError> {
    use nix::sys::stat::utimensat;
    use nix::sys::time::TimeSpec;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(path, Some(inode.uid), Some(inode.gid))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(inode.mode & 0o7777))?;
    }
    let mtime = TimeSpec::new(inode.mtime, 0);
    utimensat(nix::fcntl::AT_FDCWD, path, &mtime, &mtime, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .map_err(std::io::Error::from)?;
    Ok(())
}

/// Walks the tree of `reader` from its root, depth first, refusing what is unsafe before `visit` sees
/// it: an entry reached twice (a loop in `parent`), a name that is not one path component, a file
/// declaring more than [`MAX_FILE_SIZE`], a device node, FIFO or socket unless `options.devices`.
/// `visit` gets each entry and its directory's value, and returns a value for a directory to descend
/// into it (`None`: skip it). Returns every directory visited, with its value, in the order visited.
fn walk<T>(
    reader: &Reader,
    options: Options,
    root_value: T,
    mut visit: impl FnMut(&Inode, &T) -> Result<Option<T>, FlistError>,
) -> Result<Vec<(Inode, T)>, FlistError> {
    let root = reader.inode(ROOT)?.ok_or_else(|| FlistError::Unsafe("no root inode".into()))?;
    if root.mode & S_IFMT != S_IFDIR {
        return Err(FlistError::Unsafe("the root is not a directory".into()));
    }
    let mut seen = HashSet::from([ROOT]);
    let mut dirs: Vec<(Inode, T)> = vec![(root, root_value)];
    let mut finished: Vec<(Inode, T)> = Vec::new();
    while let Some((dir, value)) = dirs.pop() {
        for child in reader.children(dir.ino)? {
            if !seen.insert(child.ino) {
                return Err(FlistError::Unsafe(format!("inode {} is reached twice: a loop in parent", child.ino)));
            }
            check_name(&child)?;
            match child.mode & S_IFMT {
                S_IFDIR | S_IFLNK => {}
                S_IFREG if child.size > MAX_FILE_SIZE => {
                    return Err(FlistError::Unsafe(format!("{:?} declares {} bytes", child.name, child.size)));
                }
                S_IFREG => {}
                _ if options.devices => {}
                _ => {
                    return Err(FlistError::Unsafe(format!(
                        "{:?} is a device node, FIFO or socket (allowed only for a VM's root filesystem)",
                        child.name
                    )));
                }
            }
            if let Some(child_value) = visit(&child, &value)?
                && child.mode & S_IFMT == S_IFDIR
            {
                dirs.push((child, child_value));
            }
        }
        finished.push((dir, value));
    }
    Ok(finished)
}

/// Checks the whole tree of an flist without reading a block: what [`unpack`] refuses (names with
/// `/`, `.` or `..`, loops in `parent`, absurd sizes, device nodes unless `options.devices`) is
/// refused here, so that the daemon never mounts such an image. Returns the number of entries.
pub fn check(reader: &Reader, options: Options) -> Result<u64, FlistError> {
    let mut entries = 0u64;
    walk(reader, options, (), |_, _| {
        entries = entries.saturating_add(1);
        Ok(Some(()))
    })?;
    Ok(entries)
}

/// Extracts the flist `reader` describes into `dest` (which must not exist yet), with its blocks from
/// `router`. The tree is checked whole first ([`check`]): nothing is written for an unsafe archive.
pub fn unpack(reader: &Reader, router: &Router, dest: &Path, options: Options) -> Result<(), FlistError> {
    check(reader, options)?;
    std::fs::create_dir(dest)?;
    let finished = walk(reader, options, dest.to_path_buf(), |child, path| {
        let target = path.join(std::ffi::OsStr::from_bytes(child.name.as_bytes()));
        match child.mode & S_IFMT {
            S_IFDIR => {
                std::fs::create_dir(&target)?;
                // Its metadata is set once its entries are written.
                return Ok(Some(target));
            }
            S_IFREG => write_file(reader, router, child, &target)?,
            S_IFLNK => {
                let link = child.data.clone().unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &target)?;
            }
            // What the walk let through: device nodes, FIFOs and sockets asked for.
            _ => {
                let kind = nix::sys::stat::SFlag::from_bits_truncate(child.mode & S_IFMT);
                let perm = nix::sys::stat::Mode::from_bits_truncate(child.mode & 0o7777);
                nix::sys::stat::mknod(&target, kind, perm, child.rdev).map_err(std::io::Error::from)?;
            }
        }
        set_metadata(&target, child, child.mode & S_IFMT == S_IFLNK)?;
        Ok(None)
    })?;
    // Directories last, deepest first: writing into them changed their times.
    for (dir, path) in finished.into_iter().rev() {
        set_metadata(&path, &dir, false)?;
    }
    Ok(())
}

fn write_file(reader: &Reader, router: &Router, inode: &Inode, target: &Path) -> Result<(), FlistError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(target)?;
    let mut written = 0u64;
    for block in reader.blocks(inode.ino)? {
        let plain = router.read(&block)?;
        written = written.saturating_add(u64::try_from(plain.len()).unwrap_or(u64::MAX));
        if written > inode.size {
            return Err(FlistError::Unsafe(format!(
                "{}: blocks hold more than its {} bytes",
                target.display(),
                inode.size
            )));
        }
        file.write_all(&plain)?;
    }
    if written != inode.size {
        return Err(FlistError::Unsafe(format!(
            "{}: blocks hold {written} bytes, the inode says {}",
            target.display(),
            inode.size
        )));
    }
    file.sync_all()?;
    Ok(())
}
