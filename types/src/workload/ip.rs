//! `ip` (public IPv4 and/or IPv6) and the deprecated `ipv4`.

use crate::{Capacity, Challenge};
use serde::{Deserialize, Serialize};

/// Data of an `ip` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicIp {
    /// Take one of the public IPv4 addresses.
    pub v4: bool,
    /// Get an IPv6 address (free).
    pub v6: bool,
}

/// Data of the deprecated `ipv4` workload (always one IPv4 address).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicIpv4 {}

impl PublicIp {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.v4 && !self.v6 {
            return Err("public ip workload with no data".into());
        }
        Ok(())
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { ipv4u: u64::from(self.v4), ..Capacity::default() }
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(self.v4);
        c.put(self.v6);
    }
}

impl PublicIpv4 {
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { ipv4u: 1, ..Capacity::default() }
    }
}
