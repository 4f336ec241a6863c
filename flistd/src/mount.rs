//! A read-only FUSE mount of an flist (`fuser`; as root no `fusermount` is needed): the tree from the
//! metadata, file content fetched lazily, block by block, on first read, and verified (a block that
//! fails is `EIO`, never wrong bytes). A file's offsets come from its blocks' decompressed sizes, which
//! are learnt as blocks are read (rfs's packer cuts wherever a read returned, so blocks may be short).

use crate::meta::{Inode, ROOT, Reader};
use crate::store::Router;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEntry, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// How long the kernel may keep what it was told: the image never changes.
const TTL: Duration = Duration::from_secs(3600);

/// A decoded block: its index in the file and its plaintext.
type Decoded = (usize, Arc<Vec<u8>>);

/// An flist as a filesystem.
pub struct FlistFs {
    meta: Mutex<Reader>,
    router: Router,
    /// Per file, the decompressed size of each block learnt so far.
    sizes: Mutex<HashMap<u64, Vec<Option<u64>>>>,
    /// Per file, the last block decoded (sequential reads take several pieces of one block).
    last: Mutex<HashMap<u64, Decoded>>,
}

fn kind(mode: u32) -> FileType {
    match mode & 0o170_000 {
        0o040_000 => FileType::Directory,
        0o120_000 => FileType::Symlink,
        0o060_000 => FileType::BlockDevice,
        0o020_000 => FileType::CharDevice,
        0o010_000 => FileType::NamedPipe,
        0o140_000 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn attr(inode: &Inode) -> FileAttr {
    let time = |secs: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let dir = kind(inode.mode) == FileType::Directory;
    FileAttr {
        ino: INodeNo(inode.ino),
        size: inode.size,
        blocks: inode.size.div_ceil(512),
        atime: time(inode.mtime),
        mtime: time(inode.mtime),
        ctime: time(inode.ctime),
        crtime: time(inode.ctime),
        kind: kind(inode.mode),
        perm: u16::try_from(inode.mode & 0o7777).unwrap_or(0),
        nlink: if dir { 2 } else { 1 },
        uid: inode.uid,
        gid: inode.gid,
        rdev: u32::try_from(inode.rdev).unwrap_or(0),
        flags: 0,
        blksize: 4096,
    }
}

impl FlistFs {
    /// The filesystem of `meta`, its blocks from `router`.
    pub fn new(meta: Reader, router: Router) -> FlistFs {
        FlistFs { meta: Mutex::new(meta), router, sizes: Mutex::new(HashMap::new()), last: Mutex::new(HashMap::new()) }
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Reader> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn inode(&self, ino: u64) -> Option<Inode> {
        self.meta().inode(ino).ok().flatten()
    }

    /// Block `idx` of file `ino`, decoded and verified.
    fn block(&self, ino: u64, idx: usize, block: &crate::block::Block) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some((last, bytes)) = self.last.lock().unwrap_or_else(|p| p.into_inner()).get(&ino)
            && *last == idx
        {
            return Ok(bytes.clone());
        }
        let plain = Arc::new(self.router.read(block).map_err(|_| Errno::EIO)?);
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(ino, (idx, plain.clone()));
        Ok(plain)
    }

    fn read_range(&self, ino: u64, offset: u64, size: u64) -> Result<Vec<u8>, Errno> {
        let blocks = self.meta().blocks(ino).map_err(|_| Errno::EIO)?;
        let mut out = Vec::new();
        let mut start = 0u64;
        let end = offset.saturating_add(size);
        for (idx, block) in blocks.iter().enumerate() {
            if start >= end {
                break;
            }
            let known = self
                .sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ino)
                .and_then(|s| s.get(idx).copied().flatten());
            // A block known to end before the offset is skipped without being fetched.
            if let Some(len) = known
                && start.saturating_add(len) <= offset
            {
                start = start.saturating_add(len);
                continue;
            }
            let plain = self.block(ino, idx, block)?;
            let len = u64::try_from(plain.len()).unwrap_or(u64::MAX);
            {
                let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
                let entry = sizes.entry(ino).or_insert_with(|| vec![None; blocks.len()]);
                if let Some(slot) = entry.get_mut(idx) {
                    *slot = Some(len);
                }
            }
            let from = offset.saturating_sub(start).min(len);
            let to = end.saturating_sub(start).min(len);
            if from < to {
                out.extend_from_slice(&plain[usize::try_from(from).unwrap_or(0)..usize::try_from(to).unwrap_or(0)]);
            }
            start = start.saturating_add(len);
        }
        Ok(out)
    }
}

impl Filesystem for FlistFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = String::from_utf8_lossy(name.as_bytes());
        match self.meta().lookup(parent.0, &name) {
            Ok(Some(inode)) => reply.entry(&TTL, &attr(&inode), fuser::Generation(0)),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino.0) {
            Some(inode) => reply.attr(&TTL, &attr(&inode)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino.0).and_then(|inode| inode.data) {
            Some(target) => reply.data(&target),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino.0, offset, u64::from(size)) {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(dir) = self.inode(ino.0) else { return reply.error(Errno::ENOENT) };
        let Ok(children) = self.meta().children(ino.0) else { return reply.error(Errno::EIO) };
        let parent = if dir.ino == ROOT { ROOT } else { dir.parent };
        let mut entries =
            vec![(dir.ino, FileType::Directory, ".".to_string()), (parent, FileType::Directory, "..".to_string())];
        entries.extend(children.into_iter().map(|child| (child.ino, kind(child.mode), child.name)));
        for (idx, (child, kind, name)) in
            entries.into_iter().enumerate().skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            let next = u64::try_from(idx).unwrap_or(u64::MAX).saturating_add(1);
            if reply.add(INodeNo(child), next, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `fs` read-only at `mountpoint` until the returned session is dropped.
pub fn mount(fs: FlistFs, mountpoint: &std::path::Path) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options.extend([
        fuser::MountOption::RO,
        fuser::MountOption::FSName("flistd".into()),
        fuser::MountOption::DefaultPermissions,
    ]);
    config.acl = fuser::SessionACL::All;
    fuser::spawn_mount(fs, mountpoint, &config)
}
