//! `flistd pack`: an `.fl` built from a directory tree in rfs's format, its blocks written to a store
//! and the store recorded as the route for every block.

use crate::FlistError;
use crate::block::{BLOCK_SIZE, seal};
use crate::meta::{Inode, Route, Writer};
use crate::store::Store;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn inode_of(parent: u64, name: &[u8], meta: &std::fs::Metadata, data: Option<Vec<u8>>) -> Inode {
    Inode {
        ino: 0,
        parent,
        name: String::from_utf8_lossy(name).into_owned(),
        size: meta.size(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode(),
        rdev: meta.rdev(),
        ctime: meta.ctime(),
        mtime: meta.mtime(),
        data,
    }
}

/// Packs the tree under `src` into a new `.fl` at `out`, its blocks into `store`.
pub fn pack(src: &Path, store: &dyn Store, out: &Path) -> Result<(), FlistError> {
    let writer = Writer::create(out)?;
    writer.route(&Route { start: 0, end: u8::MAX, url: store.url() })?;
    writer.tag("version", "1")?;
    let root = std::fs::symlink_metadata(src)?;
    let root_ino = writer.inode(&inode_of(0, b"/", &root, None))?;
    let mut dirs = vec![(root_ino, src.to_path_buf())];
    let mut buffer = vec![0u8; BLOCK_SIZE];
    while let Some((ino, dir)) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let name = entry.file_name();
            let target = if meta.file_type().is_symlink() {
                Some(std::fs::read_link(&path)?.as_os_str().as_bytes().to_vec())
            } else {
                None
            };
            let child = writer.inode(&inode_of(ino, name.as_bytes(), &meta, target))?;
            if meta.is_dir() {
                dirs.push((child, path));
            } else if meta.is_file() {
                let mut file = std::fs::File::open(&path)?;
                loop {
                    let read = file.read(&mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    let (block, sealed) = seal(&buffer[..read])?;
                    store.set(&block.id, &sealed)?;
                    writer.block(child, &block)?;
                }
            }
        }
    }
    writer.finish()
}
