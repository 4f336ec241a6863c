//! Workload names and the identifiers derived from them (ZOS `gridtypes/id.go`).

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest workload name: virtio-fs tags, which carry it, are limited to 36 bytes.
pub const MAX_NAME_LEN: usize = 36;

/// Names no workload may take.
const RESERVED_NAMES: &[&str] = &["ygg"];

/// Checks a workload name with ZOS's rules and messages:
/// 1 to 36 characters of `[a-zA-Z0-9_]`, and not a reserved name.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name cannot exceed 36 characters".into());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("unsupported character in workload name".into());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("invalid name '{name}' is reserved"));
    }
    Ok(())
}

/// The global id of a workload: `<twin>-<contract>-<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkloadId(String);

impl WorkloadId {
    /// Builds the id of workload `name` in contract `contract` of twin `twin`.
    /// Like ZOS's `NewUncheckedWorkloadID`, it does not validate the name.
    pub fn new(twin: u32, contract: u64, name: &str) -> WorkloadId {
        WorkloadId(format!("{twin}-{contract}-{name}"))
    }

    /// Parses `<twin>-<contract>-<name>`.
    pub fn parse(text: &str) -> Option<WorkloadId> {
        let id = WorkloadId(text.to_string());
        id.parts().is_some().then_some(id)
    }

    /// Splits the id back into `(twin, contract, name)`.
    pub fn parts(&self) -> Option<(u32, u64, &str)> {
        let mut it = self.0.splitn(3, '-');
        let twin = it.next()?.parse().ok()?;
        let contract = it.next()?.parse().ok()?;
        let name = it.next()?;
        Some((twin, contract, name))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short name unique to this workload and `n`: the first 13 characters of
    /// base58(md5("<id>:<n>")), short enough for a Linux interface name with a 2-byte prefix.
    pub fn unique(&self, n: &str) -> String {
        short_hash(&format!("{}:{n}", self.0))
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a private network: first 13 characters of base58(md5("<twin>:<name>")).
pub fn network_id(twin: u32, network: &str) -> String {
    short_hash(&format!("{twin}:{network}"))
}

fn short_hash(input: &str) -> String {
    let digest = Md5::digest(input.as_bytes());
    let mut encoded = bs58::encode(digest).into_string();
    encoded.truncate(13);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_id_is_twin_contract_name() {
        let id = WorkloadId::new(1, 10, "vm1");
        assert_eq!(id.as_str(), "1-10-vm1");
        assert_eq!(id.parts(), Some((1, 10, "vm1")));
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("vm_1").is_ok());
        assert_eq!(validate_name(""), Err("name cannot be empty".to_string()));
        assert_eq!(validate_name(&"a".repeat(37)), Err("name cannot exceed 36 characters".to_string()));
        assert!(validate_name(&"a".repeat(36)).is_ok());
        assert_eq!(validate_name("a-b"), Err("unsupported character in workload name".to_string()));
        assert_eq!(validate_name("ygg"), Err("invalid name 'ygg' is reserved".to_string()));
    }

    #[test]
    fn unique_and_network_id_are_13_base58_chars() {
        let id = WorkloadId::new(1, 10, "vm1");
        let unique = id.unique("net");
        assert_eq!(unique.len(), 13);
        assert_eq!(unique, id.unique("net"));
        assert_ne!(unique, id.unique("ygg"));
        assert_eq!(network_id(1, "net").len(), 13);
    }
}
