//! The capacity ledger: what a node has, what is held, and the one `admit` that every caller uses.
//!
//! Every decision costs the same whatever the number of reservations: counters are kept up to date
//! on admit and release, and the only lookup by workload is a hash-map access (no rescans, unlike
//! ZOS's `storage.Capacity()`; reference section 10).

use crate::demand::Demand;
use crate::pool::Pools;
use crate::verdict::{Assignment, Reason, Resource, Shortfall, Verdict};
use std::collections::{BTreeSet, HashMap};
use zos_types::reservation::DiskDemand;
use zos_types::scenario::{GpuSpec, NodeSpec, Policy, PoolKind, Preset};
use zos_types::workload::GpuRef;
use zos_types::{Capacity, ReservationRecord, Unit, Workload, WorkloadId};

/// ZOS's reserved memory: `max(total * 10 / 100, 2 GiB)` in integer math.
pub fn default_reserved_mru(total: Unit) -> Unit {
    Unit(total.0 / 10).max(Unit::gib(2))
}

/// What one workload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its ZOS capacity.
    pub capacity: Capacity,
    /// The pool (index) its disk was placed on, and the disk. `None` for workloads without a disk
    /// and for held workloads whose disk was already counted in the pool's `used`.
    pub disk: Option<(usize, DiskDemand)>,
    /// The disk of a held workload (one that already runs): it is inside some pool's `used` as storaged
    /// reports it, on a pool the ledger does not know. Re-admitting the workload keeps it there instead
    /// of placing it a second time (ZOS's self-exclusion; the disk managers find the disk and do nothing).
    /// Releasing the workload leaves the pools' `used` as they are.
    pub counted: Option<DiskDemand>,
    /// The public IPv4 address (index into the node's list).
    pub ip: Option<usize>,
    /// The GPUs (indices into the node's list).
    pub gpus: Vec<usize>,
}

/// A stored reservation names something this node does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// No pool of that name.
    #[error("reservation of {id} names pool '{name}', which this node does not have")]
    UnknownPool {
        /// The workload.
        id: WorkloadId,
        /// The pool.
        name: String,
    },
    /// The address is not on the node's list.
    #[error("reservation of {id} names public address '{address}', which is not on this node's list")]
    UnknownAddress {
        /// The workload.
        id: WorkloadId,
        /// The address.
        address: String,
    },
    /// No GPU of that id.
    #[error("reservation of {id} names GPU '{gpu}', which this node does not have")]
    UnknownGpu {
        /// The workload.
        id: WorkloadId,
        /// The GPU.
        gpu: String,
    },
}

/// Totals in ZOS's capacity shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// What the node has: threads, memory, SSD and HDD pool sizes, public IPv4 addresses.
    pub total: Capacity,
    /// What is kept for the system (memory).
    pub reserved: Capacity,
    /// What workloads hold; for disks, what the pools have reserved (including what was there before).
    /// Under `zos`, `ipv4u` may exceed the node's list: ip workloads admitted when no address was free
    /// count here but hold no address.
    pub used: Capacity,
    /// What can still be given: CPU after overcommit (strict), memory after `max(used + reserved, OS used)`.
    pub free: Capacity,
}

/// The ledger of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    policy: Policy,
    threads: u64,
    cpu_limit: u64,
    total_mru: Unit,
    reserved_mru: Unit,
    os_used_mru: Unit,
    used: Capacity,
    pools: Pools,
    ips: Vec<ipnet::Ipv4Net>,
    free_ips: BTreeSet<usize>,
    gpus: Vec<GpuSpec>,
    gpu_holders: Vec<Option<WorkloadId>>,
    reservations: HashMap<WorkloadId, Reservation>,
    /// How many reservations each deployment (twin, contract) holds: `deployments()` in O(1).
    deployments: HashMap<(u32, u64), u32>,
}

