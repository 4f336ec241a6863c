//! The engine: admission at the door, one atomic write per user action, and the durable job loop.
//!
//! ZOS admits late (the caller hears "accepted" and finds an `error` later), checks only memory, and can
//! lose state between its store and its queue (reference section 10). Here `create` asks the ledger
//! synchronously: a deployment that does not fit is refused with every shortfall and nothing is stored;
//! one that fits is stored with its workloads in `init`, their reservations and its job in one durable
//! commit. The job loop runs workloads in ZOS's order; a workload that fails releases its reservation,
//! a failed delete keeps it.

use crate::door::{Door, Reply};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use zos_cache::{Commit, Job, JobId, JobOp, Prepared, Store, StoreError};
use zos_interfaces::provision::{Counters, StateChange, UsersCounters};
use zos_planner::order::{failed_dependencies, install_order, uninstall_order};
use zos_planner::{Ledger, Undo, WorkloadVerdict};
use zos_types::reservation::DiskRole;
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{
    Deployment, KeyGetter, ReservationRecord, ResultState, Timestamp, TwinRequest, Unit, Workload, WorkloadData,
    WorkloadId, WorkloadResult,
};

/// Why a request was not taken (a capacity refusal is not an error: see [`Outcome::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Validation failed (ZOS's message).
    #[error("{0}")]
    Invalid(String),
    /// Identity or signature refused.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A fault of the engine itself (a request lost inside it).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The stable code of the error, for the bus.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Invalid(_) => "invalid",
            EngineError::Forbidden(_) => "forbidden",
            EngineError::Store(StoreError::DeploymentExists) => "exists",
            EngineError::Store(StoreError::DeploymentConflict(_)) => "conflict",
            EngineError::Store(StoreError::DeploymentNotExists | StoreError::WorkloadNotExist) => "not_found",
            EngineError::Store(_) | EngineError::Internal(_) => "internal",
        }
    }
}

/// The answer to a create.
#[derive(Debug)]
pub enum Outcome {
    /// Stored with its reservations; the job runs it.
    Accepted(JobId),
    /// It does not fit: every workload's verdict, with every shortfall. Nothing was stored.
    Refused(Vec<WorkloadVerdict>),
}

/// What runs a workload on the node (storaged, networkd, vmd, ... behind their zbus clients).
pub trait Managers: Send + Sync {
    /// Provisions a workload (idempotently) with what the ledger granted it (pool, address, GPUs); its
    /// result data, or the error text. An existing workload with new data is an update.
    fn provision(
        &self,
        id: &WorkloadId,
        workload: &Workload,
        reservation: Option<&ReservationRecord>,
    ) -> impl Future<Output = Result<serde_json::Value, String>> + Send;
    /// Removes a workload (idempotently).
    fn deprovision(&self, id: &WorkloadId, workload: &Workload) -> impl Future<Output = Result<(), String>> + Send;
    /// Pauses a workload; most types only change state (ZOS), so the default does nothing.
    fn pause(&self, _id: &WorkloadId, _workload: &Workload) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
    /// Resumes a paused workload; the default does nothing.
    fn resume(&self, _id: &WorkloadId, _workload: &Workload) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// The reason of the provision jobs a reboot queues.
const REBOOT: &str = "reboot";

/// provisiond's engine over the durable store and the ledger.
pub struct Engine<K> {
    store: Store,
    ledger: Mutex<Ledger>,
    twins: K,
    changes: Mutex<Vec<StateChange>>,
    os_memory: Option<OsMemory>,
    /// When the newest running workload got its result (ZOS's `last_deployment_timestamp`), kept as
    /// results are committed so that `GetCounters` reads no store.
    newest_result: std::sync::atomic::AtomicI64,
    /// Signatures of twin requests seen within the replay window, with their timestamps.
    seen: Mutex<HashMap<String, i64>>,
    /// Creates, decided in batches that share one store change and one fsync.
    door: Door<Create, Decision>,
    /// Failed deletes and cleanups waiting to be tried again.
    retries: Mutex<HashMap<Retried, Backoff>>,
}

/// What is tried again: a deployment's delete (`false`) or its workloads' cleanup (`true`).
type Retried = (u32, u64, bool);

/// Attempts so far, and when the next is due (seconds).
type Backoff = (u32, i64);

/// A create that passed validation and the signature check, waiting at the door with its records
/// encoded (by the caller's thread, not the decider's).
struct Create {
    twin: u32,
    deployment: Deployment,
    prepared: Prepared,
}

/// The door's answer to a create.
enum Decision {
    /// Stored with its batch, durably.
    Accepted(JobId),
    /// It does not fit; nothing was stored and nothing waits.
    Refused(Vec<WorkloadVerdict>),
    /// Refused by the store (`exists`, `conflict`), or the batch's commit failed.
    Failed(EngineError),
}

/// A batch of creates applied to the store and not yet durable: its admitted callers, answered once
/// the commit is.
struct Applied {
    commit: Commit,
    accepted: Vec<(JobId, Reply<Decision>)>,
}

/// How far a twin request's timestamp may be from the node's clock, either way, in seconds.
pub const REPLAY_WINDOW: i64 = 300;

/// Reads what the OS uses of the memory now; `None` when it cannot be read (the last value stays).
pub type OsMemory = Box<dyn Fn() -> Option<Unit> + Send + Sync>;

fn result(state: ResultState, error: String, data: serde_json::Value, now: Timestamp) -> WorkloadResult {
    WorkloadResult { created: now, state, error, data }
}

impl<K: KeyGetter> Engine<K> {
    /// Opens the engine: the ledger is rebuilt exactly from the stored reservations.
    pub fn open(store: Store, node: &NodeSpec, policy: Policy, twins: K) -> Result<Engine<K>, EngineError> {
        let mut ledger = Ledger::new(node, policy);
        for (id, record) in store.reservations()? {
            // What the node no longer has is drift to report; what it has stays held.
            for missing in ledger.restore_partial(&id, &record) {
                tracing::error!("drift: {missing}; the rest of the reservation stays held");
            }
        }
        for drift in store.check_consistency()? {
            tracing::warn!("store drift: {drift}");
        }
        let engine = Engine {
            store,
            ledger: Mutex::new(ledger),
            twins,
            changes: Mutex::new(Vec::new()),
            os_memory: None,
            newest_result: std::sync::atomic::AtomicI64::new(0),
            seen: Mutex::new(HashMap::new()),
            door: Door::default(),
            retries: Mutex::new(HashMap::new()),
        };
        let newest = engine
            .stored_deployments()?
            .iter()
            .flat_map(|deployment| &deployment.workloads)
            .filter(|workload| workload.result.state.is_okay())
            .map(|workload| workload.result.created.0)
            .max()
            .unwrap_or(0);
        engine.newest_result.store(newest, std::sync::atomic::Ordering::Relaxed);
        Ok(engine)
    }

