//! Headroom: how many more of a shape fit, what binds first, and the largest single workload of each
//! type that still fits. Every answer comes from the ledger's own `admit`, on a copy.

use crate::ledger::Ledger;
use crate::verdict::{Shortfall, Verdict};
use serde::Serialize;
use zos_types::workload::{MachineCapacity, PublicIp, Qsfs, Volume, ZMachine, ZMount, Zdb};
use zos_types::{Unit, Workload, WorkloadData, WorkloadId, WorkloadResult};

/// A workload shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Shape {
    /// A VM: vCPUs, memory, root disk (0 for the minimum).
    Zmachine {
        /// vCPUs.
        cpu: u8,
        /// Memory.
        memory: Unit,
        /// Root disk.
        disk: Unit,
    },
    /// A virtual disk.
    Zmount {
        /// Size.
        size: Unit,
    },
    /// A subvolume.
    Volume {
        /// Size.
        size: Unit,
    },
    /// A zdb namespace.
    Zdb {
        /// Size.
        size: Unit,
    },
    /// A public IPv4 address.
    Ip,
    /// A quantum-safe filesystem: its local cache (SSD), with the 1 vCPU and 1 GiB ZOS counts for it.
    Qsfs {
        /// Cache size.
        cache: Unit,
    },
}

impl Shape {
    /// The shape as a workload.
    pub fn workload(&self) -> Workload {
        let data = match *self {
            Shape::Zmachine { cpu, memory, disk } => WorkloadData::ZMachine(ZMachine {
                size: disk,
                compute_capacity: MachineCapacity { cpu, memory },
                ..ZMachine::default()
            }),
            Shape::Zmount { size } => WorkloadData::ZMount(ZMount { size }),
            Shape::Volume { size } => WorkloadData::Volume(Volume { size }),
            Shape::Zdb { size } => WorkloadData::Zdb(Zdb { size, mode: "user".into(), ..Zdb::default() }),
            Shape::Ip => WorkloadData::Ip(PublicIp { v4: true, v6: false }),
            Shape::Qsfs { cache } => WorkloadData::Qsfs(Qsfs { cache, ..Qsfs::default() }),
        };
        Workload {
            version: 0,
            name: "probe".into(),
            data,
            metadata: String::new(),
            description: String::new(),
            result: WorkloadResult::default(),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Zmachine { cpu, memory, disk } if disk.bytes() == 0 => {
                write!(f, "zmachine ({cpu} vCPU, {memory}, minimum root disk)")
            }
            Shape::Zmachine { cpu, memory, disk } => write!(f, "zmachine ({cpu} vCPU, {memory}, {disk} root disk)"),
            Shape::Zmount { size } => write!(f, "zmount ({size})"),
            Shape::Volume { size } => write!(f, "volume ({size})"),
            Shape::Zdb { size } => write!(f, "zdb ({size})"),
            Shape::Ip => write!(f, "public IPv4 address"),
            Shape::Qsfs { cache } => write!(f, "qsfs ({cache} cache)"),
        }
    }
}

/// The largest single workload of each type that still fits (`None`: not even the smallest).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Largest {
    /// Memory of a 1-vCPU zmachine with the minimum root disk.
    pub zmachine_memory: Option<Unit>,
    /// vCPUs of a 250 MiB zmachine with the minimum root disk.
    pub zmachine_cpu: Option<u8>,
    /// A zmount.
    pub zmount: Option<Unit>,
    /// A volume.
    pub volume: Option<Unit>,
    /// A zdb namespace.
    pub zdb: Option<Unit>,
    /// Public IPv4 addresses of the node's list still free (admitted one by one; under `zos` an ip
    /// workload is admitted without an address too, and is not counted here). Written `ipv4u`, the
    /// name every other report gives public IPv4.
    #[serde(rename = "ipv4u")]
    pub ips: u64,
}

/// The headroom report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headroom {
    /// The shape asked about.
    pub shape: Shape,
    /// How many more fit.
    pub count: u64,
    /// True when counting stopped at the limit (there may be more).
    pub capped: bool,
    /// What refused the next one: the resources that bind first, with their numbers.
    pub binding: Vec<Shortfall>,
    /// Largest single workload of each type.
    pub largest: Largest,
}

fn probe_id(n: u64) -> WorkloadId {
    WorkloadId::new(u32::MAX, n, "probe")
}

fn fits(ledger: &mut Ledger, shape: Shape) -> bool {
    let id = probe_id(u64::MAX);
    let admitted = ledger.admit(&id, &shape.workload()).is_admit();
    ledger.release(&id);
    admitted
}

