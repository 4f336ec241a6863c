//! The write-ahead journal: what makes a commit durable.
//!
//! sled 0.34's `flush` excludes every `apply_batch` while it runs, so a flush per group commit
//! serializes admission behind the disk. Instead each commit is staged in the store's backlog (reads
//! see it at once) and framed for this journal; group commit appends the frames of all the commits
//! made meanwhile with one `write` and one `fdatasync`, and only then applies them to sled. sled itself
//! is flushed only at a checkpoint (when the journal grows past [`CHECKPOINT`], and when the store is
//! closed), after which the journal is emptied.
//!
//! A frame is `[payload length: u32 LE][crc32 of the payload: u32 LE][payload]`; the payload is the
//! store generation the commit made (u64 LE), its number of operations (u32 LE) and each operation:
//! key length (u32 LE), key, then `0` for a removal or `1`, value length (u32 LE) and value. A frame
//! that is cut short or fails its checksum ends the journal: it was never acknowledged, since the
//! `fdatasync` that would have covered it did not return.
//!
//! Since sled only ever receives commits whose frames are durable, what it recovers after a crash is
//! its last checkpoint plus some of the journal's writes, in no order it promises. At open, [`replay`]
//! applies every frame of the journal again, in order: each sets its keys to whole values, so the
//! result is the checkpoint plus every journaled commit, whatever part of them sled had. (A store last
//! written by a build from before the backlog may hold commits newer than its journal, applied whole
//! before their fsync; its journal, all older, is then left unapplied.)

use crate::error::StoreError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// The journal's file name in the store's directory.
const FILE: &str = "journal";

/// A journal longer than this is checkpointed: sled is flushed and the journal emptied.
const CHECKPOINT: u64 = 32 << 20;

/// Bytes of a frame's header.
const HEADER: usize = 8;

/// One staged operation: a key and its new value (`None`: removed).
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// The open journal file, appended to by group commit only.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    len: u64,
}

