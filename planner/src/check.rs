//! `zos-plan check`: a scenario evaluated without side effects, as a serializable report.

use crate::admission::{DeploymentVerdict, InvalidWorkload, WorkloadVerdict, same_deployment};
use crate::ledger::{Ledger, Usage};
use crate::verdict::{Assignment, Shortfall, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use zos_types::Deployment;
use zos_types::scenario::Scenario;

/// ZOS's answer to creating a deployment whose twin already has that contract (`ErrDeploymentExists`).
pub const EXISTS: &str = "exists";

/// The report of a scenario: one entry per request, then the node's usage after them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The requests, in order.
    pub requests: Vec<RequestReport>,
    /// Usage after every admitted request.
    pub usage: Usage,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestReport {
    /// Owner twin.
    pub twin_id: u32,
    /// Contract.
    pub contract_id: u64,
    /// `admit` (all workloads), `partial`, `reject` (none) or `invalid` (refused by ZOS's
    /// `CreateOrUpdate` before any capacity is looked at: validation, or `exists`).
    pub verdict: &'static str,
    /// Validation message of an invalid request, or `exists`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The workloads, in the order they were walked (deployment order when invalid).
    pub workloads: Vec<WorkloadReport>,
}

/// The outcome of one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadReport {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `admit`, `reject` or `invalid`.
    pub verdict: &'static str,
    /// Pool, IP and GPUs of an admitted workload.
    #[serde(flatten)]
    pub assignment: Assignment,
    /// Every shortfall of a rejected workload.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shortfalls: Vec<Shortfall>,
    /// Validation message, or why an admission was rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl WorkloadReport {
    /// The report of a judged workload: its assignment, or every shortfall.
    pub fn judged(judged: WorkloadVerdict) -> WorkloadReport {
        let (verdict, assignment, shortfalls) = match judged.verdict {
            Verdict::Admit(assignment) => ("admit", assignment, Vec::new()),
            Verdict::Reject(shortfalls) => ("reject", Assignment::default(), shortfalls),
        };
        WorkloadReport {
            name: judged.name,
            kind: judged.kind.to_string(),
            verdict,
            assignment,
            shortfalls,
            message: judged.note,
        }
    }
}

/// Evaluates a scenario: holds the existing deployments, then admits the requests in order.
///
/// A twin's contract is one deployment. A request is refused with ZOS's `exists` (as `invalid`, taking
/// nothing; reference section 2.2) when its twin and contract are those of a deployment on the node or
/// of an earlier valid request, except when it is the very same deployment as the one on the node
/// ([`same_deployment`]): then it is that deployment checked again, as ZOS re-runs it at boot, and its
/// workloads are judged without counting themselves (memory and CPU, and the disks already inside the
/// pools' `used`). Validation comes first, as in ZOS; an invalid request takes no contract.
pub fn check(scenario: &Scenario) -> CheckReport {
    check_with_ledger(scenario).0
}

/// [`check`], with the ledger as the requests leave it (what `headroom` on a scenario starts from).
pub fn check_with_ledger(scenario: &Scenario) -> (CheckReport, Ledger) {
    let mut ledger = Ledger::new(&scenario.node, scenario.policy);
    // Contracts taken: by a deployment on the node (which a request may repeat exactly), or by a request.
    let mut taken: HashMap<(u32, u64), Option<&Deployment>> = HashMap::new();
    for deployment in &scenario.deployments {
        ledger.hold_deployment(deployment);
        taken.entry((deployment.twin_id, deployment.contract_id)).or_insert(Some(deployment));
    }
    let requests = scenario
        .requests
        .iter()
        .map(|deployment| {
            let key = (deployment.twin_id, deployment.contract_id);
            let exists = match taken.get(&key) {
                None => false,
                Some(Some(stored)) => !same_deployment(stored, deployment),
                Some(None) => true,
            };
            let outcome = if exists && deployment.validate().is_ok() {
                let workloads = deployment
                    .workloads
                    .iter()
                    .map(|wl| InvalidWorkload { name: wl.name.clone(), kind: wl.kind(), message: EXISTS.into() })
                    .collect();
                DeploymentVerdict::Invalid { message: EXISTS.into(), workloads }
            } else {
                ledger.admit_deployment(deployment)
            };
            if matches!(outcome, DeploymentVerdict::Judged(_)) {
                taken.entry(key).or_insert(None);
            }
            let (verdict, message, workloads) = match outcome {
                DeploymentVerdict::Invalid { message, workloads } => {
                    let workloads = workloads
                        .into_iter()
                        .map(|wl| WorkloadReport {
                            name: wl.name,
                            kind: wl.kind.to_string(),
                            verdict: "invalid",
                            assignment: Assignment::default(),
                            shortfalls: Vec::new(),
                            message: Some(wl.message),
                        })
                        .collect();
                    ("invalid", Some(message), workloads)
                }
                DeploymentVerdict::Judged(verdicts) => {
                    let admitted = verdicts.iter().filter(|it| it.verdict.is_admit()).count();
                    let verdict = match admitted {
                        0 if !verdicts.is_empty() => "reject",
                        n if n == verdicts.len() => "admit",
                        _ => "partial",
                    };
                    let workloads = verdicts.into_iter().map(WorkloadReport::judged).collect();
                    (verdict, None, workloads)
                }
            };
            RequestReport {
                twin_id: deployment.twin_id,
                contract_id: deployment.contract_id,
                verdict,
                message,
                workloads,
            }
        })
        .collect();
    let usage = ledger.usage();
    (CheckReport { requests, usage }, ledger)
}
