//! Memory, from `proc/meminfo`: the total and what the OS uses now (`MemTotal - MemAvailable`, as ZOS
//! reads it for every decision).

use crate::{HardwareError, sysfs};
use std::path::Path;
use zos_types::Unit;

/// The machine's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: Unit,
    /// `MemTotal - MemAvailable` (0 when `MemAvailable` is missing).
    pub os_used: Unit,
}

fn kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

impl Memory {
    /// Reads `proc/meminfo` under `root`.
    pub fn read(root: &Path) -> Result<Memory, HardwareError> {
        let path = root.join("proc/meminfo");
        let meminfo = sysfs::required(path.clone())?;
        let total = kib(&meminfo, "MemTotal").ok_or(HardwareError::Malformed { path, what: "no MemTotal" })?;
        let available = kib(&meminfo, "MemAvailable").unwrap_or(total);
        Ok(Memory {
            total: Unit(total.saturating_mul(1024)),
            os_used: Unit(total.saturating_sub(available).saturating_mul(1024)),
        })
    }
}
