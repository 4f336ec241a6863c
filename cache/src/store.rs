//! The store: one sled tree, one writer at a time, and a durable commit per user action.

use crate::backlog::{Backlog, Round, Scan};
use crate::error::StoreError;
use crate::job::{Job, JobId};
use crate::journal::{self, Journal, Op};
use crate::key;
use crate::{compaction, migration};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use zos_types::{
    Deployment, ReservationRecord, ResultState, SignatureRequirement, Timestamp, Workload, WorkloadId, WorkloadResult,
    validate_name,
};

/// The schema this build reads and writes (a store of schema 1 is migrated at open, one of schema 2 is
/// taken as it is: its records are valid schema 3 records).
pub const SCHEMA_VERSION: u32 = 3;

/// The schema whose stores open as [`SCHEMA_VERSION`] with no record rewritten: schema 3 only lets a
/// record hold its log's first step itself ([`Record::next_seq`]), which no schema 2 record does.
const SCHEMA_WITHOUT_IMPLICIT_STEP: u32 = 2;

pub(crate) const SCHEMA: &str = "schema";
const GENERATION: &str = "generation";
const JOB_SEQ: &str = "job_seq";

/// A deployment as stored under its `D` key: its own fields and its active workloads, in deployment
/// order, each with its current result. Borrowed when encoded from a [`Deployment`], owned when read;
/// a new deployment's workloads are encoded once, for its record and its log ([`Prepared::new`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record<'a, W = Cow<'a, [Workload]>> {
    pub(crate) version: u32,
    pub(crate) metadata: Cow<'a, str>,
    pub(crate) description: Cow<'a, str>,
    pub(crate) signature_requirement: Cow<'a, SignatureRequirement>,
    pub(crate) workloads: W,
    /// Next sequence number of the result log. [`IMPLICIT_FIRST_STEP`] for a record that has not
    /// changed since its create: the log's first step is then the record's own workloads, under no `H`
    /// key, written out when the record first changes ([`Txn::changing`]), so that a create writes one
    /// key less.
    pub(crate) next_seq: u64,
}

/// A record as read from the store.
pub(crate) type Stored = Record<'static>;

/// [`Record::next_seq`] of a record whose log's first step is implicit (the record's workloads).
pub(crate) const IMPLICIT_FIRST_STEP: u64 = 1;

impl Record<'_> {
    fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|workload| workload.name == name)
    }

    fn deployment(self, twin: u32, contract: u64) -> Deployment {
        Deployment {
            version: self.version,
            twin_id: twin,
            contract_id: contract,
            metadata: self.metadata.into_owned(),
            description: self.description.into_owned(),
            expiration: Timestamp::default(),
            signature_requirement: self.signature_requirement.into_owned(),
            workloads: self.workloads.into_owned(),
        }
    }
}

/// The reservations of one deployment's workloads, by name, as stored under its `R` key.
pub(crate) type Reservations = BTreeMap<String, ReservationRecord>;

/// A new deployment checked and encoded for the store ahead of its change, so that the work is done
/// by the caller's thread rather than while holding the writer ([`Txn::create_prepared`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    twin: u32,
    contract: u64,
    record: Vec<u8>,
    sharable: Vec<String>,
}

impl Prepared {
    /// Checks the deployment's workloads (valid names, each once, valid results) and encodes its
    /// record, which holds the first step of its log too.
    pub fn new(deployment: &Deployment) -> Result<Prepared, StoreError> {
        let mut names = std::collections::BTreeSet::new();
        for workload in &deployment.workloads {
            Txn::check_workload(workload)?;
            if !names.insert(workload.name.as_str()) {
                return Err(StoreError::WorkloadExists(workload.name.clone()));
            }
        }
        let workloads = serde_json::value::to_raw_value(&deployment.workloads)
            .map_err(|err| StoreError::Invalid(format!("workloads cannot be encoded: {err}")))?;
        let record = Record {
            version: deployment.version,
            metadata: Cow::Borrowed(&deployment.metadata),
            description: Cow::Borrowed(&deployment.description),
            signature_requirement: Cow::Borrowed(&deployment.signature_requirement),
            workloads: &*workloads,
            next_seq: IMPLICIT_FIRST_STEP,
        };
        Ok(Prepared {
            twin: deployment.twin_id,
            contract: deployment.contract_id,
            record: encode(&record),
            sharable: deployment
                .workloads
                .iter()
                .filter(|workload| workload.kind().is_sharable())
                .map(|workload| workload.name.clone())
                .collect(),
        })
    }
}

