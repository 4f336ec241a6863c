//! The store: one sled tree, one writer at a time, and a durable commit per user action.

use crate::error::StoreError;
use crate::job::{Job, JobId};
use crate::key;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use zos_types::{
    Deployment, ReservationRecord, ResultState, SignatureRequirement, Timestamp, Workload, WorkloadId, WorkloadResult,
    validate_name,
};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA: &str = "schema";
const GENERATION: &str = "generation";
const JOB_SEQ: &str = "job_seq";

/// What is kept per deployment besides its workloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) metadata: String,
    pub(crate) description: String,
    pub(crate) signature_requirement: SignatureRequirement,
    /// Active workload names, in deployment order.
    pub(crate) workloads: Vec<String>,
    /// Next sequence number of the result log.
    pub(crate) next_seq: u64,
}

/// How long `open` waits for the engine's file lock: sled releases it from a background thread a
/// moment after the previous handle in the same process is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_engine(path: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
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

/// A store smaller than this on disk is never compacted.
const COMPACT_FLOOR: u64 = 32 << 20;

/// A store is compacted at open when its files take more than this many times what it holds.
const COMPACT_RATIO: u64 = 4;

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

/// Finishes or undoes a compaction a crash interrupted: the fresh copy replaces the store only by a
/// rename, so at any instant either the store or its complete fresh copy is there.
fn recover_compaction(path: &Path) -> Result<(), StoreError> {
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

/// sled 0.34 does not give back the space of deleted records: a store whose files take more than
/// `COMPACT_RATIO` times what it holds (and more than `COMPACT_FLOOR`) is copied record by record into
/// a fresh directory, made durable, and swapped in by renames. A compaction that fails (a full disk)
/// leaves the store as it was.
fn compact_if_bloated(path: &Path) -> Result<(), StoreError> {
    recover_compaction(path)?;
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
    let fresh = sibling(path, ".compact");
    let copied = (|| -> Result<(), StoreError> {
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)?;
        }
        let from = open_engine(path)?;
        let from = from.open_tree("zos")?;
        let to = open_engine(&fresh)?;
        let tree = to.open_tree("zos")?;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        for record in from.iter() {
            let (key, value) = record?;
            pending = pending.saturating_add(value.len());
            batch.insert(key, value);
            if pending > 8 << 20 {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        tree.apply_batch(batch)?;
        to.flush()?;
        File::open(fresh.join("db"))?.sync_all()?;
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

/// The durable node state. Cheap to share between threads; writes are serialized.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    data_file: File,
    writer: Mutex<()>,
    poisoned: AtomicBool,
    /// Transactions applied so far (visible to reads, durable or not), in order.
    applied: AtomicU64,
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

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain structs with string keys: encoding cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the store in directory `path`. A store written by another schema version is
    /// refused, never reinterpreted.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Err(err) = compact_if_bloated(&path) {
            // The store itself is untouched: open it as it is, only larger than it needs to be.
            tracing::warn!(store = %path.display(), "compaction failed, the store stays as it is: {err}");
        }
        restrict(&path)?;
        let db = open_engine(&path)?;
        restrict(&path)?;
        let tree = db.open_tree("zos")?;
        let data_file = File::open(path.join("db"))?;
        let store = Store {
            path,
            db,
            tree,
            data_file,
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            applied: AtomicU64::new(0),
            durability: Mutex::new(Durability::default()),
            synced: Condvar::new(),
        };
        match store.tree.get(key::meta(SCHEMA))? {
            Some(found) => {
                let found = String::from_utf8_lossy(&found).into_owned();
                if found != SCHEMA_VERSION.to_string() {
                    return Err(StoreError::UnknownSchema { found, supported: SCHEMA_VERSION });
                }
            }
            None if store.tree.is_empty() => {
                store.tree.insert(key::meta(SCHEMA), SCHEMA_VERSION.to_string().as_bytes())?;
                store.sync()?;
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

    /// Makes everything applied so far durable: sled's flush (which uses `sync_file_range`, not enough
    /// for power loss) followed by `fdatasync` of the data file.
    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.data_file.sync_data()?;
        Ok(())
    }

    /// Waits until transaction `seq` (and everything applied before it) is durable. Group commit: the
    /// first waiter syncs everything applied so far with one flush and one fdatasync while later ones
    /// wait for it, so the transactions applied while a sync runs share the next one.
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
            let target = self.applied.load(Ordering::SeqCst);
            drop(state);
            let synced = self.sync();
            state = self.durability.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            match synced {
                Ok(()) => state.durable = state.durable.max(target),
                Err(err) => {
                    self.poisoned.store(true, Ordering::SeqCst);
                    self.synced.notify_all();
                    return Err(err);
                }
            }
            self.synced.notify_all();
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
        self.wait_durable(self.applied.load(Ordering::SeqCst))
    }

    /// Starts an atomic, durable change. Only one runs at a time; reads outside it see committed state.
    pub fn begin(&self) -> Txn<'_> {
        let guard = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Txn { store: self, _guard: guard, pending: BTreeMap::new(), journal: None }
    }

    pub(crate) fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.tree.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    pub(crate) fn scan(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        self.tree.scan_prefix(prefix).map(|item| item.map_err(StoreError::from))
    }

    /// Number of committed changes since the store was created.
    pub fn generation(&self) -> Result<u64, StoreError> {
        Ok(self.read(&key::meta(GENERATION))?.unwrap_or(0))
    }

    /// A deployment with its active workloads (in deployment order) and their current results.
    pub fn get(&self, twin: u32, contract: u64) -> Result<Deployment, StoreError> {
        let header: Header = self.read(&key::deployment(twin, contract))?.ok_or(StoreError::DeploymentNotExists)?;
        let workloads = header
            .workloads
            .iter()
            .map(|name| {
                let key = key::workload(twin, contract, name);
                self.read::<Workload>(&key)?.ok_or_else(|| StoreError::Corrupt {
                    key: key::printable(&key),
                    message: "workload named by its deployment is missing".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Deployment {
            version: header.version,
            twin_id: twin,
            contract_id: contract,
            metadata: header.metadata,
            description: header.description,
            expiration: Timestamp::default(),
            signature_requirement: header.signature_requirement,
            workloads,
        })
    }

    /// The current state of an active workload: one read, whatever the length of its history.
    pub fn current(&self, twin: u32, contract: u64, name: &str) -> Result<Workload, StoreError> {
        self.read(&key::workload(twin, contract, name))?.ok_or(StoreError::WorkloadNotExist)
    }

    /// The whole result log of a deployment, oldest first.
    pub fn changes(&self, twin: u32, contract: u64) -> Result<Vec<Workload>, StoreError> {
        if !self.tree.contains_key(key::deployment(twin, contract))? {
            return Err(StoreError::DeploymentNotExists);
        }
        self.scan(&key::history_prefix(twin, contract)).map(|item| item.and_then(|(k, v)| decode(&k, &v))).collect()
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
        self.scan(&[key::RESERVATION])
            .map(|item| {
                let (k, v) = item?;
                let (twin, contract, name) = key::twin_contract_name(&k).ok_or_else(|| StoreError::Corrupt {
                    key: key::printable(&k),
                    message: "bad reservation key".into(),
                })?;
                Ok((WorkloadId::new(twin, contract, &name), decode(&k, &v)?))
            })
            .collect()
    }

    /// The reservation of one workload.
    pub fn reservation(&self, twin: u32, contract: u64, name: &str) -> Result<Option<ReservationRecord>, StoreError> {
        self.read(&key::reservation(twin, contract, name))
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
            None => Ok(self.store.tree.get(key)?.map(|bytes| bytes.to_vec())),
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
        for item in self.store.tree.scan_prefix(prefix) {
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

    fn header(&self, twin: u32, contract: u64) -> Result<Header, StoreError> {
        self.get(&key::deployment(twin, contract))?.ok_or(StoreError::DeploymentNotExists)
    }

    fn append_log(&mut self, twin: u32, contract: u64, header: &mut Header, workload: &Workload) {
        let seq = header.next_seq;
        header.next_seq = seq.saturating_add(1);
        self.put(key::history(twin, contract, seq), workload);
    }

    fn check_result(result: &WorkloadResult) -> Result<(), StoreError> {
        result.validate().map_err(StoreError::Invalid)
    }

    /// Registers a sharable name, failing with ZOS's conflict error when another contract holds it.
    fn claim_sharable(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        if !workload.kind().is_sharable() {
            return Ok(());
        }
        let key = key::sharable(twin, &workload.name);
        match self.get::<u64>(&key)? {
            Some(owner) if owner != contract => Err(StoreError::DeploymentConflict(workload.name.clone())),
            _ => {
                self.put(key, &contract);
                Ok(())
            }
        }
    }

    /// Stores a new deployment with all its workloads (each with a valid result, normally `init`) and
    /// registers its sharable names. ZOS's `Create`: `exists` or `conflict` leave nothing behind.
    pub fn create(&mut self, deployment: &Deployment) -> Result<(), StoreError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        if self.get_raw(&key::deployment(twin, contract))?.is_some() {
            return Err(StoreError::DeploymentExists);
        }
        let mut header = Header {
            version: deployment.version,
            metadata: deployment.metadata.clone(),
            description: deployment.description.clone(),
            signature_requirement: deployment.signature_requirement.clone(),
            workloads: Vec::new(),
            next_seq: 1,
        };
        for workload in &deployment.workloads {
            self.add_to(twin, contract, &mut header, workload)?;
        }
        self.put(key::deployment(twin, contract), &header);
        Ok(())
    }

    fn add_to(&mut self, twin: u32, contract: u64, header: &mut Header, workload: &Workload) -> Result<(), StoreError> {
        validate_name(&workload.name).map_err(StoreError::Invalid)?;
        Self::check_result(&workload.result)?;
        if header.workloads.contains(&workload.name) {
            return Err(StoreError::WorkloadExists(workload.name.clone()));
        }
        self.claim_sharable(twin, contract, workload)?;
        header.workloads.push(workload.name.clone());
        self.put(key::workload(twin, contract, &workload.name), workload);
        self.append_log(twin, contract, header, workload);
        Ok(())
    }

    /// Adds a workload to an existing deployment (ZOS's `Add`).
    pub fn add_workload(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        let mut header = self.header(twin, contract)?;
        self.add_to(twin, contract, &mut header, workload)?;
        self.put(key::deployment(twin, contract), &header);
        Ok(())
    }

    /// Takes a workload out of the active set and frees its sharable name; its log stays (ZOS's `Remove`).
    /// Removing a name that is not active does nothing.
    pub fn remove_workload(&mut self, twin: u32, contract: u64, name: &str) -> Result<(), StoreError> {
        let mut header = self.header(twin, contract)?;
        let Some(pos) = header.workloads.iter().position(|it| it == name) else {
            return Ok(());
        };
        header.workloads.remove(pos);
        self.remove(key::cleanup(twin, contract, name));
        let key = key::workload(twin, contract, name);
        if let Some(workload) = self.get::<Workload>(&key)?
            && workload.kind().is_sharable()
            && self.get::<u64>(&key::sharable(twin, name))? == Some(contract)
        {
            self.remove(key::sharable(twin, name));
        }
        self.remove(key);
        self.put(key::deployment(twin, contract), &header);
        Ok(())
    }

    /// Records a new result for an active workload (ZOS's `Transaction`): the whole workload is
    /// appended to the log, and becomes the current one unless its state is `unchanged`.
    pub fn record(&mut self, twin: u32, contract: u64, workload: &Workload) -> Result<(), StoreError> {
        Self::check_result(&workload.result)?;
        let key = key::workload(twin, contract, &workload.name);
        let stored: Workload = self.get(&key)?.ok_or(StoreError::WorkloadNotExist)?;
        if stored.kind() != workload.kind() {
            return Err(StoreError::InvalidWorkloadType { stored: stored.kind(), got: workload.kind() });
        }
        let mut header = self.header(twin, contract)?;
        self.append_log(twin, contract, &mut header, workload);
        self.put(key::deployment(twin, contract), &header);
        if workload.result.state != ResultState::Unchanged {
            self.put(key, workload);
        }
        Ok(())
    }

    /// Updates the deployment's own fields (version, texts, signature requirement).
    pub fn update_header(&mut self, deployment: &Deployment) -> Result<(), StoreError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let mut header = self.header(twin, contract)?;
        header.version = deployment.version;
        header.metadata = deployment.metadata.clone();
        header.description = deployment.description.clone();
        header.signature_requirement = deployment.signature_requirement.clone();
        self.put(key::deployment(twin, contract), &header);
        Ok(())
    }

    /// Appends an `error` result with `message` to every active workload (ZOS's `Error`).
    pub fn error(&mut self, twin: u32, contract: u64, message: &str, created: Timestamp) -> Result<(), StoreError> {
        let header = self.header(twin, contract)?;
        for name in &header.workloads {
            let mut workload =
                self.get::<Workload>(&key::workload(twin, contract, name))?.ok_or(StoreError::WorkloadNotExist)?;
            workload.result = WorkloadResult {
                created,
                state: ResultState::Error,
                error: message.to_string(),
                data: serde_json::Value::Null,
            };
            self.record(twin, contract, &workload)?;
        }
        Ok(())
    }

    /// Deletes a deployment with its log, its sharable names, its reservations and any job still queued
    /// for it, so that no job outlives its deployment (ZOS's `Delete`).
    pub fn delete(&mut self, twin: u32, contract: u64) -> Result<(), StoreError> {
        let header = self.header(twin, contract)?;
        for name in &header.workloads {
            self.remove_workload(twin, contract, name)?;
            self.remove(key::reservation(twin, contract, name));
        }
        for k in self.keys_with_prefix(&key::history_prefix(twin, contract))? {
            self.remove(k);
        }
        let mut reservations = key::deployment(twin, contract);
        reservations[0] = key::RESERVATION;
        for k in self.keys_with_prefix(&reservations)? {
            self.remove(k);
        }
        for k in self.keys_with_prefix(&[key::JOB])? {
            if let Some(job) = self.get::<Job>(&k)?
                && (job.twin, job.contract) == (twin, contract)
            {
                self.remove(k);
            }
        }
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

    /// Keeps what the ledger granted a workload.
    pub fn reserve(&mut self, twin: u32, contract: u64, name: &str, record: &ReservationRecord) {
        self.put(key::reservation(twin, contract, name), record);
    }

    /// Forgets a workload's reservation (idempotent).
    pub fn release(&mut self, twin: u32, contract: u64, name: &str) {
        self.remove(key::reservation(twin, contract, name));
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

    /// Applies the change (atomically; reads see it at once) and releases the writer, but leaves the
    /// wait for durability to the caller ([`Pending::wait`]): a caller that holds a lock of its own can
    /// release it before the fsync, so that decisions made meanwhile share it (group commit). Nothing
    /// may be reported to a user before `wait` returns `Ok`.
    pub fn commit_deferred(mut self) -> Result<Pending<'a>, StoreError> {
        if self.store.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        let store = self.store;
        match self.apply() {
            Ok(()) => Ok(Pending { store, seq: store.applied.fetch_add(1, Ordering::SeqCst).saturating_add(1) }),
            Err(err) => {
                store.poisoned.store(true, Ordering::SeqCst);
                Err(err)
            }
        }
    }

    fn apply(&mut self) -> Result<(), StoreError> {
        let generation: u64 = self.get::<u64>(&key::meta(GENERATION))?.unwrap_or(0).saturating_add(1);
        self.put(key::meta(GENERATION), &generation);
        let mut batch = sled::Batch::default();
        for (k, staged) in std::mem::take(&mut self.pending) {
            match staged {
                Some(value) => batch.insert(k, value),
                None => batch.remove(k),
            }
        }
        self.store.tree.apply_batch(batch)?;
        Ok(())
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
