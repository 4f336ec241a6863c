//! What admission answers: an assignment, or every shortfall with its numbers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zos_types::{Unit, WorkloadType};

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

/// What a [`Shortfall`] is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The workload's own demand does not fit: `resource` and the numbers say by how much.
    #[default]
    Capacity,
    /// A workload of the same deployment that this one needs (a disk, volume or qsfs it mounts, its public
    /// IP, its network, the zmachine of a zlogs) was refused; ZOS fails it when it gets to it (reference
    /// section 2.4). `resource` and the numbers are those of the dependency's first shortfall.
    Dependency {
        /// The refused workload.
        name: String,
        /// Its type.
        #[serde(rename = "type", serialize_with = "type_out", deserialize_with = "type_in")]
        kind: WorkloadType,
    },
}

impl Reason {
    /// True for [`Reason::Capacity`].
    pub fn is_capacity(&self) -> bool {
        matches!(self, Reason::Capacity)
    }
}

fn type_out<S: Serializer>(kind: &WorkloadType, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.as_str())
}

fn type_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WorkloadType, D::Error> {
    let name = String::deserialize(deserializer)?;
    WorkloadType::parse(&name).map_err(serde::de::Error::custom)
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
    /// What the refusal is about: the workload's own capacity (left out of JSON), or a refused dependency.
    #[serde(default, skip_serializing_if = "Reason::is_capacity")]
    pub reason: Reason,
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