    /// Reads what the OS uses of the memory before every admission (ZOS does), instead of only the
    /// figure the node had at start.
    pub fn with_os_memory(mut self, probe: OsMemory) -> Engine<K> {
        self.os_memory = Some(probe);
        self
    }

    /// The ledger, with the OS's memory use read now: what every admission decides on.
    fn deciding_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        let mut ledger = self.ledger();
        if let Some(used) = self.os_memory.as_ref().and_then(|probe| probe()) {
            ledger.set_os_used(used);
        }
        ledger
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state changes recorded since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<StateChange> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records committed results for the stream (and the newest running result for the counters).
    fn announce<'a>(&self, twin: u32, contract: u64, workloads: impl IntoIterator<Item = &'a Workload>) {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.extend(
            workloads
                .into_iter()
                .inspect(|wl| {
                    if wl.result.state.is_okay() {
                        self.newest_result.fetch_max(wl.result.created.0, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .map(|wl| StateChange {
                    id: WorkloadId::new(twin, contract, &wl.name).to_string(),
                    state: wl.result.state.to_string(),
                    message: wl.result.error.clone(),
                }),
        );
    }

    /// Releases what these workloads hold in the ledger (after their release was committed).
    fn release_all(&self, ids: impl IntoIterator<Item = WorkloadId>) {
        let mut ledger = self.ledger();
        for id in ids {
            ledger.release(&id);
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A copy of the ledger, for reporting.
    pub fn ledger_snapshot(&self) -> Ledger {
        self.ledger().clone()
    }

    /// `CreateOrUpdate` for a new deployment: validate, verify, admit at the door, then store the
    /// deployment, its reservations and its job in one durable commit.
    pub fn create(&self, twin: u32, deployment: Deployment, now: Timestamp) -> Result<Outcome, EngineError> {
        let create = self.creating(twin, deployment, now)?;
        Self::decided(self.door.submit(
            create,
            |batch| self.decide_creates(batch),
            |applied| self.finish_creates(applied),
        ))
    }

    /// [`Engine::create`] from an async task of a multi-threaded tokio runtime (the bus): the checks
    /// run on the task's thread, the task waits for its decision without holding the thread, and only
    /// a task that decides a batch leaves the runtime while it does.
    pub async fn create_async(
        &self,
        twin: u32,
        deployment: Deployment,
        now: Timestamp,
    ) -> Result<Outcome, EngineError> {
        let create = self.creating(twin, deployment, now)?;
        let decision =
            self.door.submit_async(create, |batch| self.decide_creates(batch), |applied| self.finish_creates(applied));
        Self::decided(decision.await)
    }

    /// A create checked (validation, the caller, the signatures, version 0) and prepared for the door:
    /// its workloads in `init`, its record encoded.
    fn creating(&self, twin: u32, mut deployment: Deployment, now: Timestamp) -> Result<Create, EngineError> {
        self.check_request(twin, &deployment)?;
        if deployment.version != 0 {
            return Err(EngineError::Invalid(
                "expected version to be 0 on deployment creation: invalid version".into(),
            ));
        }
        for workload in &mut deployment.workloads {
            workload.result = result(ResultState::Init, String::new(), serde_json::Value::Null, now);
        }
        let prepared = Prepared::new(&deployment)?;
        Ok(Create { twin, deployment, prepared })
    }

    /// What the door answered a create.
    fn decided(decision: Option<Decision>) -> Result<Outcome, EngineError> {
        match decision.ok_or_else(|| EngineError::Internal("the create was dropped undecided".into()))? {
            Decision::Accepted(job) => Ok(Outcome::Accepted(job)),
            Decision::Refused(verdicts) => Ok(Outcome::Refused(verdicts)),
            Decision::Failed(err) => Err(err),
        }
    }

    /// Decides a batch of creates in order, each admitted in place (no copy of the ledger) and taken
    /// back when refused; the admitted ones are staged as units of one store change, applied once,
    /// whose fsync their callers share ([`Engine::finish_creates`]). A refusal is answered at once and
    /// waits for no fsync.
    fn decide_creates(&self, batch: Vec<(Create, Reply<Decision>)>) -> Option<Applied> {
        let mut ledger = self.deciding_ledger();
        let mut txn = self.store.begin();
        let mut accepted = Vec::new();
        for (Create { twin, deployment, prepared }, reply) in batch {
            // `create` validated it before the signature check.
            let (verdicts, undo) = ledger.admit_whole_validated(&deployment);
            if verdicts.iter().any(|it| !it.verdict.is_admit()) {
                reply.send(Decision::Refused(verdicts));
                continue;
            }
            let contract = deployment.contract_id;
            let staged = txn.unit(|txn| {
                let records = deployment.workloads.iter().filter_map(|workload| {
                    let reservation = ledger.reservation(&deployment.workload_id(&workload.name))?;
                    Some((workload.name.clone(), ledger.record(reservation)))
                });
                txn.create_prepared(prepared, records)?;
                txn.enqueue(&Job { op: JobOp::Provision, twin, contract, reason: String::new(), remove: Vec::new() })
            });
            match staged {
                Ok(job) => accepted.push((undo, job, reply)),
                Err(err) => {
                    ledger.undo(undo);
                    reply.send(Decision::Failed(err.into()));
                }
            }
        }
        if accepted.is_empty() {
            return None;
        }
        match txn.commit_deferred() {
            Ok(pending) => Some(Applied {
                commit: pending.detach(),
                accepted: accepted.into_iter().map(|(_, job, reply)| (job, reply)).collect(),
            }),
            Err(err) => {
                // Nothing of the batch was applied: every admission is taken back, newest first.
                let replies = accepted.into_iter().rev().map(|(undo, _, reply)| {
                    ledger.undo(undo);
                    reply
                });
                Self::fail_all(err, replies);
                None
            }
        }
    }

    /// Answers a batch's admitted creates once its commit is durable (the next batch is decided
    /// meanwhile, and its fsync shares the next one). When the fsync fails, nothing of the batch is
    /// reported stored: the store is poisoned, and the daemon restarts from what is durable.
    fn finish_creates(&self, applied: Option<Applied>) {
        let Some(Applied { commit, accepted }) = applied else { return };
        match self.store.wait(commit) {
            Ok(()) => accepted.into_iter().for_each(|(job, reply)| reply.send(Decision::Accepted(job))),
            Err(err) => Self::fail_all(err, accepted.into_iter().map(|(_, reply)| reply)),
        }
    }

    /// Answers a batch whose commit failed: the first caller hears the error, the others that the
    /// store is poisoned (the error is not `Clone`, and all of them lost the same commit).
    fn fail_all(err: StoreError, replies: impl Iterator<Item = Reply<Decision>>) {
        let mut first = Some(err);
        for reply in replies {
            reply.send(Decision::Failed(first.take().unwrap_or(StoreError::Poisoned).into()));
        }
    }

    /// The end of an admission: a change that could not be applied is taken back from the ledger; an
    /// applied one is answered once durable. Group commit: the admission lock is released before the
    /// fsync, which is shared with the decisions made while it runs.
    fn accept(
        mut ledger: std::sync::MutexGuard<'_, Ledger>,
        undo: Undo,
        committed: Result<(JobId, zos_cache::Pending<'_>), EngineError>,
    ) -> Result<Outcome, EngineError> {
        match committed {
            Ok((job, pending)) => {
                drop(ledger);
                pending.wait()?;
                Ok(Outcome::Accepted(job))
            }
            Err(err) => {
                ledger.undo(undo);
                Err(err)
            }
        }
    }

    /// Validation, the caller's identity, and the signatures (ZOS's order).
    fn check_request(&self, twin: u32, deployment: &Deployment) -> Result<(), EngineError> {
        deployment.validate().map_err(EngineError::Invalid)?;
        if deployment.twin_id != twin {
            return Err(EngineError::Forbidden(format!(
                "twin id mismatch (deployment: {}, message: {twin})",
                deployment.twin_id
            )));
        }
        deployment.verify(&self.twins).map_err(EngineError::Forbidden)
    }

    /// `CreateOrUpdate` with `update`: ZOS's upgrade rules (section 2.6), then the capacity of what is
    /// added or changed is checked again at the door (ZOS never rechecks on update). What is accepted —
    /// the new version, the added and changed workloads back in `init` with their reservations, and the
    /// job that removes what is gone and applies the rest — commits at once; a refusal changes nothing.
    pub fn update(&self, twin: u32, mut new: Deployment, now: Timestamp) -> Result<Outcome, EngineError> {
        self.check_request(twin, &new)?;
        // The version check and the admission are one serialized step: two updates never both pass.
        let mut ledger = self.deciding_ledger();
        let stored = self.store.get(twin, new.contract_id)?;
        let upgrade = stored.upgrade(&mut new).map_err(EngineError::Invalid)?;
        for workload in new.workloads.iter().filter(|wl| upgrade.to_update.contains(&wl.name)) {
            if !workload.kind().is_updatable() {
                return Err(EngineError::Invalid(format!(
                    "workload '{}' does not support upgrade: upgrade validation error",
                    workload.kind()
                )));
            }
            let old = stored.workloads.iter().find(|old| old.name == workload.name);
            if let Some(err) = old.and_then(|old| workload.update_error(old)) {
                return Err(EngineError::Invalid(format!("workload '{}': {err}", workload.name)));
            }
        }
        let changed: Vec<&Workload> = install_order(&new)
            .into_iter()
            .map(|idx| &new.workloads[idx])
            .filter(|wl| upgrade.to_add.contains(&wl.name) || upgrade.to_update.contains(&wl.name))
            .collect();
        let mut undo = Undo::default();
        let verdicts: Vec<WorkloadVerdict> = changed
            .iter()
            .map(|wl| WorkloadVerdict {
                name: wl.name.clone(),
                kind: wl.kind(),
                verdict: ledger.admit_undoable(&new.workload_id(&wl.name), wl, &mut undo),
                note: None,
            })
            .collect();
        if verdicts.iter().any(|it| !it.verdict.is_admit()) {
            ledger.undo(undo);
            return Ok(Outcome::Refused(verdicts));
        }
        let contract = new.contract_id;
        let committed = (|| {
            let mut txn = self.store.begin();
            txn.update_header(&new)?;
            for workload in &changed {
                let mut workload = (*workload).clone();
                workload.result = result(ResultState::Init, String::new(), serde_json::Value::Null, now);
                if upgrade.to_add.contains(&workload.name) {
                    txn.add_workload(twin, contract, &workload)?;
                } else {
                    txn.record(twin, contract, &workload)?;
                }
                if let Some(reservation) = ledger.reservation(&new.workload_id(&workload.name)) {
                    txn.reserve(twin, contract, &workload.name, &ledger.record(reservation))?;
                }
            }
            let job = Job { op: JobOp::Update, twin, contract, reason: String::new(), remove: upgrade.to_remove };
            let job = txn.enqueue(&job)?;
            Ok::<_, EngineError>((job, txn.commit_deferred()?))
        })();
        Self::accept(ledger, undo, committed)
    }

    /// Boot handling: when `marker` (a file on a tmpfs, gone after a reboot) does not exist, this is the
    /// first start since the node booted: every deployment with live workloads is queued to be
    /// provisioned again (managers are idempotent), and the marker is written. Reservations are not
    /// taken again: the ledger rebuilt from the store already holds them, so nothing counts twice.
    /// Returns how many deployments were queued.
    pub fn boot(&self, marker: &std::path::Path) -> Result<usize, EngineError> {
        if marker.exists() {
            return Ok(0);
        }
        let mut txn = self.store.begin();
        let mut queued = 0;
        for twin in self.store.twins()? {
            for contract in self.store.by_twin(twin)? {
                let deployment = self.store.get(twin, contract)?;
                if deployment
                    .workloads
                    .iter()
                    .any(|wl| matches!(wl.result.state, ResultState::Ok | ResultState::Paused | ResultState::Init))
                {
                    txn.enqueue(&Job {
                        op: JobOp::Provision,
                        twin,
                        contract,
                        reason: REBOOT.into(),
                        remove: Vec::new(),
                    })?;
                    queued += 1;
                }
            }
        }
        txn.commit()?;
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|err| EngineError::Invalid(format!("boot marker {}: {err}", marker.display())))?;
        }
        std::fs::write(marker, b"")
            .map_err(|err| EngineError::Invalid(format!("boot marker {}: {err}", marker.display())))?;
        Ok(queued)
    }

    /// Every stored deployment, by twin then contract.
    fn stored_deployments(&self) -> Result<Vec<Deployment>, EngineError> {
        let mut deployments = Vec::new();
        for twin in self.store.twins()? {
            for contract in self.store.by_twin(twin)? {
                deployments.push(self.store.get(twin, contract)?);
            }
        }
        Ok(deployments)
    }

    /// The workloads the reconciler compares, split in two: settled (running or paused, with no job of
    /// their deployment queued or running) and unsettled (everything else still stored: in `init`, in
    /// `error`, or with a job on the way), whose resources may be coming or going right now.
    pub fn reconciled_workloads(&self) -> Result<(Vec<crate::modules::Held>, Vec<crate::modules::Held>), EngineError> {
        let busy: std::collections::BTreeSet<(u32, u64)> =
            self.store.jobs()?.into_iter().map(|(_, job)| (job.twin, job.contract)).collect();
        let (mut settled, mut unsettled) = (Vec::new(), Vec::new());
        for deployment in self.stored_deployments()? {
            let (twin, contract) = (deployment.twin_id, deployment.contract_id);
            for workload in &deployment.workloads {
                let reservation = self.store.reservation(twin, contract, &workload.name)?;
                let held = (deployment.workload_id(&workload.name), workload.clone(), reservation);
                if workload.result.state.is_okay() && !busy.contains(&(twin, contract)) {
                    settled.push(held);
                } else if workload.result.state != ResultState::Deleted {
                    unsettled.push(held);
                }
            }
        }
        Ok((settled, unsettled))
    }

    /// Checks a twin's signed request for `operation` at time `now`: signed by the twin's key from the
    /// registry, within [`REPLAY_WINDOW`] of `now`, and never seen before. A refusal is logged and
    /// returned as `Forbidden`; the operation then runs as that twin, so a twin reaches only its own
    /// deployments.
    pub fn authenticate(&self, operation: &str, request: &TwinRequest, now: i64) -> Result<(), EngineError> {
        let refuse = |why: String| {
            tracing::warn!(twin = request.twin, contract = request.contract, operation, "twin request refused: {why}");
            Err(EngineError::Forbidden(why))
        };
        if request.timestamp.abs_diff(now) > REPLAY_WINDOW.unsigned_abs() {
            return refuse(format!(
                "request timestamp {} is more than {REPLAY_WINDOW} s from the node's clock ({now})",
                request.timestamp
            ));
        }
        let key = match self.twins.key(request.twin) {
            Ok(key) => key,
            Err(err) => return refuse(format!("unknown twin {}: {err}", request.twin)),
        };
        if let Err(err) = request.verify(operation, &key) {
            return refuse(err);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, timestamp| timestamp.abs_diff(now) <= REPLAY_WINDOW.unsigned_abs());
        if seen.insert(request.signature.clone(), request.timestamp).is_some() {
            drop(seen);
            return refuse("replayed request".into());
        }
        Ok(())
    }

    /// `Deprovision`: queues the removal of a twin's deployment.
    pub fn deprovision(&self, twin: u32, contract: u64, reason: &str) -> Result<JobId, EngineError> {
        self.store.get(twin, contract)?;
        let mut txn = self.store.begin();
        // Durable with the job: a delete a module fails is retried until it is done, after a restart too.
        txn.ask_delete(twin, contract, reason);
        let job = txn.enqueue(&Job {
            op: JobOp::Deprovision,
            twin,
            contract,
            reason: reason.to_string(),
            remove: Vec::new(),
        })?;
        txn.commit()?;
        Ok(job)
    }

    /// Queues again what a module failed to remove: deletes (their workloads in `error` keep their
    /// reservations, since what the module made may still be there) and the cleanups of failed
    /// workloads, each once its back-off has passed: 5 s after the failure is first seen, then 10 s
    /// doubling to 10 minutes. The daemon calls it as its job loop idles, so that what was asked while a
    /// module or Redis was down is done once they are back, after a restart too. The number of jobs
    /// queued.
    pub fn retry_failed(&self, now: Timestamp) -> Result<usize, EngineError> {
        let deletes = self.store.deletes_asked()?;
        let mut cleanups: BTreeMap<(u32, u64), Vec<String>> = BTreeMap::new();
        for (twin, contract, name) in self.store.cleanups_asked()? {
            cleanups.entry((twin, contract)).or_default().push(name);
        }
        if deletes.is_empty() && cleanups.is_empty() {
            return Ok(0);
        }
        let queued: std::collections::HashSet<(u32, u64)> =
            self.store.jobs()?.into_iter().map(|(_, job)| (job.twin, job.contract)).collect();
        let wanted = deletes
            .into_iter()
            .map(|(twin, contract, reason)| (twin, contract, JobOp::Deprovision, reason, Vec::new()))
            .chain(
                cleanups
                    .into_iter()
                    .map(|((twin, contract), names)| (twin, contract, JobOp::Cleanup, String::new(), names)),
            );
        let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
        let mut still = std::collections::HashSet::new();
        let mut count = 0;
        for (twin, contract, op, reason, remove) in wanted {
            let key = (twin, contract, op == JobOp::Cleanup);
            still.insert(key);
            if queued.contains(&(twin, contract)) {
                continue;
            }
            // First seen now: the first try waits out 5 s.
            let Some(&(attempts, due)) = retries.get(&key) else {
                retries.insert(key, (0, now.0.saturating_add(5)));
                continue;
            };
            if due > now.0 {
                continue;
            }
            let mut txn = self.store.begin();
            txn.enqueue(&Job { op, twin, contract, reason, remove })?;
            txn.commit()?;
            let backoff = 10i64.saturating_mul(1i64 << attempts.min(6)).min(600);
            retries.insert(key, (attempts.saturating_add(1), now.0.saturating_add(backoff)));
            tracing::info!(twin, contract, ?op, attempts, "what a module failed to remove is tried again");
            count += 1;
        }
        retries.retain(|key, _| still.contains(key));
        Ok(count)
    }

    /// A [`JobOp::Cleanup`]: the named workloads, still failed and unchanged, are removed through the
    /// modules again; those removed release their reservations (and stay in `error`).
    async fn clean_up(
        &self,
        job_id: JobId,
        deployment: &Deployment,
        names: &[String],
        managers: &impl Managers,
    ) -> Result<(), EngineError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let mut cleaned = Vec::new();
        for workload in deployment.workloads.iter().filter(|wl| names.contains(&wl.name)) {
            if workload.result.state != ResultState::Error {
                cleaned.push((workload.clone(), None));
                continue;
            }
            let id = deployment.workload_id(&workload.name);
            if self.deprovision_one(managers, &id, workload, std::slice::from_ref(&id)).await.is_ok() {
                cleaned.push((workload.clone(), Some(id)));
            }
        }
        let serialized = self.ledger();
        let mut txn = self.store.begin();
        let mut released = Vec::new();
        for (workload, id) in cleaned {
            if !self.unchanged_since(twin, contract, &workload)? {
                continue;
            }
            txn.cleaned(twin, contract, &workload.name);
            if let Some(id) = id {
                txn.release(twin, contract, &workload.name)?;
                released.push(id);
            }
        }
        txn.ack(job_id)?;
        let pending = txn.commit_deferred()?;
        drop(serialized);
        pending.wait()?;
        self.release_all(released);
        Ok(())
    }

    /// `Pause`: queues pausing a deployment; paused workloads keep their capacity.
    pub fn pause(&self, twin: u32, contract: u64) -> Result<JobId, EngineError> {
        self.enqueue(JobOp::Pause, twin, contract)
    }

    /// `Resume`: queues resuming a paused deployment.
    pub fn resume(&self, twin: u32, contract: u64) -> Result<JobId, EngineError> {
        self.enqueue(JobOp::Resume, twin, contract)
    }

    fn enqueue(&self, op: JobOp, twin: u32, contract: u64) -> Result<JobId, EngineError> {
        self.store.get(twin, contract)?;
        let mut txn = self.store.begin();
        let job = txn.enqueue(&Job { op, twin, contract, reason: String::new(), remove: Vec::new() })?;
        txn.commit()?;
        Ok(job)
    }

    /// ZOS's `GetCounters`, from the ledger (no scan of the store).
    pub fn counters(&self) -> Counters {
        let ledger = self.ledger();
        let usage = ledger.usage();
        Counters {
            total: usage.total,
            used: usage.used.saturating_add(&usage.reserved),
            system: usage.reserved,
            users: UsersCounters {
                deployments: ledger.deployments() as u64,
                workloads: ledger.len() as u64,
                last_deployment_timestamp: self.newest_result.load(std::sync::atomic::Ordering::Relaxed),
            },
        }
    }

    /// Runs the oldest job, if any; its results and its acknowledgement commit together (at least once:
    /// after a crash the job runs again, and managers are idempotent). Returns whether a job ran.
    pub async fn run_one(&self, managers: &impl Managers, now: Timestamp) -> Result<bool, EngineError> {
        // Only durable work is run: a job whose admission is still waiting for its fsync could vanish
        // in a crash after its module calls were made.
        self.store.sync_applied()?;
        let Some((job_id, job)) = self.store.peek_job()? else { return Ok(false) };
        let deployment = match self.store.get(job.twin, job.contract) {
            Ok(deployment) => deployment,
            Err(StoreError::DeploymentNotExists) => {
                let mut txn = self.store.begin();
                txn.ack(job_id)?;
                txn.commit()?;
                return Ok(true);
            }
            Err(err) => return Err(err.into()),
        };
        match job.op {
            JobOp::Deprovision => {
                self.remove(&deployment, |_| true, &job.reason, Some(job_id), managers, now).await?;
            }
            JobOp::Pause | JobOp::Resume => self.lock_workloads(job_id, job.op, &deployment, managers, now).await?,
            JobOp::Cleanup => self.clean_up(job_id, &deployment, &job.remove, managers).await?,
            JobOp::Provision => self.install(job_id, &deployment, job.reason == REBOOT, managers, now).await?,
            JobOp::Update => {
                let dropped = |wl: &Workload| job.remove.contains(&wl.name);
                self.remove(&deployment, dropped, "deleted by an update", None, managers, now).await?;
                let deployment = self.store.get(job.twin, job.contract)?;
                self.install(job_id, &deployment, false, managers, now).await?;
            }
        }
        Ok(true)
    }

    /// Whether the stored workload is still the one a job ran on: no update was accepted meanwhile
    /// (an update bumps the version and replaces the data). A job writes only the result of what it ran;
    /// the update's own job runs the newer version. Called with the admission lock held, so that no
    /// update is accepted between this check and the commit.
    fn unchanged_since(&self, twin: u32, contract: u64, ran: &Workload) -> Result<bool, EngineError> {
        match self.store.current(twin, contract, &ran.name) {
            Ok(stored) => Ok(stored.version == ran.version && stored.data == ran.data),
            Err(StoreError::WorkloadNotExist | StoreError::DeploymentNotExists) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The version a workload had before the update that is now failing: the newest entry of its result
    /// log that ran (`ok` or `paused`) with a lower version. `None` for a workload never provisioned.
    fn previous_version(&self, twin: u32, contract: u64, workload: &Workload) -> Result<Option<Workload>, EngineError> {
        if workload.version == 0 {
            return Ok(None);
        }
        let log = self.store.changes(twin, contract)?;
        Ok(log.into_iter().rev().find(|old| {
            old.name == workload.name
                && old.version < workload.version
                && matches!(old.result.state, ResultState::Ok | ResultState::Paused)
        }))
    }

    /// Puts back the reservation of the version that still runs, in place of the failed update's. When
    /// the old version cannot be admitted again (the node changed), the update's reservation stays:
    /// capacity a resource uses is never freed.
    fn keep_previous(
        &self,
        ledger: &mut Ledger,
        txn: &mut zos_cache::Txn<'_>,
        (twin, contract): (u32, u64),
        id: &WorkloadId,
        previous: &Workload,
    ) -> Result<(), EngineError> {
        let Some(update) = ledger.reservation(id).cloned() else { return Ok(()) };
        if ledger.admit(id, previous).is_admit() {
            if let Some(reservation) = ledger.reservation(id) {
                txn.reserve(twin, contract, &previous.name, &ledger.record(reservation))?;
            }
        } else {
            tracing::error!(%id, "the old version cannot be held again; the update's reservation stays");
            ledger.restore(id, update);
        }
        Ok(())
    }

    async fn install(
        &self,
        job_id: JobId,
        deployment: &Deployment,
        reboot: bool,
        managers: &impl Managers,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let mut outcomes = Vec::new();
        // A workload whose dependency (its disk, its IP, its network) is in error or failed in this job
        // fails too, without being tried: the planner's rule (`zos_planner::order::failed_dependencies`).
        let mut failed: std::collections::BTreeSet<String> = deployment
            .workloads
            .iter()
            .filter(|wl| wl.result.state == ResultState::Error)
            .map(|wl| wl.name.clone())
            .collect();
        for idx in install_order(deployment) {
            let workload = &deployment.workloads[idx];
            // Workloads in error or deleted are never retried (ZOS); ok and paused ones were provisioned
            // already, unless the node rebooted (then a paused VM comes back running, as in ZOS).
            let wanted = match workload.result.state {
                ResultState::Init => true,
                ResultState::Ok | ResultState::Paused => reboot,
                _ => false,
            };
            if !wanted {
                continue;
            }
            let id = deployment.workload_id(&workload.name);
            let blocked = failed_dependencies(deployment, workload, |name| failed.contains(name));
            let outcome = match blocked.first() {
                Some(dependency) => Err(zos_planner::order::DependentFailure {
                    name: workload.name.clone(),
                    kind: workload.kind(),
                    dependency: dependency.name.clone(),
                    dependency_kind: dependency.kind(),
                }
                .message()),
                None => {
                    let reservation = self.store.reservation(twin, contract, &workload.name)?;
                    managers.provision(&id, workload, reservation.as_ref()).await
                }
            };
            // A failed first provision (a module error, or a deadline that expired while the call was in
            // flight) may have left something behind: it is undone, and the reservation is released only
            // once the module confirms nothing is left; otherwise it stays held, in `error`.
            let outcome = match outcome {
                Err(message) if blocked.is_empty() && workload.version == 0 => {
                    match self.deprovision_one(managers, &id, workload, std::slice::from_ref(&id)).await {
                        Ok(()) => Err((message, true)),
                        Err(cleanup) => Err((format!("{message}; cleaning up failed: {cleanup}"), false)),
                    }
                }
                Err(message) => Err((message, true)),
                Ok(data) => Ok(data),
            };
            if outcome.is_err() {
                failed.insert(workload.name.clone());
            }
            outcomes.push((workload.clone(), id, outcome));
        }
        let mut serialized = self.ledger();
        let mut txn = self.store.begin();
        let mut released = Vec::new();
        let mut recorded = Vec::new();
        for (mut workload, id, outcome) in outcomes {
            if !self.unchanged_since(twin, contract, &workload)? {
                continue;
            }
            workload.result = match outcome {
                Ok(data) => result(ResultState::Ok, String::new(), data, now),
                Err((message, gone)) => match self.previous_version(twin, contract, &workload)? {
                    // A failed update: the old resource still exists and keeps what it holds (ZOS
                    // records the workload `unchanged`, with its old data).
                    Some(previous) => {
                        self.keep_previous(&mut serialized, &mut txn, (twin, contract), &id, &previous)?;
                        txn.record(twin, contract, &previous)?;
                        let mut unchanged = previous.clone();
                        unchanged.result = result(ResultState::Unchanged, message, previous.result.data.clone(), now);
                        txn.record(twin, contract, &unchanged)?;
                        recorded.push(unchanged);
                        continue;
                    }
                    None if gone => {
                        txn.release(twin, contract, &workload.name)?;
                        released.push(id);
                        result(ResultState::Error, message, serde_json::Value::Null, now)
                    }
                    None => {
                        // Its cleanup failed: it keeps its reservation, and the cleanup is tried again.
                        txn.ask_cleanup(twin, contract, &workload.name);
                        result(ResultState::Error, message, serde_json::Value::Null, now)
                    }
                },
            };
            txn.record(twin, contract, &workload)?;
            recorded.push(workload);
        }
        txn.ack(job_id)?;
        let pending = txn.commit_deferred()?;
        drop(serialized);
        pending.wait()?;
        self.announce(twin, contract, &recorded);
        self.release_all(released);
        Ok(())
    }

    /// Pause (reverse type order, `ok` workloads) or resume (type order, `paused` workloads); the
    /// reservations stay either way.
    async fn lock_workloads(
        &self,
        job_id: JobId,
        op: JobOp,
        deployment: &Deployment,
        managers: &impl Managers,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let pausing = op == JobOp::Pause;
        let order = if pausing { uninstall_order(deployment) } else { install_order(deployment) };
        let (from, to) =
            if pausing { (ResultState::Ok, ResultState::Paused) } else { (ResultState::Paused, ResultState::Ok) };
        let mut changed = Vec::new();
        for idx in order {
            let workload = &deployment.workloads[idx];
            if workload.result.state != from {
                continue;
            }
            let id = deployment.workload_id(&workload.name);
            let outcome =
                if pausing { managers.pause(&id, workload).await } else { managers.resume(&id, workload).await };
            let mut next = workload.clone();
            next.result = match outcome {
                Ok(()) => {
                    result(to, if pausing { "paused".into() } else { String::new() }, workload.result.data.clone(), now)
                }
                // The action failed but the previous state still holds.
                Err(message) => result(ResultState::Unchanged, message, workload.result.data.clone(), now),
            };
            changed.push(next);
        }
        let serialized = self.ledger();
        let mut txn = self.store.begin();
        let mut recorded = Vec::new();
        for workload in changed {
            if self.unchanged_since(twin, contract, &workload)? {
                txn.record(twin, contract, &workload)?;
                recorded.push(workload);
            }
        }
        txn.ack(job_id)?;
        let pending = txn.commit_deferred()?;
        drop(serialized);
        pending.wait()?;
        self.announce(twin, contract, &recorded);
        Ok(())
    }

    /// Deprovisions the selected workloads in reverse type order and records the outcome in one commit:
    /// a removed workload becomes `deleted` (reservation released, name freed), a failed one `error`,
    /// still holding its reservation (ZOS leaks it). With `deprovision_job` (a deletion), the job is
    /// acknowledged in the same commit, and when every workload went the deployment is deleted whole.
    /// Removes one workload through the modules, except a zdb namespace whose device is still used by
    /// another zdb: see [`Engine::device_in_use`].
    async fn deprovision_one(
        &self,
        managers: &impl Managers,
        id: &WorkloadId,
        workload: &Workload,
        leaving: &[WorkloadId],
    ) -> Result<(), String> {
        if self.device_in_use(workload, leaving) {
            return Ok(());
        }
        managers.deprovision(id, workload).await
    }

    /// Whether a zdb's device (its HDD pool's `zdb` subvolume, which every zdb namespace of that pool
    /// shares) is still held by a zdb that is not among `leaving`: then removing this namespace leaves
    /// the device, and the other namespaces' data, alone; the last zdb to go gives it back.
    fn device_in_use(&self, workload: &Workload, leaving: &[WorkloadId]) -> bool {
        if !matches!(workload.data, WorkloadData::Zdb(_)) {
            return false;
        }
        let Some(device) = workload.result.data.get("Device").and_then(serde_json::Value::as_str) else {
            return false;
        };
        let ledger = self.ledger();
        ledger.reservations().any(|(id, reservation)| {
            !leaving.contains(id)
                && ledger
                    .record(reservation)
                    .disk
                    .is_some_and(|(pool, demand)| demand.role == DiskRole::Zdb && pool == device)
        })
    }

    async fn remove(
        &self,
        deployment: &Deployment,
        selected: impl Fn(&Workload) -> bool,
        reason: &str,
        deprovision_job: Option<JobId>,
        managers: &impl Managers,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (twin, contract) = (deployment.twin_id, deployment.contract_id);
        let mut outcomes = Vec::new();
        let leaving: Vec<WorkloadId> = deployment
            .workloads
            .iter()
            .filter(|workload| selected(workload))
            .map(|workload| deployment.workload_id(&workload.name))
            .collect();
        for idx in uninstall_order(deployment) {
            let workload = &deployment.workloads[idx];
            if selected(workload) {
                let id = deployment.workload_id(&workload.name);
                let outcome = self.deprovision_one(managers, &id, workload, &leaving).await;
                outcomes.push((workload.clone(), id, outcome));
            }
        }
        let all_gone = outcomes.iter().all(|(_, _, outcome)| outcome.is_ok());
        let mut released = Vec::new();
        let mut recorded = Vec::new();
        let mut txn = self.store.begin();
        for (mut workload, id, outcome) in outcomes {
            workload.result = match outcome {
                Ok(()) => {
                    released.push(id);
                    result(ResultState::Deleted, reason.to_string(), serde_json::Value::Null, now)
                }
                // The resource may still be there: keep what the result says of it (a retry needs it).
                Err(message) => result(ResultState::Error, message, workload.result.data.clone(), now),
            };
            recorded.push(workload);
        }
        if let Some(job_id) = deprovision_job {
            txn.ack(job_id)?;
        }
        if deprovision_job.is_some() && all_gone {
            txn.delete(twin, contract)?;
        } else {
            for workload in &recorded {
                txn.record(twin, contract, workload)?;
                if workload.result.state == ResultState::Deleted {
                    txn.release(twin, contract, &workload.name)?;
                    txn.remove_workload(twin, contract, &workload.name)?;
                }
            }
        }
        txn.commit()?;
        self.announce(twin, contract, &recorded);
        self.release_all(released);
        Ok(())
    }
}