/// The largest `x` in `lo..=hi` for which `ok(x)` holds, assuming `ok` is monotone (true then false).
fn largest_fitting(lo: u64, hi: u64, mut ok: impl FnMut(u64) -> bool) -> Option<u64> {
    if lo > hi || !ok(lo) {
        return None;
    }
    let (mut good, mut bad) = (lo, hi.saturating_add(1));
    while bad.saturating_sub(good) > 1 {
        let mid = good.saturating_add(bad.saturating_sub(good) / 2);
        if ok(mid) { good = mid } else { bad = mid }
    }
    Some(good)
}

/// Counts how many more of `shape` fit (at most `limit`), then finds the largest of each type.
pub fn headroom(ledger: &Ledger, shape: Shape, limit: u64) -> Headroom {
    let mut probe = ledger.clone();
    let workload = shape.workload();
    let mut count = 0;
    let mut binding = Vec::new();
    while count < limit {
        match probe.admit(&probe_id(count), &workload) {
            Verdict::Admit(_) => count = count.saturating_add(1),
            Verdict::Reject(shortfalls) => {
                binding = shortfalls;
                break;
            }
        }
    }
    let mut probe = ledger.clone();
    let usage = probe.usage();
    let biggest_pool = probe.pools().iter().map(|pool| pool.size.bytes()).max().unwrap_or(0);
    let largest = Largest {
        zmachine_memory: largest_fitting(Unit::mib(250).bytes(), usage.total.mru.bytes(), |memory| {
            fits(&mut probe, Shape::Zmachine { cpu: 1, memory: Unit(memory), disk: Unit::ZERO })
        })
        .map(Unit),
        zmachine_cpu: largest_fitting(1, 255, |cpu| {
            fits(&mut probe, Shape::Zmachine { cpu: cpu as u8, memory: Unit::mib(250), disk: Unit::ZERO })
        })
        .map(|cpu| cpu as u8),
        zmount: largest_fitting(1, biggest_pool, |size| fits(&mut probe, Shape::Zmount { size: Unit(size) })).map(Unit),
        volume: largest_fitting(1, biggest_pool, |size| fits(&mut probe, Shape::Volume { size: Unit(size) })).map(Unit),
        zdb: largest_fitting(1, biggest_pool, |size| fits(&mut probe, Shape::Zdb { size: Unit(size) })).map(Unit),
        ips: {
            let mut ips = ledger.clone();
            (0..=usage.total.ipv4u)
                .take_while(|&n| {
                    matches!(ips.admit(&probe_id(n), &Shape::Ip.workload()), Verdict::Admit(granted) if granted.ip.is_some())
                })
                .count() as u64
        },
    };
    Headroom { shape, count, capped: count >= limit, binding, largest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use zos_types::scenario::{NodeSpec, Policy};

    fn node() -> NodeSpec {
        serde_json::from_value(json!({"cru": 8, "mru": 16u64 << 30,
            "pools": [{"name": "s", "kind": "ssd", "size": 100u64 << 30}, {"name": "h", "kind": "hdd", "size": 1u64 << 40}],
            "public_ips": ["203.0.113.1/24", "203.0.113.2/24"]}))
        .expect("node")
    }

    #[test]
    fn counts_until_the_binding_resource() {
        let ledger = Ledger::new(&node(), Policy::default());
        // 16 GiB - 2 GiB reserved = 14 GiB: seven 2 GiB VMs by memory, eight by CPU, fifty 2 GiB roots by disk.
        let report = headroom(&ledger, Shape::Zmachine { cpu: 1, memory: Unit::gib(2), disk: Unit::ZERO }, 1000);
        assert_eq!(report.count, 7);
        assert!(!report.capped);
        assert_eq!(report.binding.iter().map(|s| s.resource.as_str()).collect::<Vec<_>>(), ["mru"]);
        assert_eq!(report.largest.zmachine_memory, Some(Unit::gib(14)));
        assert_eq!(report.largest.zmachine_cpu, Some(8));
        assert_eq!(report.largest.zmount, Some(Unit::gib(100)));
        assert_eq!(report.largest.zdb, Some(Unit::TIB));
        assert_eq!(report.largest.ips, 2);
    }

    #[test]
    fn stops_at_the_limit() {
        let ledger = Ledger::new(&node(), Policy::default());
        let report = headroom(&ledger, Shape::Zdb { size: Unit::gib(1) }, 10);
        assert_eq!((report.count, report.capped), (10, true));
    }
}
