//! What the ledger granted a workload, in a form that names things (pool, address, GPUs) rather
//! than indices, so that a store can keep it and the ledger can be rebuilt exactly from it.

use crate::{Capacity, Unit};
use serde::{Deserialize, Serialize};

/// How storaged places a workload's disk (reference sections 3.4 and 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskRole {
    /// A subvolume on an SSD pool: `volume`, a zmachine's root filesystem, qsfs's cache.
    Volume,
    /// A vdisk file on an SSD pool, preferring pools that already hold vdisks: `zmount`.
    Vdisk,
    /// A zdb namespace on an HDD pool, one zdb container per disk: `zdb`.
    Zdb,
}

/// A disk need: its role and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDemand {
    /// How it is placed.
    pub role: DiskRole,
    /// Its size.
    pub size: Unit,
}

/// A granted reservation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReservationRecord {
    /// The workload's ZOS capacity.
    pub capacity: Capacity,
    /// The pool its disk was placed on, with the disk; `None` when it has no disk of its own in the
    /// ledger (no disk, or a disk that was already counted in the pool's `used`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<(String, DiskDemand)>,
    /// The public IPv4 address with prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// GPUs as `<slot>/<vendor>/<device>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
}
