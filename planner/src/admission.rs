//! Admission of whole deployments: ZOS's walk order, per-workload verdicts, dependencies, optional
//! atomicity.

use crate::ledger::{Ledger, Reservation};
use crate::order::{failed_dependencies, install_order};
use crate::verdict::{Reason, Resource, Shortfall, Verdict};
use std::collections::HashMap;
use zos_types::{Deployment, Workload, WorkloadId, WorkloadType};

/// The verdict on one workload of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadVerdict {
    /// Workload name.
    pub name: String,
    /// Workload type.
    pub kind: WorkloadType,
    /// Admit with its assignment, or reject with every shortfall.
    pub verdict: Verdict,
    /// Why an admitted workload was rolled back (atomic policy).
    pub note: Option<String>,
}

/// A workload of an invalid deployment, with the problem shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidWorkload {
    /// Workload name.
    pub name: String,
    /// Workload type.
    pub kind: WorkloadType,
    /// Its own validation problem, or the deployment's when it has none.
    pub message: String,
}

/// What an admission took, so that it can be taken back: each admitted workload with the reservation
/// it held before ([`Ledger::undo`]).
#[derive(Debug, Default)]
pub struct Undo(Vec<(WorkloadId, Option<Reservation>)>);

/// The verdict on a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentVerdict {
    /// Validation failed (ZOS's message); nothing was taken.
    Invalid {
        /// The first problem, as ZOS's `Valid` reports it.
        message: String,
        /// Each workload, in deployment order.
        workloads: Vec<InvalidWorkload>,
    },
    /// Each workload judged, in the order they were walked.
    Judged(Vec<WorkloadVerdict>),
}

/// `Invalid` with each workload's problem, when the deployment does not validate.
fn invalid(deployment: &Deployment) -> Option<DeploymentVerdict> {
    let message = deployment.validate().err()?;
    let workloads = deployment
        .workloads
        .iter()
        .zip(deployment.workload_errors())
        .map(|(workload, own)| InvalidWorkload {
            name: workload.name.clone(),
            kind: workload.kind(),
            message: own.unwrap_or_else(|| message.clone()),
        })
        .collect();
    Some(DeploymentVerdict::Invalid { message, workloads })
}

impl Ledger {
    /// Admits a deployment's workloads in ZOS's install order; each admitted one counts for the next.
    /// A workload that depends on a refused one of the same deployment (its disk, volume, qsfs, public
    /// IP or network; a zlogs's zmachine: [`crate::order::dependencies`]) is refused too, with one
    /// [`Reason::Dependency`] shortfall per refused dependency after its own shortfalls, and, as every
    /// rejection, takes nothing (a new workload holds nothing; one checked again keeps what it held):
    /// ZOS installs in that order and fails it (reference section 2.4).
    /// Under an atomic policy a single rejection rolls every admission of the deployment back.
    pub fn admit_deployment(&mut self, deployment: &Deployment) -> DeploymentVerdict {
        invalid(deployment).unwrap_or_else(|| self.admit_deployment_unvalidated(deployment))
    }

    /// [`Ledger::admit_deployment`] for a deployment the caller has validated already (farm placement
    /// tries one deployment on many nodes and validates it once).
    pub(crate) fn admit_deployment_unvalidated(&mut self, deployment: &Deployment) -> DeploymentVerdict {
        let (mut verdicts, undo) = self.walk(deployment);
        let rejected = verdicts.iter().find(|it| !it.verdict.is_admit()).map(|it| it.name.clone());
        if let (true, Some(rejected)) = (self.policy().atomic, rejected) {
            self.undo(undo);
            for verdict in verdicts.iter_mut().filter(|it| it.verdict.is_admit()) {
                verdict.verdict = Verdict::Reject(Vec::new());
                verdict.note =
                    Some(format!("rolled back: the policy is atomic and workload '{rejected}' was rejected"));
            }
        }
        DeploymentVerdict::Judged(verdicts)
    }

    /// Admits a deployment whole or not at all, whatever the policy: what a node's door does. When every
    /// workload is admitted the ledger holds them and the [`Undo`] takes them back (a commit that
    /// fails); otherwise the ledger is as it was and the undo is empty. The cost is that of the
    /// deployment's workloads, whatever the ledger holds: no copy of the ledger is made.
    pub fn admit_whole(&mut self, deployment: &Deployment) -> (DeploymentVerdict, Undo) {
        match invalid(deployment) {
            Some(invalid) => (invalid, Undo::default()),
            None => {
                let (verdicts, undo) = self.admit_whole_validated(deployment);
                (DeploymentVerdict::Judged(verdicts), undo)
            }
        }
    }

    /// [`Ledger::admit_whole`] for a deployment the caller has validated already (the node's door
    /// validates before it checks signatures, ZOS's order, and does not validate twice): each workload's
    /// verdict, in the order they were walked.
    pub fn admit_whole_validated(&mut self, deployment: &Deployment) -> (Vec<WorkloadVerdict>, Undo) {
        let (verdicts, undo) = self.walk(deployment);
        if verdicts.iter().all(|it| it.verdict.is_admit()) {
            (verdicts, undo)
        } else {
            self.undo(undo);
            (verdicts, Undo::default())
        }
    }

