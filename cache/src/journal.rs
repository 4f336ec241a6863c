//! The write-ahead journal: what makes a commit durable.
//!
//! sled 0.34's `flush` excludes every `apply_batch` while it runs, so a flush per group commit
//! serializes admission behind the disk. Instead each commit is staged in the store's backlog (reads
//! see it at once) and framed for this journal; group commit writes the frames of all the commits
//! made meanwhile after the journal's with one `fdatasync`, and only then applies them to sled. sled
//! itself is flushed only at a checkpoint (when the journal grows past [`CHECKPOINT`], and when the
//! store is closed), after which the journal is emptied.
//!
//! The file starts with a header: [`MAGIC`], the base generation (u64 LE: every commit up to it is in
//! sled) and the crc32 of both (u32 LE). Frames follow. A frame is `[payload length: u32 LE][crc32 of
//! the payload: u32 LE][payload]`; the payload is the store generation the commit made (u64 LE), its
//! number of operations (u32 LE) and each operation: key length (u32 LE), key, then `0` for a removal
//! or `1`, value length (u32 LE) and value. The journal is the frames numbered base + 1, base + 2, ...
//! in a row: a frame that is cut short, fails its checksum or breaks the row ends it. A frame cut
//! short or corrupt was never acknowledged, since the `fdatasync` that would have covered it did not
//! return; what breaks the row is left from before a checkpoint.
//!
//! Emptying the journal rewrites only its header (a new base) and keeps the file's blocks, and zeros
//! are written ahead of the frames ([`AHEAD`]): a frame overwrites blocks the file has, so its
//! `fdatasync` has no metadata to write (no size change for ext4 to journal first). Closing the store
//! truncates the journal to nothing. A journal written by a build from before the header has its
//! frames from offset 0 and is replayed as it was written.
//!
//! Since sled only ever receives commits whose frames are durable, what it recovers after a crash is
//! its last checkpoint plus some of the journal's writes, in no order it promises. At open, [`replay`]
//! applies every frame of the journal again, in order: each sets its keys to whole values, so the
//! result is the checkpoint plus every journaled commit, whatever part of them sled had. (A store last
//! written by a build from before the backlog may hold commits newer than its journal, applied whole
//! before their fsync; its journal, all older, is then left unapplied.)

use crate::error::StoreError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The journal's file name in the store's directory.
const FILE: &str = "journal";

/// A journal longer than this is checkpointed: sled is flushed and the journal emptied.
const CHECKPOINT: u64 = 32 << 20;

/// Bytes of a frame's header.
const HEADER: usize = 8;

/// What a journal starts with, since this build: this magic, the base generation (u64 LE) and the
/// crc32 of both (u32 LE). Its frames follow, and only frames numbered base + 1, base + 2, ... in a
/// row are the journal's: what follows them is left from before a checkpoint, or zeros written ahead.
/// (A journal of an earlier build has no header: its frames start at offset 0.)
const MAGIC: &[u8; 8] = b"zosjrnl1";

/// Bytes of the journal's header: the magic, the base generation, their crc32.
const START: u64 = 20;

/// How far ahead of its frames the journal is filled with zeros. A frame then overwrites blocks the
/// file already has, and its `fdatasync` writes no metadata (an append changes the file's size, whose
/// journaling on ext4 about doubles the sync's time); the size changes once a mebibyte.
const AHEAD: u64 = 1 << 20;

/// One staged operation: a key and its new value (`None`: removed).
pub(crate) type Op = (Vec<u8>, Option<Vec<u8>>);

/// The open journal file, written by group commit only.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    /// Where the next frame goes: the end of the journal's frames.
    len: u64,
    /// The file's size: zeros, or frames from before the last checkpoint, from `len` up to it.
    size: u64,
    /// The generation of the last frame written (the base when none was since the header).
    last: u64,
}

