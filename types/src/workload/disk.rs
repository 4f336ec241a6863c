//! `zmount` (a virtual disk) and `volume` (a filesystem subvolume).

use crate::{Capacity, Challenge, Unit};
use serde::{Deserialize, Serialize};

/// Data of a `zmount` workload: a virtual disk attached to a zmachine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZMount {
    /// Disk size.
    pub size: Unit,
}

/// Data of a `volume` workload: a subvolume with a quota, shared into zmachines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    /// Quota.
    pub size: Unit,
}

fn validate_size(size: Unit) -> Result<(), String> {
    if size == Unit::ZERO {
        return Err("invalid size".into());
    }
    Ok(())
}

impl ZMount {
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_size(self.size)
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { sru: self.size, ..Capacity::default() }
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(self.size.0);
    }
}

impl Volume {
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_size(self.size)
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { sru: self.size, ..Capacity::default() }
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(self.size.0);
    }
}
