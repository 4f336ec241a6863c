//! CPU threads, from `proc/cpuinfo`.

use crate::{HardwareError, sysfs};
use std::path::Path;

/// The number of logical CPUs (`processor` entries of `proc/cpuinfo`); at least one.
pub fn threads(root: &Path) -> Result<u64, HardwareError> {
    let path = root.join("proc/cpuinfo");
    let cpuinfo = sysfs::required(path.clone())?;
    let count = cpuinfo.lines().filter(|line| line.starts_with("processor")).count();
    match u64::try_from(count) {
        Ok(0) | Err(_) => Err(HardwareError::Malformed { path, what: "no processor entries" }),
        Ok(count) => Ok(count),
    }
}