impl Ledger {
    /// An empty ledger for a node under a policy.
    pub fn new(node: &NodeSpec, policy: Policy) -> Ledger {
        // Float to integer `as` saturates; the policy guarantees a finite, positive overcommit.
        let cpu_limit = ((node.cru as f64) * policy.cpu_overcommit).floor() as u64;
        Ledger {
            policy,
            threads: node.cru,
            cpu_limit,
            total_mru: node.mru,
            reserved_mru: policy.reserved_mru.unwrap_or_else(|| default_reserved_mru(node.mru)),
            os_used_mru: node.os_used_mru,
            used: Capacity::default(),
            pools: Pools::new(&node.pools),
            ips: node.public_ips.clone(),
            free_ips: (0..node.public_ips.len()).collect(),
            gpus: node.gpus.clone(),
            gpu_holders: vec![None; node.gpus.len()],
            reservations: HashMap::new(),
            deployments: HashMap::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The pools.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// How many deployments hold capacity (at least one of their workloads), in O(1).
    pub fn deployments(&self) -> usize {
        self.deployments.len()
    }

    /// How many workloads hold capacity.
    pub fn len(&self) -> usize {
        self.reservations.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.reservations.is_empty()
    }

    /// The reservation of a workload.
    pub fn reservation(&self, id: &WorkloadId) -> Option<&Reservation> {
        self.reservations.get(id)
    }

    /// Every reservation.
    pub fn reservations(&self) -> impl Iterator<Item = (&WorkloadId, &Reservation)> {
        self.reservations.iter()
    }

    /// Who holds each GPU.
    pub fn gpu_holders(&self) -> impl Iterator<Item = (&GpuSpec, Option<&WorkloadId>)> {
        self.gpus.iter().zip(self.gpu_holders.iter().map(Option::as_ref))
    }

    /// The names behind a reservation's indices.
    pub fn assignment(&self, reservation: &Reservation) -> Assignment {
        Assignment {
            pool: reservation.disk.and_then(|(idx, _)| self.pools.get(idx)).map(|pool| pool.name.clone()),
            ip: reservation.ip.and_then(|idx| self.ips.get(idx)).map(|ip| ip.to_string()),
            gpus: reservation.gpus.iter().filter_map(|&idx| self.gpus.get(idx)).map(gpu_name).collect(),
        }
    }

    /// Admits `workload` as `id`, or rejects it with every shortfall. On admission the ledger holds it;
    /// on rejection nothing changes. A workload that already holds capacity under `id` is left out of
    /// the count while it is judged (ZOS's self-exclusion), so re-admitting it never counts it twice;
    /// it keeps its pool, address and GPUs where they still fit.
    pub fn admit(&mut self, id: &WorkloadId, workload: &Workload) -> Verdict {
        let demand = Demand::of(workload);
        let prior = self.reservations.remove(id);
        if let Some(prior) = &prior {
            self.unapply(id, prior);
        }
        match self.judge(id, &demand, prior.as_ref()) {
            Ok(reservation) => {
                let assignment = self.assignment(&reservation);
                self.apply(id, &reservation);
                self.reservations.insert(id.clone(), reservation);
                Verdict::Admit(assignment)
            }
            Err(shortfalls) => {
                if let Some(prior) = prior {
                    self.apply(id, &prior);
                    self.reservations.insert(id.clone(), prior);
                }
                Verdict::Reject(shortfalls)
            }
        }
    }

    /// Holds a workload that already runs, without judging it (an existing deployment in `ok` or
    /// `paused` state). Its disk is taken as already counted in the pools' `used` (and kept there when
    /// the workload is admitted again, see [`Reservation::counted`]). Its address is the one its result
    /// names when that address is on the node's list and free, else the first free one, else none.
    pub fn hold(&mut self, id: &WorkloadId, workload: &Workload) {
        self.release(id);
        let demand = Demand::of(workload);
        let ip = if demand.capacity.ipv4u > 0 {
            let named = result_ip(workload).and_then(|addr| {
                self.free_ips.iter().copied().find(|&idx| self.ips.get(idx).is_some_and(|ip| ip.addr() == addr))
            });
            named.or_else(|| self.free_ips.first().copied())
        } else {
            None
        };
        let gpus = if self.policy.preset == Preset::Strict {
            demand
                .gpus
                .iter()
                .filter_map(|gpu| gpu.as_ref().ok())
                .filter_map(|gpu| self.find_gpu(gpu))
                .filter(|&idx| self.gpu_holders.get(idx).is_some_and(Option::is_none))
                .collect()
        } else {
            Vec::new()
        };
        let reservation = Reservation { capacity: demand.capacity, disk: None, counted: demand.disk, ip, gpus };
        self.apply(id, &reservation);
        self.reservations.insert(id.clone(), reservation);
    }

    /// Restores a reservation exactly as it was granted (for a store that rebuilds the ledger at start).
    pub fn restore(&mut self, id: &WorkloadId, reservation: Reservation) {
        self.release(id);
        self.apply(id, &reservation);
        self.reservations.insert(id.clone(), reservation);
    }

    /// The reservation with names instead of indices, for a store to keep.
    pub fn record(&self, reservation: &Reservation) -> ReservationRecord {
        let assignment = self.assignment(reservation);
        ReservationRecord {
            capacity: reservation.capacity,
            disk: assignment.pool.zip(reservation.disk.map(|(_, disk)| disk)),
            ip: assignment.ip,
            gpus: assignment.gpus,
        }
    }

    /// Restores a stored reservation exactly as it was granted (a store rebuilding the ledger at start);
    /// nothing is held when a pool, address or GPU it names is not on this node.
    pub fn restore_record(&mut self, id: &WorkloadId, record: &ReservationRecord) -> Result<(), RestoreError> {
        let (reservation, mut missing) = self.resolve(id, record);
        if missing.is_empty() {
            self.restore(id, reservation);
            Ok(())
        } else {
            Err(missing.remove(0))
        }
    }

    /// Restores a stored reservation as far as this node still has what it names, and returns what it
    /// does not have. A running workload's CPU, memory, address and GPUs stay held even when its pool
    /// vanished or an address left the list: capacity a workload holds is never freed by a restart. A
    /// disk on a pool that is gone is not held (its space went with the pool); an address that left the
    /// list still counts in `ipv4u`, without an address; a GPU the node lost is left out.
    pub fn restore_partial(&mut self, id: &WorkloadId, record: &ReservationRecord) -> Vec<RestoreError> {
        let (reservation, missing) = self.resolve(id, record);
        self.restore(id, reservation);
        missing
    }

    /// A record's names as indices into this node's pools, addresses and GPUs, and what is missing.
    fn resolve(&self, id: &WorkloadId, record: &ReservationRecord) -> (Reservation, Vec<RestoreError>) {
        let mut missing = Vec::new();
        let mut capacity = record.capacity;
        let disk = record.disk.as_ref().and_then(|(name, disk)| match self.pools.position(name) {
            Some(idx) => Some((idx, *disk)),
            None => {
                missing.push(RestoreError::UnknownPool { id: id.clone(), name: name.clone() });
                capacity.sru = Unit::ZERO;
                capacity.hru = Unit::ZERO;
                None
            }
        });
        let ip = record.ip.as_ref().and_then(|address| {
            let found = self.ips.iter().position(|ip| ip.to_string() == *address);
            if found.is_none() {
                missing.push(RestoreError::UnknownAddress { id: id.clone(), address: address.clone() });
            }
            found
        });
        let gpus = record
            .gpus
            .iter()
            .filter_map(|gpu| {
                let found = self.gpus.iter().position(|spec| gpu_name(spec) == *gpu);
                if found.is_none() {
                    missing.push(RestoreError::UnknownGpu { id: id.clone(), gpu: gpu.clone() });
                }
                found
            })
            .collect();
        (Reservation { capacity, disk, counted: None, ip, gpus }, missing)
    }

    /// What the OS uses of the memory now (ZOS reads it for every decision): the memory rule is
    /// `used = max(reserved + workloads, OS used)`.
    pub fn set_os_used(&mut self, used: Unit) {
        self.os_used_mru = used;
    }

    /// Releases what `id` holds. Idempotent: releasing twice, or something never held, does nothing.
    pub fn release(&mut self, id: &WorkloadId) -> Option<Reservation> {
        let reservation = self.reservations.remove(id)?;
        self.unapply(id, &reservation);
        Some(reservation)
    }

    fn judge(
        &self,
        id: &WorkloadId,
        demand: &Demand,
        prior: Option<&Reservation>,
    ) -> Result<Reservation, Vec<Shortfall>> {
        let mut shortfalls = Vec::new();
        let capacity = demand.capacity;
        if let Some(short) = self.memory_shortfall(capacity.mru) {
            shortfalls.push(short);
        }
        if self.policy.preset == Preset::Strict
            && capacity.cru > 0
            && let Some(short) = self.cpu_shortfall(capacity.cru)
        {
            shortfalls.push(short);
        }
        // A held workload's disk is inside the pools' `used` already: it stays there unless it grew (a
        // grown disk is placed afresh, and the old one stays counted: conservative, the pool is unknown).
        let counted = prior
            .and_then(|prior| prior.counted)
            .zip(demand.disk)
            .filter(|(counted, disk)| counted.role == disk.role && disk.size <= counted.size)
            .map(|(counted, _)| counted);
        let disk = demand.disk.filter(|_| counted.is_none()).and_then(|disk| {
            let preferred = prior.and_then(|prior| prior.disk).map(|(idx, _)| idx);
            match self.pools.place(disk, preferred) {
                Some(idx) => Some((idx, disk)),
                None => {
                    shortfalls.push(self.pools.shortfall(disk));
                    None
                }
            }
        });
        let ip = if capacity.ipv4u > 0 {
            match self.pick_ip(prior.and_then(|prior| prior.ip)) {
                Ok(ip) => ip,
                Err(message) => {
                    shortfalls.push(self.ip_shortfall(message));
                    None
                }
            }
        } else {
            None
        };
        let gpus = if self.policy.preset == Preset::Strict {
            self.pick_gpus(id, &demand.gpus, &mut shortfalls)
        } else {
            Vec::new()
        };
        if shortfalls.is_empty() { Ok(Reservation { capacity, disk, counted, ip, gpus }) } else { Err(shortfalls) }
    }

    /// ZOS's memory rule: `used = max(workloads + reserved, OS used)`; reject iff `requested > total - used`.
    fn memory_shortfall(&self, requested: Unit) -> Option<Shortfall> {
        let used = self.used.mru.saturating_add(self.reserved_mru).max(self.os_used_mru);
        let available = self.total_mru.saturating_sub(used);
        (requested > available).then(|| Shortfall {
            resource: Resource::Mru,
            requested: requested.0,
            used: used.0,
            reserved: self.reserved_mru.0,
            total: self.total_mru.0,
            available: available.0,
            pools: Vec::new(),
            message: format!(
                "failed to satisfy required capacity: cannot fulfil required memory size {} bytes out of usable {} bytes",
                requested.0, available.0
            ),
            reason: Reason::Capacity,
        })
    }

    fn cpu_shortfall(&self, requested: u64) -> Option<Shortfall> {
        let available = self.cpu_limit.saturating_sub(self.used.cru);
        (requested > available).then(|| Shortfall {
            resource: Resource::Cru,
            requested,
            used: self.used.cru,
            reserved: 0,
            total: self.cpu_limit,
            available,
            pools: Vec::new(),
            message: format!(
                "not enough cpu: {requested} vCPU requested, {available} of {} available ({} threads x {} overcommit)",
                self.cpu_limit, self.threads, self.policy.cpu_overcommit
            ),
            reason: Reason::Capacity,
        })
    }

    /// The address for a workload that asks for a public IPv4: the one it had when still free, else the
    /// first free one. Under `zos` there is no check (ZOS takes addresses from the contract and the ip
    /// workload fails at run time when none is left): with no free address it is admitted without one.
    /// Under `strict` the node's list is the limit; the error is the refusal's message.
    fn pick_ip(&self, preferred: Option<usize>) -> Result<Option<usize>, String> {
        if let Some(idx) = preferred.filter(|idx| self.free_ips.contains(idx)) {
            return Ok(Some(idx));
        }
        match (self.free_ips.first(), self.policy.preset) {
            (Some(&idx), _) => Ok(Some(idx)),
            (None, Preset::Zos) => Ok(None),
            (None, Preset::Strict) if self.ips.is_empty() => Err("the node has no public IPv4 addresses".into()),
            (None, Preset::Strict) => Err(format!("no free public IPv4 address: all {} are in use", self.ips.len())),
        }
    }

    fn ip_shortfall(&self, message: String) -> Shortfall {
        let total = self.ips.len() as u64;
        Shortfall {
            resource: Resource::Ipv4u,
            requested: 1,
            used: total.saturating_sub(self.free_ips.len() as u64),
            reserved: 0,
            total,
            available: self.free_ips.len() as u64,
            pools: Vec::new(),
            message,
            reason: Reason::Capacity,
        }
    }

    fn find_gpu(&self, gpu: &GpuRef) -> Option<usize> {
        let same_hex = |a: &str, b: &str| {
            let strip = |s: &str| s.trim_start_matches("0x").to_ascii_lowercase();
            strip(a) == strip(b)
        };
        self.gpus.iter().position(|spec| {
            spec.id == gpu.slot && same_hex(&spec.vendor, &gpu.vendor) && same_hex(&spec.device, &gpu.device)
        })
    }

    fn pick_gpus(
        &self,
        id: &WorkloadId,
        wanted: &[Result<GpuRef, String>],
        shortfalls: &mut Vec<Shortfall>,
    ) -> Vec<usize> {
        let mut picked = Vec::new();
        for gpu in wanted {
            let outcome = match gpu {
                Err(message) => Err(message.clone()),
                Ok(gpu) => match self.find_gpu(gpu) {
                    None => Err(format!("unknown GPU id '{}/{}/{}'", gpu.slot, gpu.vendor, gpu.device)),
                    Some(idx) if picked.contains(&idx) => Err(format!("device '{}' is named twice", gpu.slot)),
                    Some(idx) => match self.gpu_holders.get(idx).and_then(Option::as_ref) {
                        Some(holder) if holder != id => {
                            Err(format!("device '{}' is already used by another workload ({holder})", gpu.slot))
                        }
                        _ => Ok(idx),
                    },
                },
            };
            match outcome {
                Ok(idx) => picked.push(idx),
                Err(message) => {
                    let total = self.gpus.len() as u64;
                    let free = self.gpu_holders.iter().filter(|holder| holder.is_none()).count() as u64;
                    shortfalls.push(Shortfall {
                        resource: Resource::Gpu,
                        requested: 1,
                        used: total.saturating_sub(free),
                        reserved: 0,
                        total,
                        available: free,
                        pools: Vec::new(),
                        message,
                        reason: Reason::Capacity,
                    });
                }
            }
        }
        picked
    }

    fn apply(&mut self, id: &WorkloadId, reservation: &Reservation) {
        if let Some((twin, contract, _)) = id.parts() {
            let held = self.deployments.entry((twin, contract)).or_insert(0);
            *held = held.saturating_add(1);
        }
        self.used = self.used.saturating_add(&reservation.capacity);
        if let Some((idx, disk)) = reservation.disk {
            self.pools.add(idx, disk);
        }
        if let Some(idx) = reservation.ip {
            self.free_ips.remove(&idx);
        }
        for &idx in &reservation.gpus {
            if let Some(holder) = self.gpu_holders.get_mut(idx) {
                *holder = Some(id.clone());
            }
        }
    }

    fn unapply(&mut self, id: &WorkloadId, reservation: &Reservation) {
        if let Some((twin, contract, _)) = id.parts()
            && let Some(held) = self.deployments.get_mut(&(twin, contract))
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.deployments.remove(&(twin, contract));
            }
        }
        self.used = self.used.saturating_sub(&reservation.capacity);
        if let Some((idx, disk)) = reservation.disk {
            self.pools.remove(idx, disk);
        }
        if let Some(idx) = reservation.ip {
            self.free_ips.insert(idx);
        }
        for &idx in &reservation.gpus {
            if let Some(holder) = self.gpu_holders.get_mut(idx)
                && holder.as_ref() == Some(id)
            {
                *holder = None;
            }
        }
    }

