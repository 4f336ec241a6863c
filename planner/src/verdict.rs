//! What admission answers: an assignment, or every shortfall with its numbers.

use serde::{Deserialize, Serialize};
use std::fmt;
use zos_types::Unit;

/// A resource the ledger accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// CPU threads.
    Cru,
    /// Memory.
    Mru,
    /// SSD storage.
    Sru,
    /// HDD storage.
    Hru,
    /// Public IPv4 addresses.
    Ipv4u,
    /// GPUs.
    Gpu,
}

impl Resource {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cru => "cru",
            Resource::Mru => "mru",
            Resource::Sru => "sru",
            Resource::Hru => "hru",
            Resource::Ipv4u => "ipv4u",
            Resource::Gpu => "gpu",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pool as a disk shortfall shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPicture {
    /// Pool name.
    pub name: String,
    /// Device size.
    pub size: Unit,
    /// Reserved on it.
    pub used: Unit,
    /// What is left.
    pub free: Unit,
    /// Mounted (or about to be, by an earlier placement).
    pub mounted: bool,
}

/// Why a workload does not fit: one resource, with the numbers behind the refusal.
///
/// For memory, `used` is what ZOS calls used: `max(workloads + reserved, OS-reported used)`.
/// For disks, `available` is the most any single pool of the right kind can still take, and
/// `pools` shows every pool of that kind, so that "1 TiB free in total but no pool has 600 GiB"
/// can be read off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The resource.
    pub resource: Resource,
    /// What the workload asks for (bytes for memory and disks, counts otherwise).
    pub requested: u64,
    /// What is in use.
    pub used: u64,
    /// What is kept for the system.
    pub reserved: u64,
    /// The node's total (after overcommit, for CPU).
    pub total: u64,
    /// What could still be given.
    pub available: u64,
    /// Disks only: the pools of the kind asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolPicture>,
    /// The refusal in words (ZOS's text where ZOS has one).
    pub message: String,
}

/// What an admitted workload holds beyond plain counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The pool its disk went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The public IPv4 address it got, with prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The GPUs it holds, as `<slot>/<vendor>/<device>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
}

/// The answer for one workload. A rejection is a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It fits; this is what it holds.
    Admit(Assignment),
    /// It does not fit; every shortfall, never just the first.
    Reject(Vec<Shortfall>),
}

impl Verdict {
    /// True for an admission.
    pub fn is_admit(&self) -> bool {
        matches!(self, Verdict::Admit(_))
    }
}
