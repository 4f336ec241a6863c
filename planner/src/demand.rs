//! What a workload asks of a node: counters, a disk of some role, an address, GPUs.

use zos_types::reservation::{DiskDemand, DiskRole};
use zos_types::workload::GpuRef;
use zos_types::{Capacity, Unit, Workload, WorkloadData};

/// Everything a workload needs from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    /// ZOS capacity of the workload (the per-type table).
    pub capacity: Capacity,
    /// Its disk, if any.
    pub disk: Option<DiskDemand>,
    /// GPUs it names (zmachine only); `Err` keeps a malformed id for the shortfall message.
    pub gpus: Vec<Result<GpuRef, String>>,
}

impl Demand {
    /// The demand of a workload.
    pub fn of(workload: &Workload) -> Demand {
        let capacity = workload.capacity();
        let (role, gpus) = match &workload.data {
            WorkloadData::ZMachine(machine) => {
                (Some(DiskRole::Volume), machine.gpu.iter().map(|gpu| GpuRef::parse(gpu)).collect())
            }
            WorkloadData::Volume(_) | WorkloadData::Qsfs(_) => (Some(DiskRole::Volume), Vec::new()),
            WorkloadData::ZMount(_) => (Some(DiskRole::Vdisk), Vec::new()),
            WorkloadData::Zdb(_) => (Some(DiskRole::Zdb), Vec::new()),
            _ => (None, Vec::new()),
        };
        let disk = role.and_then(|role| {
            let size = if role == DiskRole::Zdb { capacity.hru } else { capacity.sru };
            (size > Unit::ZERO).then_some(DiskDemand { role, size })
        });
        Demand { capacity, disk, gpus }
    }
}
