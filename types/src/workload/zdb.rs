//! `zdb`: a 0-db namespace, always on HDD.

use crate::{Capacity, Challenge, Unit};
use serde::{Deserialize, Serialize};

/// Data of a `zdb` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Zdb {
    /// Namespace size.
    pub size: Unit,
    /// `user` or `seq`.
    pub mode: String,
    /// Namespace password.
    pub password: String,
    /// Public namespace.
    pub public: bool,
}

impl Zdb {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size == Unit::ZERO {
            return Err("invalid size".into());
        }
        if self.mode != "user" && self.mode != "seq" {
            return Err("invalid mode".into());
        }
        Ok(())
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { hru: self.size, ..Capacity::default() }
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(self.size.0);
        c.put(&self.mode);
        c.put(&self.password);
        c.put(self.public);
    }
}
