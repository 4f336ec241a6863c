//! Store errors. The texts of ZOS's sentinel errors are kept, so callers and users see the same words.

use zos_types::WorkloadType;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The deployment exists already.
    #[error("exists")]
    DeploymentExists,
    /// A sharable name (a network) is taken by another deployment of the same twin.
    #[error("global workload with the same name '{0}' exists: conflict")]
    DeploymentConflict(String),
    /// No such deployment.
    #[error("deployment does not exist")]
    DeploymentNotExists,
    /// The workload name is taken in this deployment.
    #[error("workload with the same name '{0}' exists")]
    WorkloadExists(String),
    /// No such active workload.
    #[error("workload does not exist")]
    WorkloadNotExist,
    /// A result's type does not match the stored workload.
    #[error("invalid workload type: stored '{stored}', got '{got}'")]
    InvalidWorkloadType {
        /// The stored type.
        stored: WorkloadType,
        /// The type given.
        got: WorkloadType,
    },
    /// A result that must not be stored (no time, no state) or an invalid name.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No such job.
    #[error("job {0} does not exist")]
    JobNotExists(u64),
    /// The store was written by a different schema version.
    #[error(
        "store schema version {found} is not supported (this build reads version {supported}); refusing to reinterpret it"
    )]
    UnknownSchema {
        /// What the store says.
        found: String,
        /// What this build reads.
        supported: u32,
    },
    /// A stored record does not decode.
    #[error("corrupt record at key {key}: {message}")]
    Corrupt {
        /// The key, printable.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The engine failed (I/O, disk full, ...). The state on disk is what it was before the call.
    #[error("storage engine: {0}")]
    Engine(#[from] sled::Error),
    /// An earlier commit failed; reopen the store.
    #[error("the store is poisoned by an earlier failed write; reopen it")]
    Poisoned,
    /// An I/O error while making a commit durable.
    #[error("making the commit durable: {0}")]
    Io(#[from] std::io::Error),
}