/// How long `open` waits for the engine's file lock: sled releases it from a background thread a
/// moment after the previous handle in the same process is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn open_engine(path: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        // No periodic flush of sled's own: the journal makes commits durable, and sled is flushed at
        // checkpoints (a flush excludes every commit while it runs).
        match sled::Config::new().path(path).flush_every_ms(None).open() {
            Err(sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

/// Makes everything applied to the sled engine of the store in `dir` durable: its flush (which uses
/// `sync_file_range`, not enough for power loss) followed by `fsync` of its data file.
pub(crate) fn flush_engine(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    db.flush()?;
    File::open(dir.join("db"))?.sync_all()?;
    Ok(())
}

/// The number of committed changes a store's tree holds (every commit writes it in its batch).
pub(crate) fn generation_of(tree: &sled::Tree) -> Result<u64, StoreError> {
    let key = key::meta(GENERATION);
    Ok(tree.get(&key)?.map(|bytes| decode(&key, &bytes)).transpose()?.unwrap_or(0))
}

/// The store holds every tenant's secrets (WireGuard keys in network data): its directory is 0700 and
/// its files 0600, set here rather than left to the umask of whoever starts the daemon.
fn restrict(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let mode = if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
                0o700
            } else {
                0o600
            };
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// The durable node state. Cheap to share between threads; writes are serialized.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    journal: Mutex<Journal>,
    writer: Mutex<()>,
    poisoned: AtomicBool,
    /// The commits made (reads see them) and not yet applied to sled.
    backlog: Mutex<Backlog>,
    /// The turn to apply a durable round to sled: taken before the journal is let go, so rounds go into
    /// sled in the order they went into the journal.
    applier: Mutex<()>,
    /// Group commit: how far durability reached, and whether a sync is running.
    durability: Mutex<Durability>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct Durability {
    durable: u64,
    syncing: bool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::SeqCst) {
            // After a failed write sled 0.34 waits forever in the flush it runs when its last handle
            // drops. Keep one handle alive instead: the process can go on (and should exit to reopen).
            std::mem::forget(self.db.clone());
            std::mem::forget(self.tree.clone());
        } else if let Err(err) = self.sync_applied().and_then(|()| {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            flush_engine(&self.db, &self.path)?;
            journal.close()
        }) {
            tracing::warn!(store = %self.path.display(), "closing checkpoint failed, the journal replays at open: {err}");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|err| StoreError::Corrupt { key: key::printable(key), message: err.to_string() })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain structs with string keys: encoding cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the store in directory `path`. A store written by another schema version is
    /// refused, never reinterpreted.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        compaction::recover(&path)?;
        journal::replay(&path)?;
        if let Err(err) = compaction::compact_if_bloated(&path) {
            // The store itself is untouched: open it as it is, only larger than it needs to be.
            tracing::warn!(store = %path.display(), "compaction failed, the store stays as it is: {err}");
        }
        migration::migrate(&path)?;
        restrict(&path)?;
        let db = open_engine(&path)?;
        let tree = db.open_tree("zos")?;
        let journal = Journal::open(&path, generation_of(&tree)?)?;
        restrict(&path)?;
        let store = Store {
            path,
            db,
            tree,
            journal: Mutex::new(journal),
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            backlog: Mutex::new(Backlog::default()),
            applier: Mutex::new(()),
            durability: Mutex::new(Durability::default()),
            synced: Condvar::new(),
        };
        match store.tree.get(key::meta(SCHEMA))? {
            Some(found) => {
                let found = String::from_utf8_lossy(&found).into_owned();
                if found == SCHEMA_WITHOUT_IMPLICIT_STEP.to_string() {
                    tracing::info!(store = %store.path.display(), "store of schema {found} opened as schema {SCHEMA_VERSION}");
                    store.tree.insert(key::meta(SCHEMA), SCHEMA_VERSION.to_string().as_bytes())?;
                    flush_engine(&store.db, &store.path)?;
                } else if found != SCHEMA_VERSION.to_string() {
                    return Err(StoreError::UnknownSchema { found, supported: SCHEMA_VERSION });
                }
            }
            None if store.tree.is_empty() => {
                store.tree.insert(key::meta(SCHEMA), SCHEMA_VERSION.to_string().as_bytes())?;
                flush_engine(&store.db, &store.path)?;
                File::open(&store.path)?.sync_all()?;
            }
            None => {
                return Err(StoreError::UnknownSchema {
                    found: "none (records without a schema)".into(),
                    supported: SCHEMA_VERSION,
                });
            }
        }
        Ok(store)
    }

    /// True once a commit failed: every later commit fails too, until the store is reopened (sled 0.34
    /// cannot recover in place), so the process should exit and be restarted.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes sled and empties the journal, whose commits sled then holds durably.
    fn checkpoint(&self, journal: &mut Journal) -> Result<(), StoreError> {
        flush_engine(&self.db, &self.path)?;
        journal.clear()
    }

    fn lock_backlog(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the frames of the commits made so far to the journal with one `fdatasync`
    /// (checkpointing a full journal first), and returns them as a round, with the turn to apply it to
    /// sled when it holds any commit.
    fn persist(&self) -> Result<(Round, Option<MutexGuard<'_, ()>>), StoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let round = self.lock_backlog().take();
        if round.is_empty() {
            return Ok((round, None));
        }
        if journal.is_full() {
            // Every round appended before this one is in sled once its applier lets go.
            let _applied = self.applier.lock().unwrap_or_else(|p| p.into_inner());
            self.checkpoint(&mut journal)?;
        }
        journal.append(&round.frames)?;
        let turn = self.applier.lock().unwrap_or_else(|p| p.into_inner());
        Ok((round, Some(turn)))
    }

    /// Applies a durable round to sled and takes it out of the backlog. Key by key, not as one
    /// `apply_batch`: a batch excludes every read of sled while it runs (sled 0.34's concurrency
    /// control), which would stall the door behind the round, and sled needs no atomicity here since
    /// the journal holds the whole round and replays it ([`journal::replay`]). A failure poisons the
    /// store (the daemon restarts and replays the journal) but takes nothing back: the round's commits
    /// are durable.
    fn settle(&self, round: &Round, _turn: MutexGuard<'_, ()>) {
        let applied = round.writes().into_iter().try_for_each(|(key, value)| match value {
            Some(value) => self.tree.insert(key, value).map(drop),
            None => self.tree.remove(key).map(drop),
        });
        match applied {
            Ok(()) => self.lock_backlog().settle(round),
            Err(err) => {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(store = %self.path.display(), "applying durable commits to sled failed, the journal replays them at open: {err}");
            }
        }
    }

    /// Waits until commit `seq` (and every commit made before it) is durable. Group commit: the first
    /// waiter appends every commit made so far to the journal with one fdatasync while later ones wait
    /// for it, so the commits made while a sync runs share the next one. The waiter that synced then
    /// applies its round to sled, after the others were told.
    fn wait_durable(&self, seq: u64) -> Result<(), StoreError> {
        let mut state = self.durability.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.poisoned.load(Ordering::SeqCst) {
                return Err(StoreError::Poisoned);
            }
            if state.durable >= seq {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            drop(state);
            let persisted = self.persist();
            state = self.durability.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            let (round, turn) = match persisted {
                Ok(persisted) => persisted,
                Err(err) => {
                    self.poisoned.store(true, Ordering::SeqCst);
                    self.synced.notify_all();
                    return Err(err);
                }
            };
            state.durable = state.durable.max(round.last);
            self.synced.notify_all();
            drop(state);
            if let Some(turn) = turn {
                self.settle(&round, turn);
            }
            if round.last >= seq {
                return Ok(());
            }
            state = self.durability.lock().unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Returns once `commit` is durable (with the changes applied before it): group commit, as
    /// [`Pending::wait`].
    pub fn wait(&self, commit: Commit) -> Result<(), StoreError> {
        self.wait_durable(commit.0)
    }

    /// Makes everything applied so far durable (a reader that must act only on durable state, such as
    /// the job loop, calls it first); free when nothing is pending.
    pub fn sync_applied(&self) -> Result<(), StoreError> {
        let last = self.lock_backlog().last();
        self.wait_durable(last)
    }

    /// Starts an atomic, durable change. Only one runs at a time; reads outside it see committed state.
    pub fn begin(&self) -> Txn<'_> {
        let guard = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Txn { store: self, _guard: guard, pending: BTreeMap::new(), journal: None }
    }

    /// The committed value of `key`: the backlog's, else sled's.
    fn get_raw(&self, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        if let Some(staged) = self.lock_backlog().get(key) {
            return Ok(staged.map(sled::IVec::from));
        }
        Ok(self.tree.get(key)?)
    }

    pub(crate) fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.get_raw(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// The committed records under `prefix`, in key order: sled's, overlaid with the backlog's.
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        let staged = self.lock_backlog().with_prefix(prefix);
        Scan::new(self.tree.scan_prefix(prefix), staged)
    }

    /// Number of committed changes since the store was created.
    pub fn generation(&self) -> Result<u64, StoreError> {
        Ok(self.read(&key::meta(GENERATION))?.unwrap_or(0))
    }

    /// A deployment with its active workloads (in deployment order) and their current results.
    pub fn get(&self, twin: u32, contract: u64) -> Result<Deployment, StoreError> {
        let record: Stored = self.read(&key::deployment(twin, contract))?.ok_or(StoreError::DeploymentNotExists)?;
        Ok(record.deployment(twin, contract))
    }

    /// The current state of an active workload: one read, whatever the length of its history.
    pub fn current(&self, twin: u32, contract: u64, name: &str) -> Result<Workload, StoreError> {
        let record: Stored = self.read(&key::deployment(twin, contract))?.ok_or(StoreError::WorkloadNotExist)?;
        record.workload(name).cloned().ok_or(StoreError::WorkloadNotExist)
    }

    /// The whole result log of a deployment, oldest first.
    pub fn changes(&self, twin: u32, contract: u64) -> Result<Vec<Workload>, StoreError> {
        let record: Stored = self.read(&key::deployment(twin, contract))?.ok_or(StoreError::DeploymentNotExists)?;
        if record.next_seq == IMPLICIT_FIRST_STEP {
            return Ok(record.workloads.into_owned());
        }
        let mut changes = Vec::new();
        for item in self.scan(&key::history_prefix(twin, contract)) {
            let (k, v) = item?;
            changes.extend(decode::<Vec<Workload>>(&k, &v)?);
        }
        Ok(changes)
    }

    /// Twins with at least one deployment, ascending.
    pub fn twins(&self) -> Result<Vec<u32>, StoreError> {
        let mut twins: Vec<u32> = Vec::new();
        for item in self.scan(&[key::DEPLOYMENT]) {
            let (k, _) = item?;
            if let Some((twin, _)) = key::twin_contract(&k)
                && twins.last() != Some(&twin)
            {
                twins.push(twin);
            }
        }
        Ok(twins)
    }

    /// Contracts of a twin, ascending.
    pub fn by_twin(&self, twin: u32) -> Result<Vec<u64>, StoreError> {
        self.scan(&key::twin_deployments(twin))
            .map(|item| item.map(|(k, _)| key::twin_contract(&k).map(|(_, contract)| contract).unwrap_or_default()))
            .collect()
    }

    /// Every stored reservation, to rebuild the ledger exactly at start.
    pub fn reservations(&self) -> Result<Vec<(WorkloadId, ReservationRecord)>, StoreError> {
        let mut reservations = Vec::new();
        for item in self.scan(&[key::RESERVATION]) {
            let (k, v) = item?;
            let (twin, contract) = key::twin_contract(&k).ok_or_else(|| StoreError::Corrupt {
                key: key::printable(&k),
                message: "bad reservation key".into(),
            })?;
            let records: Reservations = decode(&k, &v)?;
            reservations
                .extend(records.into_iter().map(|(name, record)| (WorkloadId::new(twin, contract, &name), record)));
        }
        Ok(reservations)
    }

    /// The reservation of one workload.
    pub fn reservation(&self, twin: u32, contract: u64, name: &str) -> Result<Option<ReservationRecord>, StoreError> {
        let records: Option<Reservations> = self.read(&key::reservation(twin, contract))?;
        Ok(records.and_then(|mut records| records.remove(name)))
    }

    /// The oldest queued job, without removing it (at-least-once: acknowledge it when done).
    pub fn peek_job(&self) -> Result<Option<(JobId, Job)>, StoreError> {
        match self.scan(&[key::JOB]).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                let seq = key::job_seq(&k)
                    .ok_or_else(|| StoreError::Corrupt { key: key::printable(&k), message: "bad job key".into() })?;
                Ok(Some((JobId(seq), decode(&k, &v)?)))
            }
        }
    }

    /// The deletes asked for and not done yet (a module failed them): `(twin, contract, reason)`.
    pub fn deletes_asked(&self) -> Result<Vec<(u32, u64, String)>, StoreError> {
        self.scan(&[key::DELETING])
            .map(|item| {
                let (k, v) = item?;
                let (twin, contract) = key::twin_contract(&k)
                    .ok_or_else(|| StoreError::Corrupt { key: key::printable(&k), message: "bad delete key".into() })?;
                Ok((twin, contract, decode(&k, &v)?))
            })
            .collect()
    }

    /// The failed workloads whose cleanup failed too, to be cleaned up again: `(twin, contract, name)`.
    pub fn cleanups_asked(&self) -> Result<Vec<(u32, u64, String)>, StoreError> {
        self.scan(&[key::CLEANUP])
            .map(|item| {
                let (k, _) = item?;
                key::twin_contract_name(&k)
                    .ok_or_else(|| StoreError::Corrupt { key: key::printable(&k), message: "bad cleanup key".into() })
            })
            .collect()
    }

    /// Every queued job, oldest first.
    pub fn jobs(&self) -> Result<Vec<(JobId, Job)>, StoreError> {
        self.scan(&[key::JOB])
            .map(|item| {
                let (k, v) = item?;
                let seq = key::job_seq(&k)
                    .ok_or_else(|| StoreError::Corrupt { key: key::printable(&k), message: "bad job key".into() })?;
                Ok((JobId(seq), decode(&k, &v)?))
            })
            .collect()
    }
}

