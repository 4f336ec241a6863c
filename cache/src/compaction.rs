//! Rewriting a store into a fresh copy, swapped in by renames: compaction (sled 0.34 does not give back
//! the space of deleted records) and schema migration share it. At any instant either the store or its
//! complete fresh copy is there; [`recover`] finishes or undoes a rewrite a crash interrupted.

use crate::error::StoreError;
use crate::store::{flush_engine, open_engine};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A store smaller than this on disk is never compacted.
const COMPACT_FLOOR: u64 = 32 << 20;

/// A store is compacted at open when its files take more than this many times what it holds.
const COMPACT_RATIO: u64 = 4;

/// Bytes of values the fresh copy takes in one batch.
const CHUNK: usize = 8 << 20;

/// Bytes the files under `path` take on disk.
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => dirs.push(entry.path()),
                Ok(meta) => total = total.saturating_add(meta.blocks().saturating_mul(512)),
                Err(_) => {}
            }
        }
    }
    total
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Finishes or undoes a rewrite a crash interrupted: the fresh copy replaces the store only by a
/// rename, so at any instant either the store or its complete fresh copy is there.
pub(crate) fn recover(path: &Path) -> Result<(), StoreError> {
    let fresh = sibling(path, ".compact");
    let old = sibling(path, ".old");
    if !path.exists() && fresh.exists() && old.exists() {
        std::fs::rename(&fresh, path)?;
    }
    for leftover in [fresh, old] {
        if leftover.exists() && path.exists() {
            std::fs::remove_dir_all(leftover)?;
        }
    }
    Ok(())
}

/// The fresh copy being written, in batches of bounded size.
pub(crate) struct Fresh {
    tree: sled::Tree,
    batch: sled::Batch,
    pending: usize,
}

impl Fresh {
    /// Adds a record to the copy.
    pub(crate) fn insert(
        &mut self,
        key: impl Into<sled::IVec>,
        value: impl Into<sled::IVec>,
    ) -> Result<(), StoreError> {
        let value = value.into();
        self.pending = self.pending.saturating_add(value.len());
        self.batch.insert(key, value);
        if self.pending > CHUNK {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.pending = 0;
        }
        Ok(())
    }
}

/// Rewrites the store at `path`: `fill` copies what it wants of the store's tree into the fresh copy,
/// which is made durable and swapped in by renames. A rewrite that fails (a full disk, a record `fill`
/// refuses) leaves the store as it was.
pub(crate) fn rewrite(
    path: &Path,
    fill: impl FnOnce(&sled::Tree, &mut Fresh) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let fresh = sibling(path, ".compact");
    let copied = (|| -> Result<(), StoreError> {
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)?;
        }
        let from = open_engine(path)?;
        let from = from.open_tree("zos")?;
        let to = open_engine(&fresh)?;
        let mut copy = Fresh { tree: to.open_tree("zos")?, batch: sled::Batch::default(), pending: 0 };
        fill(&from, &mut copy)?;
        copy.tree.apply_batch(copy.batch)?;
        flush_engine(&to, &fresh)?;
        Ok(())
    })();
    if let Err(err) = copied {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(err);
    }
    let old = sibling(path, ".old");
    std::fs::rename(path, &old)?;
    std::fs::rename(&fresh, path)?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    std::fs::remove_dir_all(old)?;
    Ok(())
}

/// A store whose files take more than `COMPACT_RATIO` times what it holds (and more than
/// `COMPACT_FLOOR`) is copied record by record into a fresh directory.
pub(crate) fn compact_if_bloated(path: &Path) -> Result<(), StoreError> {
    let on_disk = disk_usage(path);
    if !path.join("db").exists() || on_disk < COMPACT_FLOOR {
        return Ok(());
    }
    let live = {
        let db = open_engine(path)?;
        let tree = db.open_tree("zos")?;
        let mut live = 0u64;
        for record in tree.iter() {
            let (key, value) = record?;
            live = live.saturating_add(u64::try_from(key.len().saturating_add(value.len())).unwrap_or(u64::MAX));
        }
        live
    };
    if on_disk <= live.saturating_mul(COMPACT_RATIO) {
        return Ok(());
    }
    rewrite(path, |from, to| {
        for record in from.iter() {
            let (key, value) = record?;
            to.insert(key, value)?;
        }
        Ok(())
    })
}