impl Journal {
    /// Opens the journal of the store in `dir` after its replay, empty, for commits after generation
    /// `base` (the store's): created when missing (0600, its directory entry made durable).
    pub(crate) fn open(dir: &Path, base: u64) -> Result<Journal, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(FILE);
        let created = !path.exists();
        let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).mode(0o600).open(&path)?;
        if created {
            File::open(dir)?.sync_all()?;
        }
        file.set_len(0)?;
        let mut journal = Journal { file, len: START, size: 0, last: base };
        journal.start(base)?;
        Ok(journal)
    }

    /// Writes the header for frames after generation `base`, durably; what the file held after it is
    /// no longer the journal's.
    fn start(&mut self, base: u64) -> Result<(), StoreError> {
        self.file.write_all_at(&header(base), 0)?;
        self.file.sync_data()?;
        (self.len, self.size, self.last) = (START, self.size.max(START), base);
        Ok(())
    }

    /// Writes `frames` (whole frames, in generation order) after the journal's and makes them
    /// durable, with zeros ahead of them when they reach the end of the file. The zeros are written
    /// first, over the frames' place too: a disk too full for them fails the commit before any byte of
    /// its frames is in the file, and the frames then overwrite blocks the file has.
    pub(crate) fn append(&mut self, frames: &[u8]) -> Result<(), StoreError> {
        let end = self.len.saturating_add(u64::try_from(frames.len()).unwrap_or(u64::MAX));
        if end > self.size {
            let grown = end.saturating_add(AHEAD);
            let zeros = vec![0; usize::try_from(grown.saturating_sub(self.len)).unwrap_or(usize::MAX)];
            self.file.write_all_at(&zeros, self.len)?;
            self.size = grown;
        }
        self.file.write_all_at(frames, self.len)?;
        self.file.sync_data()?;
        self.len = end;
        self.last = generations(frames).last().unwrap_or(self.last);
        Ok(())
    }

    /// True once the journal is long enough to be checkpointed.
    pub(crate) fn is_full(&self) -> bool {
        self.len > CHECKPOINT
    }

    /// Empties the journal, once everything it holds is durable in sled. The file keeps its blocks,
    /// for the next frames to overwrite.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.start(self.last)
    }

    /// Truncates the journal to nothing, once everything it holds is durable in sled and the store
    /// closes: an empty file, which every build reads as an empty journal.
    pub(crate) fn close(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        (self.len, self.size) = (0, 0);
        Ok(())
    }
}

/// The journal's header for frames after generation `base`.
fn header(base: u64) -> [u8; START as usize] {
    let mut header = [0; START as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&header[..16]);
    header[16..].copy_from_slice(&crc.to_le_bytes());
    header
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

/// The generations of whole frames, in order.
fn generations(frames: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut rest = Reader(frames);
    std::iter::from_fn(move || {
        let len = usize::try_from(rest.u32()?).ok()?;
        let payload = rest.take(len.checked_add(4)?)?;
        Reader(payload.get(4..)?).u64()
    })
}

/// The commits of frames, in order, up to the first frame cut short or corrupt, or, when `next` is
/// given, up to the first one not numbered `next`, `next + 1`, ... in a row.
fn frames(frames: &[u8], mut next: Option<u64>) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut rest = Reader(frames);
    while let (Some(len), Some(crc)) = (rest.u32(), rest.u32()) {
        let Some(payload) = usize::try_from(len).ok().and_then(|len| rest.take(len)) else { break };
        match decode(payload) {
            Some(entry) if crc32fast::hash(payload) == crc && next.is_none_or(|next| entry.generation == next) => {
                next = next.map(|next| next.saturating_add(1));
                entries.push(entry);
            }
            _ => break,
        }
    }
    entries
}