/// An atomic change: everything staged in it is committed together and durably, or not at all.
/// Reads inside it see its own staged writes.
pub struct Txn<'a> {
    store: &'a Store,
    _guard: MutexGuard<'a, ()>,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Inside [`Txn::unit`]: each staged key with what was staged for it before, to take it back.
    journal: Option<Vec<Staged>>,
}

/// A key and what was staged for it before a change inside a unit (`None`: nothing was).
type Staged = (Vec<u8>, Option<Option<Vec<u8>>>);

impl<'a> Txn<'a> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(key) {
            Some(staged) => Ok(staged.clone()),
            None => Ok(self.store.get_raw(key)?.map(|bytes| bytes.to_vec())),
        }
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.get_raw(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.stage(key, Some(encode(value)));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.stage(key, None);
    }

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let before = self.pending.insert(key.clone(), value);
        if let Some(journal) = &mut self.journal {
            journal.push((key, before));
        }
    }

    /// Runs `change` as one unit of the transaction: when it fails, everything it staged is taken back
    /// and the transaction is as it was before it (a batch of user actions committed together, where
    /// one action's failure must not leave half of it in the batch). Units nest.
    pub fn unit<T, E>(&mut self, change: impl FnOnce(&mut Txn<'a>) -> Result<T, E>) -> Result<T, E> {
        let outer = self.journal.replace(Vec::new());
        let outcome = change(self);
        let journal = std::mem::replace(&mut self.journal, outer).unwrap_or_default();
        match &outcome {
            Ok(_) => {
                if let Some(outer) = &mut self.journal {
                    outer.extend(journal);
                }
            }
            Err(_) => {
                for (key, before) in journal.into_iter().rev() {
                    match before {
                        Some(value) => self.pending.insert(key, value),
                        None => self.pending.remove(&key),
                    };
                }
            }
        }
        outcome
    }

    /// Keys under a prefix, committed and staged, minus staged removals.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = std::collections::BTreeSet::new();
        for item in self.store.scan(prefix) {
            keys.insert(item?.0.to_vec());
        }
        for (k, staged) in self.pending.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match staged {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        Ok(keys.into_iter().collect())
    }

    fn stored(&self, twin: u32, contract: u64) -> Result<Stored, StoreError> {
        self.get(&key::deployment(twin, contract))?.ok_or(StoreError::DeploymentNotExists)
    }

    /// The record of a deployment about to change (`missing` when there is none). A record that has
    /// not changed since its create holds its log's first step itself; the step is written out here,
    /// before the record changes.
    fn changing(&mut self, twin: u32, contract: u64, missing: StoreError) -> Result<Stored, StoreError> {
        let mut record: Stored = self.get(&key::deployment(twin, contract))?.ok_or(missing)?;
        if record.next_seq == IMPLICIT_FIRST_STEP {
            self.put(key::history(twin, contract, IMPLICIT_FIRST_STEP), &record.workloads);
            record.next_seq = IMPLICIT_FIRST_STEP.saturating_add(1);
        }
        Ok(record)
    }

    fn put_stored(&mut self, twin: u32, contract: u64, record: &Stored) {
        self.put(key::deployment(twin, contract), record);
    }

    /// Appends one step to the deployment's result log: the whole of each workload it changed.
    fn append_log(&mut self, twin: u32, contract: u64, record: &mut Stored, workloads: &[Workload]) {
        let seq = record.next_seq;
        record.next_seq = seq.saturating_add(1);
        self.put(key::history(twin, contract, seq), &workloads);
    }

    fn check_result(result: &WorkloadResult) -> Result<(), StoreError> {
        result.validate().map_err(StoreError::Invalid)
    }

    /// What a workload must be to be stored: a valid name and a valid result.
    fn check_workload(workload: &Workload) -> Result<(), StoreError> {
        validate_name(&workload.name).map_err(StoreError::Invalid)?;
        Self::check_result(&workload.result)
    }

    /// Registers a sharable name, failing with ZOS's conflict error when another contract holds it.
    fn claim_sharable(&mut self, twin: u32, contract: u64, name: &str) -> Result<(), StoreError> {
        let key = key::sharable(twin, name);
        match self.get::<u64>(&key)? {
            Some(owner) if owner != contract => Err(StoreError::DeploymentConflict(name.to_string())),
            _ => {
                self.put(key, &contract);
                Ok(())
            }
        }
    }

    /// Frees a sharable workload's name, if its contract holds it.
    fn free_sharable(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        let key = key::sharable(twin, &workload.name);
        if workload.kind().is_sharable() && self.get::<u64>(&key)? == Some(contract) {
            self.remove(key);
        }
        Ok(())
    }

    /// Stores a new deployment with all its workloads (each with a valid result, normally `init`) and
    /// registers its sharable names. ZOS's `Create`: `exists` or `conflict` leave nothing behind.
    pub fn create(&mut self, deployment: &Deployment) -> Result<(), StoreError> {
        self.create_prepared(Prepared::new(deployment)?, [])
    }

    /// [`Txn::create`] of a deployment checked and encoded beforehand, with what the ledger granted its
    /// workloads (by name), added to those this change reserved for it already.
    pub fn create_prepared(
        &mut self,
        prepared: Prepared,
        reservations: impl IntoIterator<Item = (String, ReservationRecord)>,
    ) -> Result<(), StoreError> {
        let Prepared { twin, contract, record, sharable } = prepared;
        if self.get_raw(&key::deployment(twin, contract))?.is_some() {
            return Err(StoreError::DeploymentExists);
        }
        for name in &sharable {
            self.claim_sharable(twin, contract, name)?;
        }
        self.stage(key::deployment(twin, contract), Some(record));
        // The deployment is new, so its reservations are what this change staged and what it brings:
        // no committed record is read (one a create would find belongs to no deployment).
        let key = key::reservation(twin, contract);
        let mut records: Reservations = match self.pending.get(&key) {
            Some(Some(staged)) => decode(&key, staged)?,
            _ => Reservations::new(),
        };
        records.extend(reservations);
        if !records.is_empty() {
            self.put_reservations(twin, contract, &records);
        }
        Ok(())
    }

    /// Adds a workload to an existing deployment (ZOS's `Add`).
    pub fn add_workload(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        let mut record = self.changing(twin, contract, StoreError::DeploymentNotExists)?;
        Self::check_workload(workload)?;
        if record.workload(&workload.name).is_some() {
            return Err(StoreError::WorkloadExists(workload.name.clone()));
        }
        if workload.kind().is_sharable() {
            self.claim_sharable(twin, contract, &workload.name)?;
        }
        self.append_log(twin, contract, &mut record, std::slice::from_ref(workload));
        record.workloads.to_mut().push(workload.clone());
        self.put_stored(twin, contract, &record);
        Ok(())
    }

    /// Takes a workload out of the active set and frees its sharable name; its log stays (ZOS's `Remove`).
    /// Removing a name that is not active does nothing.
    pub fn remove_workload(&mut self, twin: u32, contract: u64, name: &str) -> Result<(), StoreError> {
        let mut record = self.changing(twin, contract, StoreError::DeploymentNotExists)?;
        let Some(pos) = record.workloads.iter().position(|it| it.name == name) else {
            return Ok(());
        };
        let workload = record.workloads.to_mut().remove(pos);
        self.remove(key::cleanup(twin, contract, name));
        self.free_sharable(twin, contract, &workload)?;
        self.put_stored(twin, contract, &record);
        Ok(())
    }

    /// Records a new result for an active workload (ZOS's `Transaction`): the whole workload is
    /// appended to the log, and becomes the current one unless its state is `unchanged`.
    pub fn record(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        Self::check_result(&workload.result)?;
        let mut record = self.changing(twin, contract, StoreError::WorkloadNotExist)?;
        let pos =
            record.workloads.iter().position(|it| it.name == workload.name).ok_or(StoreError::WorkloadNotExist)?;
        let stored = record.workloads[pos].kind();
        if stored != workload.kind() {
            return Err(StoreError::InvalidWorkloadType { stored, got: workload.kind() });
        }
        self.append_log(twin, contract, &mut record, std::slice::from_ref(workload));
        if workload.result.state != ResultState::Unchanged {
            record.workloads.to_mut()[pos] = workload.clone();
        }
        self.put_stored(twin, contract, &record);
        Ok(())
    }

    /// Updates the deployment's own fields (version, texts, signature requirement).
    pub fn update_header(&mut self, deployment: &Deployment) -> Result<(), StoreError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let mut record = self.changing(twin, contract, StoreError::DeploymentNotExists)?;
        record.version = deployment.version;
        record.metadata = Cow::Owned(deployment.metadata.clone());
        record.description = Cow::Owned(deployment.description.clone());
        record.signature_requirement = Cow::Owned(deployment.signature_requirement.clone());
        self.put_stored(twin, contract, &record);
        Ok(())
    }

    /// Appends an `error` result with `message` to every active workload (ZOS's `Error`), as one step
    /// of the log.
    pub fn error(&mut self, twin: u32, contract: u64, message: &str, created: Timestamp) -> Result<(), StoreError> {
        let mut record = self.changing(twin, contract, StoreError::DeploymentNotExists)?;
        let mut workloads = std::mem::take(&mut record.workloads).into_owned();
        for workload in &mut workloads {
            workload.result = WorkloadResult {
                created,
                state: ResultState::Error,
                error: message.to_string(),
                data: serde_json::Value::Null,
            };
        }
        self.append_log(twin, contract, &mut record, &workloads);
        record.workloads = Cow::Owned(workloads);
        self.put_stored(twin, contract, &record);
        Ok(())
    }

    /// Deletes a deployment with its log, its sharable names, its reservations and any job still queued
    /// for it, so that no job outlives its deployment (ZOS's `Delete`).
    pub fn delete(&mut self, twin: u32, contract: u64) -> Result<(), StoreError> {
        let record = self.stored(twin, contract)?;
        for workload in record.workloads.iter() {
            self.remove(key::cleanup(twin, contract, &workload.name));
            self.free_sharable(twin, contract, workload)?;
        }
        for k in self.keys_with_prefix(&key::history_prefix(twin, contract))? {
            self.remove(k);
        }
        for k in self.keys_with_prefix(&[key::JOB])? {
            if let Some(job) = self.get::<Job>(&k)?
                && (job.twin, job.contract) == (twin, contract)
            {
                self.remove(k);
            }
        }
        self.remove(key::reservation(twin, contract));
        self.remove(key::deployment(twin, contract));
        self.remove(key::deleting(twin, contract));
        Ok(())
    }

    /// Records that a failed workload's cleanup failed too (what the module made may still be there, so
    /// it keeps its reservation), until [`Txn::cleaned`]: it is tried again from this
    /// ([`Store::cleanups_asked`]).
    pub fn ask_cleanup(&mut self, twin: u32, contract: u64, name: &str) {
        self.put(key::cleanup(twin, contract, name), &());
    }

    /// The cleanup of a failed workload is done (idempotent).
    pub fn cleaned(&mut self, twin: u32, contract: u64, name: &str) {
        self.remove(key::cleanup(twin, contract, name));
    }

    /// Records that the deployment's delete was asked for (with its reason), until [`Txn::delete`]
    /// removes the deployment: a delete a module failed is retried from this ([`Store::deletes_asked`]),
    /// after a restart too.
    pub fn ask_delete(&mut self, twin: u32, contract: u64, reason: &str) {
        self.put(key::deleting(twin, contract), &reason);
    }

    fn reservations(&self, twin: u32, contract: u64) -> Result<Reservations, StoreError> {
        Ok(self.get(&key::reservation(twin, contract))?.unwrap_or_default())
    }

    fn put_reservations(&mut self, twin: u32, contract: u64, records: &Reservations) {
        if records.is_empty() {
            self.remove(key::reservation(twin, contract));
        } else {
            self.put(key::reservation(twin, contract), records);
        }
    }

    /// Keeps what the ledger granted a workload.
    pub fn reserve(
        &mut self,
        twin: u32,
        contract: u64,
        name: &str,
        record: &ReservationRecord,
    ) -> Result<(), StoreError> {
        self.reserve_all(twin, contract, [(name.to_string(), record.clone())])
    }

    /// Keeps what the ledger granted several workloads of a deployment, by name.
    pub fn reserve_all(
        &mut self,
        twin: u32,
        contract: u64,
        records: impl IntoIterator<Item = (String, ReservationRecord)>,
    ) -> Result<(), StoreError> {
        let mut stored = self.reservations(twin, contract)?;
        stored.extend(records);
        self.put_reservations(twin, contract, &stored);
        Ok(())
    }

    /// Forgets a workload's reservation (idempotent).
    pub fn release(&mut self, twin: u32, contract: u64, name: &str) -> Result<(), StoreError> {
        let mut stored = self.reservations(twin, contract)?;
        if stored.remove(name).is_some() {
            self.put_reservations(twin, contract, &stored);
        }
        Ok(())
    }

    /// Queues a job; it becomes visible, with everything else of this change, at commit.
    pub fn enqueue(&mut self, job: &Job) -> Result<JobId, StoreError> {
        let seq: u64 = self.get::<u64>(&key::meta(JOB_SEQ))?.unwrap_or(0).saturating_add(1);
        self.put(key::meta(JOB_SEQ), &seq);
        self.put(key::job(seq), job);
        Ok(JobId(seq))
    }

    /// Removes a finished job.
    pub fn ack(&mut self, id: JobId) -> Result<(), StoreError> {
        if self.get_raw(&key::job(id.0))?.is_none() {
            return Err(StoreError::JobNotExists(id.0));
        }
        self.remove(key::job(id.0));
        Ok(())
    }

    /// Applies everything staged atomically and makes it durable before returning.
    ///
    /// On an engine or I/O error (disk full, ...) the store is poisoned: this and every later commit
    /// fail with [`StoreError::Poisoned`] until the store is reopened (the daemon exits and its
    /// supervisor restarts it); after reopening, the state is what the last successful commit left.
    pub fn commit(self) -> Result<(), StoreError> {
        self.commit_deferred()?.wait()
    }

    /// Makes the change (atomically; every read sees it at once) and releases the writer, but leaves the
    /// wait for durability to the caller ([`Pending::wait`]): a caller that holds a lock of its own can
    /// release it before the fsync, so that decisions made meanwhile share it (group commit). Nothing
    /// may be reported to a user before `wait` returns `Ok`.
    pub fn commit_deferred(mut self) -> Result<Pending<'a>, StoreError> {
        if self.store.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        let store = self.store;
        match self.apply() {
            Ok(seq) => Ok(Pending { store, seq }),
            Err(err) => {
                store.poisoned.store(true, Ordering::SeqCst);
                Err(err)
            }
        }
    }

    /// Stages the change in the backlog (reads see it at once) with its journal frame; returns its
    /// commit number.
    fn apply(&mut self) -> Result<u64, StoreError> {
        let generation: u64 = self.get::<u64>(&key::meta(GENERATION))?.unwrap_or(0).saturating_add(1);
        self.put(key::meta(GENERATION), &generation);
        let ops: Vec<Op> = std::mem::take(&mut self.pending).into_iter().collect();
        let mut backlog = self.store.lock_backlog();
        let seq = backlog.last().saturating_add(1);
        backlog.stage(seq, generation, ops);
        Ok(seq)
    }
}

/// A change applied but maybe not durable yet: [`Pending::wait`] returns once it is.
#[must_use = "a commit is durable only once `wait` returned Ok"]
pub struct Pending<'a> {
    store: &'a Store,
    seq: u64,
}

impl Pending<'_> {
    /// Waits until the change is durable (sharing the fsync with the changes applied meanwhile).
    pub fn wait(self) -> Result<(), StoreError> {
        self.store.wait_durable(self.seq)
    }

    /// The change, apart from the store's borrow: to hand to the other callers of a batch committed
    /// together, each of which waits with [`Store::wait`].
    pub fn detach(self) -> Commit {
        Commit(self.seq)
    }
}

/// A change applied but maybe not durable yet, as [`Pending::detach`] gives it; copies wait for the same
/// change.
#[must_use = "a commit is durable only once `Store::wait` returned Ok"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit(u64);
