//! The backlog: commits made (reads see them) and not yet written into sled.
//!
//! A commit is staged here, not in sled: its operations become visible to every read at once, and its
//! journal frame waits for group commit. Only once the frames of a round are durable in the journal
//! is the round written into sled, key by key, and taken out of the backlog. So sled never holds a
//! commit that was not durable, whatever the crash, and a commit costs the door a few in-memory
//! copies: sled's writes are made once per round, off the door's path, and without `apply_batch`,
//! whose global write lock would stall every read (and so the door) while it ran.

use crate::error::StoreError;
use crate::journal::{self, Op};
use std::collections::BTreeMap;

/// The commits not yet in sled: what reads see over sled, and the frames and operations waiting for
/// the next round.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// The newest staged value of every key some commit of the backlog wrote (`None`: removed), with
    /// the number of the commit that wrote it.
    values: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    /// The journal frames of the commits not yet taken into a round.
    frames: Vec<u8>,
    /// Their operations, in commit order.
    ops: Vec<Op>,
    /// The number of the last commit staged.
    last: u64,
}

/// The commits taken together to the journal (one `write`, one `fdatasync`) and then into sled:
/// everything staged up to commit `last`.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub(crate) frames: Vec<u8>,
    pub(crate) ops: Vec<Op>,
    pub(crate) last: u64,
}

impl Round {
    /// True when no commit was staged since the last round.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The round's writes, one per key in key order: a key written by several of its commits has the
    /// last one's value (`None`: removed).
    pub(crate) fn writes(&self) -> BTreeMap<&[u8], Option<&[u8]>> {
        self.ops.iter().map(|(key, value)| (key.as_slice(), value.as_deref())).collect()
    }
}

impl Backlog {
    /// Stages commit number `seq` (the store's `generation` among its operations): its values become
    /// what reads see, and its frame waits for the next round.
    pub(crate) fn stage(&mut self, seq: u64, generation: u64, ops: Vec<Op>) {
        journal::frame(&mut self.frames, generation, &ops);
        for (key, value) in &ops {
            self.values.insert(key.clone(), (seq, value.clone()));
        }
        self.ops.extend(ops);
        self.last = seq;
    }

    /// The number of the last commit staged (0: none since the store opened).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// What the backlog holds for `key`: `Some(None)` when a commit removed it, `None` when no commit
    /// of the backlog wrote it (sled has it as it is).
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.values.get(key).map(|(_, value)| value.as_deref())
    }

    /// The keys under `prefix` the backlog wrote, in key order, with their staged values.
    pub(crate) fn with_prefix(&self, prefix: &[u8]) -> Vec<Op> {
        self.values
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, (_, value))| (key.clone(), value.clone()))
            .collect()
    }

    /// Takes every commit staged so far as the next round.
    pub(crate) fn take(&mut self) -> Round {
        Round { frames: std::mem::take(&mut self.frames), ops: std::mem::take(&mut self.ops), last: self.last }
    }

    /// Forgets what `round` wrote, now that sled holds it; a key a later commit wrote again stays.
    pub(crate) fn settle(&mut self, round: &Round) {
        for (key, _) in &round.ops {
            if self.values.get(key).is_some_and(|(seq, _)| *seq <= round.last) {
                self.values.remove(key);
            }
        }
    }
}

/// A prefix scan of sled overlaid with the backlog's records under the same prefix, in key order: a
/// key the backlog wrote reads as the backlog has it (or not at all when it was removed).
pub(crate) struct Scan {
    sled: std::iter::Peekable<sled::Iter>,
    staged: std::iter::Peekable<std::vec::IntoIter<Op>>,
}

impl Scan {
    pub(crate) fn new(sled: sled::Iter, staged: Vec<Op>) -> Scan {
        Scan { sled: sled.peekable(), staged: staged.into_iter().peekable() }
    }
}

impl Iterator for Scan {
    type Item = Result<(sled::IVec, sled::IVec), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            // Which comes first; a sled error is passed on once the backlog's records are.
            let order = match (self.sled.peek(), self.staged.peek()) {
                (_, None) => Ordering::Less,
                (Some(Ok((key, _))), Some((staged, _))) => key.as_ref().cmp(staged.as_slice()),
                (None | Some(Err(_)), Some(_)) => Ordering::Greater,
            };
            match order {
                Ordering::Less => return self.sled.next().map(|item| item.map_err(StoreError::from)),
                // The backlog's value is newer than sled's.
                Ordering::Equal => drop(self.sled.next()),
                Ordering::Greater => {}
            }
            if let Some((key, Some(value))) = self.staged.next() {
                return Some(Ok((key.into(), value.into())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Op {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    #[test]
    fn a_settled_round_leaves_what_later_commits_wrote() {
        let mut backlog = Backlog::default();
        backlog.stage(1, 1, vec![put("a", "1"), put("b", "1")]);
        let round = backlog.take();
        backlog.stage(2, 2, vec![put("b", "2"), (b"c".to_vec(), None)]);
        assert_eq!(round.last, 1);
        backlog.settle(&round);
        assert_eq!(backlog.get(b"a"), None, "sled holds it now");
        assert_eq!(backlog.get(b"b"), Some(Some(&b"2"[..])), "written again after the round");
        assert_eq!(backlog.get(b"c"), Some(None), "a removal reads as removed");
        let next = backlog.take();
        assert_eq!((next.last, next.ops.len()), (2, 2), "the next round holds only what came after");
        backlog.settle(&next);
        assert!(backlog.with_prefix(b"").is_empty());
        assert!(backlog.take().is_empty());
    }

    #[test]
    fn a_scan_reads_the_backlog_over_sled_in_key_order() {
        let db = sled::Config::new().temporary(true).open().expect("the test store");
        for key in ["pa", "pc", "pe", "q"] {
            db.insert(key, "sled").expect("the test store");
        }
        let mut backlog = Backlog::default();
        backlog.stage(1, 1, vec![put("pb", "new"), put("pc", "new"), (b"pe".to_vec(), None), put("pf", "new")]);
        backlog.stage(2, 2, vec![(b"pg".to_vec(), None), put("r", "new")]);
        let scanned: Vec<(String, String)> = Scan::new(db.scan_prefix("p"), backlog.with_prefix(b"p"))
            .map(|item| item.map(|(k, v)| (String::from_utf8_lossy(&k).into(), String::from_utf8_lossy(&v).into())))
            .collect::<Result<_, _>>()
            .expect("the test store");
        let pairs =
            |list: &[(&str, &str)]| list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(scanned, pairs(&[("pa", "sled"), ("pb", "new"), ("pc", "new"), ("pf", "new")]));
    }

    #[test]
    fn a_round_writes_the_last_value_of_each_key() {
        let mut backlog = Backlog::default();
        backlog.stage(1, 1, vec![put("a", "1")]);
        backlog.stage(2, 2, vec![(b"a".to_vec(), None), put("k", "x")]);
        backlog.stage(3, 3, vec![put("a", "3"), (b"z".to_vec(), None)]);
        let round = backlog.take();
        let writes: Vec<_> = round.writes().into_iter().collect();
        assert_eq!(writes, [(&b"a"[..], Some(&b"3"[..])), (&b"k"[..], Some(&b"x"[..])), (&b"z"[..], None)]);
        assert_eq!(backlog.with_prefix(b"a").len(), 1);
    }
}
