//! Admission of whole deployments: ZOS's walk order, per-workload verdicts, optional atomicity.

use crate::ledger::{Ledger, Reservation};
use crate::order::install_order;
use crate::verdict::Verdict;
use zos_types::{Deployment, WorkloadId, WorkloadType};

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

impl Ledger {
    /// Admits a deployment's workloads in ZOS's install order; each admitted one counts for the next.
    /// Under an atomic policy a single rejection rolls every admission of the deployment back.
    pub fn admit_deployment(&mut self, deployment: &Deployment) -> DeploymentVerdict {
        if let Err(message) = deployment.validate() {
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
            return DeploymentVerdict::Invalid { message, workloads };
        }
        self.admit_deployment_unvalidated(deployment)
    }

    /// [`Ledger::admit_deployment`] for a deployment the caller has validated already (farm placement
    /// tries one deployment on many nodes and validates it once).
    pub(crate) fn admit_deployment_unvalidated(&mut self, deployment: &Deployment) -> DeploymentVerdict {
        let mut verdicts = Vec::with_capacity(deployment.workloads.len());
        let mut admitted: Vec<(WorkloadId, Option<Reservation>)> = Vec::new();
        for idx in install_order(deployment) {
            let workload = &deployment.workloads[idx];
            let id = deployment.workload_id(&workload.name);
            let prior = self.reservation(&id).cloned();
            let verdict = self.admit(&id, workload);
            if verdict.is_admit() {
                admitted.push((id, prior));
            }
            verdicts.push(WorkloadVerdict { name: workload.name.clone(), kind: workload.kind(), verdict, note: None });
        }
        let rejected = verdicts.iter().find(|it| !it.verdict.is_admit()).map(|it| it.name.clone());
        if let (true, Some(rejected)) = (self.policy().atomic, rejected) {
            for (id, prior) in admitted.into_iter().rev() {
                self.release(&id);
                if let Some(prior) = prior {
                    self.restore(&id, prior);
                }
            }
            for verdict in verdicts.iter_mut().filter(|it| it.verdict.is_admit()) {
                verdict.verdict = Verdict::Reject(Vec::new());
                verdict.note =
                    Some(format!("rolled back: the policy is atomic and workload '{rejected}' was rejected"));
            }
        }
        DeploymentVerdict::Judged(verdicts)
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
