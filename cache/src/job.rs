//! Jobs of the provision engine's queue.

use serde::{Deserialize, Serialize};

/// What a job does to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobOp {
    /// Install the deployment's workloads.
    Provision,
    /// Apply the stored update.
    Update,
    /// Uninstall the deployment.
    Deprovision,
    /// Pause its workloads.
    Pause,
    /// Resume its workloads.
    Resume,
    /// Clean up again the failed workloads named in `remove`, whose first cleanup failed: on success
    /// they release their reservations and stay in `error`.
    Cleanup,
}

/// A queued job. The deployment itself is in the store; the job names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The operation.
    pub op: JobOp,
    /// Owner twin.
    pub twin: u32,
    /// Contract.
    pub contract: u64,
    /// Why (deprovision reason), may be empty.
    #[serde(default)]
    pub reason: String,
    /// Workloads the job removes (an update's removals), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// The position of a job in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);
