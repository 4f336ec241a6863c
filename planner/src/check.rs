//! `zos-plan check`: a scenario evaluated without side effects, as a serializable report.

use crate::admission::DeploymentVerdict;
use crate::ledger::{Ledger, Usage};
use crate::verdict::{Assignment, Shortfall, Verdict};
use serde::Serialize;
use zos_types::scenario::Scenario;

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
    /// `admit` (all workloads), `partial`, `reject` (none) or `invalid`.
    pub verdict: &'static str,
    /// Validation message of an invalid request.
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

/// Evaluates a scenario: holds the existing deployments, then admits the requests in order.
pub fn check(scenario: &Scenario) -> CheckReport {
    let mut ledger = Ledger::new(&scenario.node, scenario.policy);
    for deployment in &scenario.deployments {
        ledger.hold_deployment(deployment);
    }
    let requests = scenario
        .requests
        .iter()
        .map(|deployment| {
            let (verdict, message, workloads) = match ledger.admit_deployment(deployment) {
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
                    let workloads = verdicts
                        .into_iter()
                        .map(|wl| {
                            let (verdict, assignment, shortfalls) = match wl.verdict {
                                Verdict::Admit(assignment) => ("admit", assignment, Vec::new()),
                                Verdict::Reject(shortfalls) => ("reject", Assignment::default(), shortfalls),
                            };
                            WorkloadReport {
                                name: wl.name,
                                kind: wl.kind.to_string(),
                                verdict,
                                assignment,
                                shortfalls,
                                message: wl.note,
                            }
                        })
                        .collect();
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
    CheckReport { requests, usage: ledger.usage() }
}
