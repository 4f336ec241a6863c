//! The node the campaign attacks and the tenants that use it: a small node (so that refusals happen),
//! eight twins with their keys, their deployments, and modules that fail now and then.

use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use zos_provisiond::{Engine, Managers, TwinRegistry};
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, ReservationRecord, SigningKey, Workload, WorkloadId};

const GIB: u64 = 1 << 30;

/// How many twins deploy.
pub const TWINS: u32 = 8;

/// 16 threads, 32 GiB, one 256 GiB SSD pool, one 1 TiB HDD pool, four public addresses.
pub fn node() -> NodeSpec {
    serde_json::from_value(json!({"cru": 16, "mru": 32 * GIB,
        "pools": [{"name": "ssd0", "kind": "ssd", "size": 256 * GIB}, {"name": "hdd0", "kind": "hdd", "size": 1024 * GIB}],
        "public_ips": ["203.0.113.10/24", "203.0.113.11/24", "203.0.113.12/24", "203.0.113.13/24"]}))
    .unwrap_or_else(|err| unreachable!("the campaign's node is valid: {err}"))
}

/// The strict policy: CPU, memory, disks and addresses all checked.
pub fn policy() -> Policy {
    Policy::default()
}

/// The key of `twin`.
pub fn key(twin: u32) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&twin.to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_bytes(&seed)
}

/// Every twin's public key.
pub fn registry() -> TwinRegistry {
    TwinRegistry::from_keys((1..=TWINS).map(|twin| (twin, key(twin).verifying_key())))
}

/// An engine over a store in `dir`.
pub fn engine(dir: &std::path::Path) -> anyhow::Result<Engine<TwinRegistry>> {
    let store = zos_cache::Store::open(dir)?;
    Ok(Engine::open(store, &node(), policy(), registry())?)
}

/// A deployment of `twin`: a VM of 1 to 4 vCPUs and 1 to 4 GiB with a 1 to 40 GiB disk, one time in
/// four a zdb of up to 64 GiB, one time in eight a public address; signed.
pub fn deployment(twin: u32, contract: u64, rng: &mut fastrand::Rng) -> Deployment {
    let mut workloads = vec![
        json!({"name": "disk", "type": "zmount", "data": {"size": rng.u64(1..=40) * GIB}}),
        json!({"name": "vm", "type": "zmachine", "data": {
            "network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}], "public_ip": ""},
            "compute_capacity": {"cpu": rng.u8(1..=4), "memory": rng.u64(1..=4) * GIB},
            "mounts": [{"name": "disk", "mountpoint": "/data"}]}}),
    ];
    if rng.u8(0..4) == 0 {
        workloads.push(json!({"name": "db", "type": "zdb", "data": {"size": rng.u64(1..=64) * GIB, "mode": "seq"}}));
    }
    if rng.u8(0..8) == 0 {
        workloads.push(json!({"name": "ip", "type": "ip", "data": {"v4": true}}));
    }
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": twin, "contract_id": contract,
        "signature_requirement": {"requests": [{"twin_id": twin, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": workloads}))
    .unwrap_or_else(|err| unreachable!("the campaign's deployments are valid JSON: {err}"));
    dl.sign(twin, &key(twin));
    dl
}

/// The next version of a stored deployment, its disk resized to `gib` (a shrink is refused), signed.
pub fn resized(mut next: Deployment, gib: u64) -> Deployment {
    next.version = next.version.saturating_add(1);
    let twin = next.twin_id;
    if let Some(disk) = next.workloads.iter_mut().find(|wl| wl.name == "disk") {
        disk.version = next.version;
        disk.data = zos_types::WorkloadData::ZMount(zos_types::workload::ZMount { size: zos_types::Unit::gib(gib) });
    }
    next.signature_requirement.signatures.clear();
    next.sign(twin, &key(twin));
    next
}

/// Modules that provision and remove, failing one call in `one_in` (a refused workload releases what it
/// held; a failed delete keeps it).
pub struct Flaky {
    one_in: u64,
    calls: AtomicU64,
}

impl Flaky {
    /// Fails one call in `one_in` (0: never).
    pub fn new(one_in: u64) -> Flaky {
        Flaky { one_in, calls: AtomicU64::new(0) }
    }

    fn fails(&self) -> bool {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        self.one_in != 0 && call % self.one_in == self.one_in - 1
    }
}

impl Managers for Flaky {
    async fn provision(
        &self,
        id: &WorkloadId,
        _: &Workload,
        _: Option<&ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        if self.fails() { Err("campaign: the module refused".into()) } else { Ok(json!({"id": id.as_str()})) }
    }

    async fn deprovision(&self, _: &WorkloadId, _: &Workload) -> Result<(), String> {
        if self.fails() { Err("campaign: the module failed to delete".into()) } else { Ok(()) }
    }
}
