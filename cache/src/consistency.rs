//! The store's invariants, checked on demand: what a crash must never break, and where the ledger's
//! reservations and the stored workload states disagree (drift).

use crate::error::StoreError;
use crate::key;
use crate::store::{Reservations, Store, Stored, decode};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use zos_types::{Capacity, ReservationRecord, ResultState, Workload, WorkloadId};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A sharable name registered to a contract that does not hold it, or an active sharable workload
    /// whose name is not registered to its contract.
    SharableName {
        /// Owner twin.
        twin: u32,
        /// The name.
        name: String,
    },
    /// A reservation for a workload that is not active or does not hold capacity in its state.
    OrphanReservation(WorkloadId),
    /// A workload whose state holds capacity (`init`, `ok`, `paused`) but has no reservation.
    MissingReservation(WorkloadId),
    /// A reservation whose capacity differs from the workload's.
    CapacityMismatch {
        /// The workload.
        id: WorkloadId,
        /// What the reservation says.
        reserved: Capacity,
        /// What the workload needs.
        needed: Capacity,
    },
    /// A queued job for a deployment that does not exist.
    OrphanJob {
        /// Job sequence.
        job: u64,
        /// Twin.
        twin: u32,
        /// Contract.
        contract: u64,
    },
}

impl Drift {
    /// A broken invariant of the store itself (orphan jobs, sharable names), as opposed to
    /// disagreements between the reservations its user keeps and the workload states.
    pub fn is_structural(&self) -> bool {
        !matches!(self, Drift::OrphanReservation(_) | Drift::MissingReservation(_) | Drift::CapacityMismatch { .. })
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::SharableName { twin, name } => write!(f, "sharable name '{name}' of twin {twin} is inconsistent"),
            Drift::OrphanReservation(id) => write!(f, "reservation of {id} without a workload holding capacity"),
            Drift::MissingReservation(id) => write!(f, "workload {id} holds capacity but has no reservation"),
            Drift::CapacityMismatch { id, reserved, needed } => {
                write!(f, "reservation of {id} is {reserved:?} but the workload needs {needed:?}")
            }
            Drift::OrphanJob { job, twin, contract } => {
                write!(f, "job {job} is for deployment {twin}-{contract}, which does not exist")
            }
        }
    }
}

/// States in which a workload holds its reservation: admitted (`init`), running, paused.
pub fn holds_capacity(state: ResultState) -> bool {
    matches!(state, ResultState::Init | ResultState::Ok | ResultState::Paused)
}

impl Store {
    /// Checks every invariant; an empty list means the store is consistent.
    pub fn check_consistency(&self) -> Result<Vec<Drift>, StoreError> {
        let mut drifts = Vec::new();
        let mut deployments: BTreeMap<(u32, u64), Stored> = BTreeMap::new();
        for item in self.scan(&[key::DEPLOYMENT]) {
            let (k, v) = item?;
            if let Some(ids) = key::twin_contract(&k) {
                deployments.insert(ids, decode(&k, &v)?);
            }
        }
        let workloads: BTreeMap<(u32, u64, String), &Workload> = deployments
            .iter()
            .flat_map(|((twin, contract), record)| {
                record.workloads.iter().map(move |workload| ((*twin, *contract, workload.name.clone()), workload))
            })
            .collect();
        let mut registered: BTreeSet<(u32, String, u64)> = BTreeSet::new();
        for item in self.scan(&[key::SHARABLE]) {
            let (k, v) = item?;
            if let Some((twin, name)) = key::twin_name(&k) {
                registered.insert((twin, name, decode(&k, &v)?));
            }
        }
        let expected: BTreeSet<(u32, String, u64)> = workloads
            .iter()
            .filter(|(_, workload)| workload.kind().is_sharable())
            .map(|((twin, contract, name), _)| (*twin, name.clone(), *contract))
            .collect();
        for (twin, name, _) in registered.symmetric_difference(&expected) {
            drifts.push(Drift::SharableName { twin: *twin, name: name.clone() });
        }
        let mut reservations: BTreeMap<(u32, u64, String), ReservationRecord> = BTreeMap::new();
        for item in self.scan(&[key::RESERVATION]) {
            let (k, v) = item?;
            if let Some((twin, contract)) = key::twin_contract(&k) {
                let records: Reservations = decode(&k, &v)?;
                reservations.extend(records.into_iter().map(|(name, record)| ((twin, contract, name), record)));
            }
        }
        for ((twin, contract, name), record) in &reservations {
            let id = WorkloadId::new(*twin, *contract, name);
            match workloads.get(&(*twin, *contract, name.clone())) {
                // A failed delete leaves the workload in `error` still holding what it could not remove.
                Some(workload)
                    if holds_capacity(workload.result.state) || workload.result.state == ResultState::Error =>
                {
                    if record.capacity != workload.capacity() {
                        drifts.push(Drift::CapacityMismatch {
                            id,
                            reserved: record.capacity,
                            needed: workload.capacity(),
                        });
                    }
                }
                _ => drifts.push(Drift::OrphanReservation(id)),
            }
        }
        for ((twin, contract, name), workload) in &workloads {
            if holds_capacity(workload.result.state) && !reservations.contains_key(&(*twin, *contract, name.clone())) {
                drifts.push(Drift::MissingReservation(WorkloadId::new(*twin, *contract, name)));
            }
        }
        for (id, job) in self.jobs()? {
            if !deployments.contains_key(&(job.twin, job.contract)) {
                drifts.push(Drift::OrphanJob { job: id.0, twin: job.twin, contract: job.contract });
            }
        }
        Ok(drifts)
    }
}