/// The commits a journal holds, in order: after its header, the frames that follow its base in a
/// row; without one (an earlier build's), its frames from the start. A header that fails its
/// checksum is an error, never guessed at.
fn entries(journal: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let Some(after) = journal.strip_prefix(MAGIC.as_slice()) else { return Ok(frames(journal, None)) };
    let mut header = Reader(after);
    let (base, crc) = (header.u64(), header.u32());
    let intact = journal.get(..16).is_some_and(|both| crc == Some(crc32fast::hash(both)));
    match base {
        Some(base) if intact => Ok(frames(header.0, Some(base.saturating_add(1)))),
        _ => Err(StoreError::Corrupt { key: FILE.into(), message: "the journal's header fails its checksum".into() }),
    }
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
    let entries = entries(&journal)?;
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
    let file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(0)?;
    Ok(file.sync_data()?)
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
        assert_eq!(frames(&journal, None).iter().map(|e| e.generation).collect::<Vec<_>>(), [1, 2, 3]);
        for cut in 0..whole {
            let kept = frames(&journal[..cut], None).len();
            assert!(kept < 3, "a journal cut at {cut} of {whole} bytes kept its last frame");
        }
        let last = journal.len() - 1;
        journal[last] ^= 1;
        assert_eq!(frames(&journal, None).len(), 2, "a frame failing its checksum ends the journal");
    }

    /// The generations a journal file holds, as replay reads them.
    fn journaled(dir: &Path) -> Vec<u64> {
        let journal = std::fs::read(dir.join(FILE)).expect("the journal");
        entries(&journal).expect("an intact header").iter().map(|entry| entry.generation).collect()
    }

    fn framed(generations: std::ops::RangeInclusive<u64>, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for generation in generations {
            frame(&mut out, generation, &[(b"k".to_vec(), Some(value.to_vec()))]);
        }
        out
    }

    /// After a checkpoint the journal's frames overwrite the file in place, over the frames of before
    /// (and the zeros written ahead), which are not the journal's any more: replay reads only the
    /// frames that follow the header's base in a row.
    #[test]
    fn frames_left_from_before_a_checkpoint_are_not_replayed() {
        let dir = tempfile::tempdir().expect("the test store");
        let mut journal = Journal::open(dir.path(), 7).expect("the journal");
        assert_eq!(journaled(dir.path()), Vec::<u64>::new());
        journal.append(&framed(8..=9, &[1; 100])).expect("append");
        journal.append(&framed(10..=12, &[2; 100])).expect("append");
        assert_eq!(journaled(dir.path()), [8, 9, 10, 11, 12]);
        let size = std::fs::metadata(dir.path().join(FILE)).expect("the journal").len();
        assert!(size >= START + AHEAD, "zeros are written ahead of the frames: {size} bytes");
        journal.clear().expect("checkpoint");
        assert_eq!(journaled(dir.path()), Vec::<u64>::new(), "an emptied journal replays nothing of before");
        // Of the size of those it overwrites: frames 9 to 12 follow it whole, with their checksums.
        journal.append(&framed(13..=13, &[3; 100])).expect("append");
        assert_eq!(journaled(dir.path()), [13], "the frames of before, after the new one, are not replayed");
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).expect("the journal").len(), size, "overwritten in place");
        journal.close().expect("close");
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).expect("the journal").len(), 0, "closed: empty");
    }

    /// A frame that does not follow the base (one from before the checkpoint at the start, or a gap)
    /// ends the journal; a header that fails its checksum is an error, not an empty journal.
    #[test]
    fn only_frames_following_the_base_in_a_row_are_the_journals() {
        let with = |base: u64, frames: &[u8]| [header(base).as_slice(), frames].concat();
        let gens = |journal: &[u8]| -> Vec<u64> {
            entries(journal).expect("an intact header").iter().map(|entry| entry.generation).collect()
        };
        assert_eq!(gens(&with(4, &framed(5..=7, b"v"))), [5, 6, 7]);
        assert_eq!(gens(&with(5, &framed(5..=7, b"v"))), Vec::<u64>::new(), "a frame from before the base");
        let gap = [framed(5..=5, b"v"), framed(7..=7, b"v")].concat();
        assert_eq!(gens(&with(4, &gap)), [5], "a gap ends the journal");
        let mut torn = with(4, &framed(5..=5, b"v"));
        torn[9] ^= 1;
        assert!(matches!(entries(&torn), Err(StoreError::Corrupt { .. })));
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
            let _ = entries(&[MAGIC.as_slice(), &bytes].concat());
        }
    }
}