    /// A cheap necessary condition: could `demand` fit by the totals alone, under this policy's rules?
    /// (Disks are compared with the sum of free pool space, so `true` does not promise a pool fits.)
    pub fn may_fit(&self, demand: &Capacity) -> bool {
        let free = self.usage().free;
        let strict = self.policy.preset == Preset::Strict;
        demand.mru <= free.mru
            && demand.sru <= free.sru
            && demand.hru <= free.hru
            && (!strict || demand.cru <= free.cru)
            && (!strict || demand.ipv4u <= free.ipv4u)
    }

    /// What the node has, keeps, holds and can still give.
    pub fn usage(&self) -> Usage {
        let (ssd_total, ssd_used) = self.pools.totals(PoolKind::Ssd);
        let (hdd_total, hdd_used) = self.pools.totals(PoolKind::Hdd);
        let total = Capacity {
            cru: self.threads,
            mru: self.total_mru,
            sru: ssd_total,
            hru: hdd_total,
            ipv4u: self.ips.len() as u64,
        };
        let reserved = Capacity { mru: self.reserved_mru, ..Capacity::default() };
        let used =
            Capacity { cru: self.used.cru, mru: self.used.mru, sru: ssd_used, hru: hdd_used, ipv4u: self.used.ipv4u };
        let cpu_limit = if self.policy.preset == Preset::Strict { self.cpu_limit } else { self.threads };
        let mru_used = self.used.mru.saturating_add(self.reserved_mru).max(self.os_used_mru);
        let free = Capacity {
            cru: cpu_limit.saturating_sub(self.used.cru),
            mru: self.total_mru.saturating_sub(mru_used),
            sru: ssd_total.saturating_sub(ssd_used),
            hru: hdd_total.saturating_sub(hdd_used),
            ipv4u: self.free_ips.len() as u64,
        };
        Usage { total, reserved, used, free }
    }
}

fn gpu_name(gpu: &GpuSpec) -> String {
    format!("{}/{}/{}", gpu.id, gpu.vendor, gpu.device)
}

/// The IPv4 address an `ip`/`ipv4` workload's result names (`{"ip": "185.69.166.10/24"}`).
fn result_ip(workload: &Workload) -> Option<std::net::Ipv4Addr> {
    let text = workload.result.data.get("ip")?.as_str()?;
    let addr = text.split('/').next()?;
    addr.parse().ok()
}