    /// `admit`, recording in `undo` what to put back when the caller takes the admission back.
    pub fn admit_undoable(&mut self, id: &WorkloadId, workload: &Workload, undo: &mut Undo) -> Verdict {
        let prior = self.reservation(id).cloned();
        let verdict = self.admit(id, workload);
        if verdict.is_admit() {
            undo.0.push((id.clone(), prior));
        }
        verdict
    }

    /// Takes back what `undo` records, newest first: each workload holds again what it held before.
    pub fn undo(&mut self, undo: Undo) {
        for (id, prior) in undo.0.into_iter().rev() {
            self.release(&id);
            if let Some(prior) = prior {
                self.restore(&id, prior);
            }
        }
    }

    /// Walks a deployment in install order, admitting what fits (see [`Ledger::admit_deployment`]).
    fn walk(&mut self, deployment: &Deployment) -> (Vec<WorkloadVerdict>, Undo) {
        let mut verdicts = Vec::with_capacity(deployment.workloads.len());
        let mut admitted: Vec<(WorkloadId, Option<Reservation>)> = Vec::new();
        // Refused workloads of this deployment, with their first shortfall (what a dependent reports).
        let mut refused: HashMap<&str, Option<Shortfall>> = HashMap::new();
        for idx in install_order(deployment) {
            let workload = &deployment.workloads[idx];
            let id = deployment.workload_id(&workload.name);
            let prior = self.reservation(&id).cloned();
            let mut verdict = self.admit(&id, workload);
            let failed = failed_dependencies(deployment, workload, |name| refused.contains_key(name));
            if !failed.is_empty() {
                let mut shortfalls = match verdict {
                    Verdict::Reject(shortfalls) => shortfalls,
                    Verdict::Admit(_) => {
                        // It fitted on its own: undo that, as a rejection changes nothing.
                        self.release(&id);
                        if let Some(prior) = prior.clone() {
                            self.restore(&id, prior);
                        }
                        Vec::new()
                    }
                };
                shortfalls.extend(
                    failed
                        .into_iter()
                        .map(|dep| dependency_shortfall(dep, refused.get(dep.name.as_str()).cloned().flatten())),
                );
                verdict = Verdict::Reject(shortfalls);
            }
            match &verdict {
                Verdict::Admit(_) => admitted.push((id, prior)),
                Verdict::Reject(shortfalls) => {
                    refused.insert(workload.name.as_str(), shortfalls.first().cloned());
                }
            }
            verdicts.push(WorkloadVerdict { name: workload.name.clone(), kind: workload.kind(), verdict, note: None });
        }
        (verdicts, Undo(admitted))
    }

    /// Holds the workloads of a deployment that already runs: those whose current state is `ok` or
    /// `paused` (ZOS's `IsOkay`); `init`, `error` and `deleted` hold nothing.
    pub fn hold_deployment(&mut self, deployment: &Deployment) {
        for workload in &deployment.workloads {
            if workload.result.state.is_okay() {
                self.hold(&deployment.workload_id(&workload.name), workload);
            }
        }
    }
}

/// The shortfall of a workload whose dependency was refused: it names the dependency and carries the
/// resource and numbers of the dependency's first shortfall (none: the resource its type asks for most).
fn dependency_shortfall(dependency: &Workload, cause: Option<Shortfall>) -> Shortfall {
    let kind = dependency.kind();
    let reason = Reason::Dependency { name: dependency.name.clone(), kind };
    match cause {
        Some(cause) => Shortfall {
            message: format!("depends on {kind} '{}', which was refused: {}", dependency.name, cause.message),
            pools: Vec::new(),
            reason,
            ..cause
        },
        None => Shortfall {
            resource: match kind {
                WorkloadType::ZMount | WorkloadType::Volume | WorkloadType::Qsfs => Resource::Sru,
                WorkloadType::Zdb => Resource::Hru,
                WorkloadType::Ip | WorkloadType::Ipv4 => Resource::Ipv4u,
                _ => Resource::Mru,
            },
            requested: 0,
            used: 0,
            reserved: 0,
            total: 0,
            available: 0,
            pools: Vec::new(),
            message: format!("depends on {kind} '{}', which was refused", dependency.name),
            reason,
        },
    }
}

/// True when `request` is the very deployment `stored` is: same twin, contract and version, and the same
/// workloads (name, type, version and data; results aside, in any order, as ZOS keeps them in a map).
/// A scenario request that repeats a stored deployment this way is that deployment checked again, as
/// ZOS re-runs every stored deployment at boot (reference section 2.7), not a second creation.
pub fn same_deployment(stored: &Deployment, request: &Deployment) -> bool {
    let same_workload = |a: &Workload, b: &Workload| a.version == b.version && a.data == b.data;
    stored.twin_id == request.twin_id
        && stored.contract_id == request.contract_id
        && stored.version == request.version
        && stored.workloads.len() == request.workloads.len()
        && request
            .workloads
            .iter()
            .all(|wl| stored.workloads.iter().find(|it| it.name == wl.name).is_some_and(|it| same_workload(it, wl)))
}
