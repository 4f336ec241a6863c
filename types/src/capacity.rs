//! The five ZOS capacity units.

use crate::Unit;
use serde::{Deserialize, Serialize};

/// Capacity in ZOS's `gridtypes.Capacity` shape: `{"cru", "sru", "hru", "mru", "ipv4u"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacity {
    /// Logical CPUs (virtual cores).
    pub cru: u64,
    /// SSD storage.
    pub sru: Unit,
    /// HDD storage.
    pub hru: Unit,
    /// Memory.
    pub mru: Unit,
    /// Public IPv4 addresses.
    pub ipv4u: u64,
}

impl Capacity {
    /// True when every field is zero.
    pub fn is_zero(&self) -> bool {
        *self == Capacity::default()
    }

    /// Field-wise sum, saturating.
    pub fn saturating_add(&self, other: &Capacity) -> Capacity {
        Capacity {
            cru: self.cru.saturating_add(other.cru),
            sru: self.sru.saturating_add(other.sru),
            hru: self.hru.saturating_add(other.hru),
            mru: self.mru.saturating_add(other.mru),
            ipv4u: self.ipv4u.saturating_add(other.ipv4u),
        }
    }

    /// Field-wise difference, saturating at zero.
    pub fn saturating_sub(&self, other: &Capacity) -> Capacity {
        Capacity {
            cru: self.cru.saturating_sub(other.cru),
            sru: self.sru.saturating_sub(other.sru),
            hru: self.hru.saturating_sub(other.hru),
            mru: self.mru.saturating_sub(other.mru),
            ipv4u: self.ipv4u.saturating_sub(other.ipv4u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_are_zos_names() {
        let cap = Capacity { cru: 1, sru: Unit(2), hru: Unit(3), mru: Unit(4), ipv4u: 5 };
        let json = serde_json::to_value(cap).expect("serialize");
        assert_eq!(json, serde_json::json!({"cru": 1, "sru": 2, "hru": 3, "mru": 4, "ipv4u": 5}));
    }

    #[test]
    fn sub_saturates_per_field() {
        let a = Capacity { cru: 1, mru: Unit(10), ..Default::default() };
        let b = Capacity { cru: 2, mru: Unit(4), ..Default::default() };
        assert_eq!(a.saturating_sub(&b), Capacity { cru: 0, mru: Unit(6), ..Default::default() });
    }
}