impl Journal {
    /// Opens the journal of the store in `dir`, creating it (0600, its directory entry made durable)
    /// when it is missing.
    pub(crate) fn open(dir: &Path) -> Result<Journal, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(FILE);
        let created = !path.exists();
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        if created {
            File::open(dir)?.sync_all()?;
        }
        let len = file.metadata()?.len();
        Ok(Journal { file, len })
    }

    /// Appends `frames` and makes them durable.
    pub(crate) fn append(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(frames)?;
        self.file.sync_data()?;
        self.len = self.len.saturating_add(u64::try_from(frames.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    /// True once the journal is long enough to be checkpointed.
    pub(crate) fn is_full(&self) -> bool {
        self.len > CHECKPOINT
    }

    /// Empties the journal, once everything it holds is durable in sled.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.len = 0;
        Ok(())
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Keys and values are bounded far below 4 GiB (a deployment is at most 1 MiB).
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

/// Appends the frame of one commit (the generation it made and its operations) to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, generation: u64, ops: &[Op]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&generation.to_le_bytes());
    put_len(out, ops.len());
    for (key, value) in ops {
        put_len(out, key.len());
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                put_len(out, value.len());
                out.extend_from_slice(value);
            }
        }
    }
    let payload = out.get(start.saturating_add(HEADER)..).unwrap_or_default();
    let (len, crc) = (u32::try_from(payload.len()).unwrap_or(u32::MAX), crc32fast::hash(payload));
    if let Some(header) = out.get_mut(start..start.saturating_add(HEADER)) {
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// A cursor over a frame's payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

/// One decoded commit.
struct Entry {
    generation: u64,
    batch: sled::Batch,
}

fn decode(payload: &[u8]) -> Option<Entry> {
    let mut reader = Reader(payload);
    let generation = reader.u64()?;
    let mut batch = sled::Batch::default();
    for _ in 0..reader.u32()? {
        let key = reader.bytes()?;
        match reader.take(1)? {
            [0] => batch.remove(key),
            [1] => batch.insert(key, reader.bytes()?),
            _ => return None,
        }
    }
    reader.0.is_empty().then_some(Entry { generation, batch })
}

/// The commits a journal holds, in order, up to the first frame cut short or corrupt.
fn entries(journal: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut rest = Reader(journal);
    while let (Some(len), Some(crc)) = (rest.u32(), rest.u32()) {
        let Some(payload) = usize::try_from(len).ok().and_then(|len| rest.take(len)) else { break };
        match decode(payload) {
            Some(entry) if crc32fast::hash(payload) == crc => entries.push(entry),
            _ => break,
        }
    }
    entries
}

/// Brings the store in `dir` up to date with its journal before it is opened (or rewritten): applies
/// every commit of the journal again, in order, flushes sled, and empties the journal. A crash at any
/// point leaves a journal that replays to the same state.
pub(crate) fn replay(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(FILE);
    let journal = match std::fs::read(&path) {
        Ok(journal) if !journal.is_empty() => journal,
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let db = crate::store::open_engine(dir)?;
    let tree = db.open_tree("zos")?;
    let recovered = crate::store::generation_of(&tree)?;
    let entries = entries(&journal);
    // sled ahead of the whole journal: only a build from before the backlog applied commits to sled
    // before their frames were durable, as whole batches; it then holds them all already.
    let replayed = if entries.last().is_some_and(|last| last.generation < recovered) { 0 } else { entries.len() };
    for entry in entries.into_iter().take(replayed) {
        tree.apply_batch(entry.batch)?;
    }
    crate::store::flush_engine(&db, dir)?;
    drop(tree);
    drop(db);
    tracing::info!(store = %dir.display(), replayed, "journal replayed");
    Journal::open(dir)?.clear()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<Op> {
        vec![(b"a".to_vec(), Some(b"one".to_vec())), (b"b".to_vec(), None), (Vec::new(), Some(Vec::new()))]
    }

    #[test]
    fn frames_decode_in_order_and_stop_at_a_torn_or_corrupt_one() {
        let mut journal = Vec::new();
        for generation in 1..=3 {
            frame(&mut journal, generation, &ops());
        }
        let whole = journal.len();
        assert_eq!(entries(&journal).iter().map(|e| e.generation).collect::<Vec<_>>(), [1, 2, 3]);
        for cut in 0..whole {
            let kept = entries(&journal[..cut]).len();
            assert!(kept < 3, "a journal cut at {cut} of {whole} bytes kept its last frame");
        }
        let last = journal.len() - 1;
        journal[last] ^= 1;
        assert_eq!(entries(&journal).len(), 2, "a frame failing its checksum ends the journal");
    }

    /// A journal of three commits, each writing key `k` and a key of its own, over a sled tree whose
    /// state the closure sets; returns what sled holds after the replay.
    fn replayed_over(sled: impl FnOnce(&sled::Tree)) -> Vec<(Vec<u8>, Vec<u8>)> {
        let dir = tempfile::tempdir().expect("the test store");
        let mut journal = Vec::new();
        for generation in 1..=3u64 {
            let ops = vec![
                (b"k".to_vec(), Some(generation.to_string().into_bytes())),
                (format!("own{generation}").into_bytes(), Some(b"x".to_vec())),
                (crate::key::meta("generation"), Some(generation.to_string().into_bytes())),
            ];
            frame(&mut journal, generation, &ops);
        }
        {
            let db = crate::store::open_engine(dir.path()).expect("the test store");
            sled(&db.open_tree("zos").expect("the test store"));
            crate::store::flush_engine(&db, dir.path()).expect("the test store");
        }
        std::fs::write(dir.path().join(FILE), &journal).expect("the test store");
        replay(dir.path()).expect("the test store");
        let db = crate::store::open_engine(dir.path()).expect("the test store");
        let tree = db.open_tree("zos").expect("the test store");
        tree.iter()
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .expect("the test store")
    }

    #[test]
    fn sled_holding_any_part_of_the_journal_replays_to_all_of_it() {
        let whole = replayed_over(|_| ());
        assert_eq!(whole.len(), 5, "{whole:?}");
        // The last commit's generation and its own key, none of the first two: not a prefix.
        let part = replayed_over(|tree| {
            tree.insert(crate::key::meta("generation"), b"3").expect("the test store");
            tree.insert(b"own3", b"x").expect("the test store");
            tree.insert(b"k", b"3").expect("the test store");
        });
        assert_eq!(part, whole);
    }

    #[test]
    fn sled_ahead_of_its_journal_keeps_what_it_holds() {
        // A build from before the backlog applied commit 4 whole before its frame was durable.
        let ahead = replayed_over(|tree| {
            tree.insert(crate::key::meta("generation"), b"4").expect("the test store");
            tree.insert(b"k", b"4").expect("the test store");
        });
        assert_eq!(ahead, [(crate::key::meta("generation"), b"4".to_vec()), (b"k".to_vec(), b"4".to_vec())]);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = entries(&bytes);
        }
    }
}
