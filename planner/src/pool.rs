//! Storage pools and storaged's placement rules (reference sections 3.4 and 3.6), as one
//! implementation that both the planner and storaged use.

use crate::verdict::{PoolPicture, Reason, Resource, Shortfall};
use std::cmp::Reverse;
use zos_types::Unit;
use zos_types::reservation::{DiskDemand, DiskRole};
use zos_types::scenario::{PoolKind, PoolSpec};

/// One pool and what the ledger has placed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// SSD or HDD.
    pub kind: PoolKind,
    /// Device size.
    pub size: Unit,
    /// Reserved on it, including what was there before the ledger started.
    pub used: Unit,
    initially_mounted: bool,
    initially_vdisks: bool,
    initially_zdb: bool,
    placed: u64,
    vdisks: u64,
    zdbs: u64,
}

impl Pool {
    /// A pool as a scenario describes it.
    pub fn new(spec: &PoolSpec) -> Pool {
        Pool {
            name: spec.name.clone(),
            kind: spec.kind,
            size: spec.size,
            used: spec.used,
            initially_mounted: spec.mounted,
            initially_vdisks: spec.vdisks,
            initially_zdb: spec.zdb,
            placed: 0,
            vdisks: 0,
            zdbs: 0,
        }
    }

    /// Mounted, or holding something the ledger placed (placing mounts a pool).
    pub fn mounted(&self) -> bool {
        self.initially_mounted || self.placed > 0
    }

    /// Holds a `vdisks` subvolume.
    pub fn has_vdisks(&self) -> bool {
        self.initially_vdisks || self.vdisks > 0
    }

    /// Holds a `zdb` subvolume.
    pub fn has_zdb(&self) -> bool {
        self.initially_zdb || self.zdbs > 0
    }

    /// Free space.
    pub fn free(&self) -> Unit {
        self.size.saturating_sub(self.used)
    }

    /// storaged's fit test with overprovision factor 1: `used + size <= total`.
    fn fits(&self, size: Unit) -> bool {
        self.used.checked_add(size).is_some_and(|after| after <= self.size)
    }

    fn picture(&self) -> PoolPicture {
        PoolPicture {
            name: self.name.clone(),
            size: self.size,
            used: self.used,
            free: self.free(),
            mounted: self.mounted(),
        }
    }
}

/// The pools of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pools(Vec<Pool>);

impl Pools {
    /// Pools from their specs, in the given order.
    pub fn new(specs: &[PoolSpec]) -> Pools {
        Pools(specs.iter().map(Pool::new).collect())
    }

    /// All pools.
    pub fn iter(&self) -> impl Iterator<Item = &Pool> {
        self.0.iter()
    }

    /// A pool by index.
    pub fn get(&self, idx: usize) -> Option<&Pool> {
        self.0.get(idx)
    }

    /// Index of a pool by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|pool| pool.name == name)
    }

    /// Where storaged would put `disk`, or `None` when nothing fits. A `preferred` pool (the one a
    /// re-admitted workload already sits on) is kept when it still fits.
    pub fn place(&self, disk: DiskDemand, preferred: Option<usize>) -> Option<usize> {
        if let Some(idx) = preferred
            && self.0.get(idx).is_some_and(|pool| pool.kind == kind_of(disk.role) && pool.fits(disk.size))
        {
            return Some(idx);
        }
        match disk.role {
            DiskRole::Volume | DiskRole::Vdisk => self.place_on_ssd(disk),
            DiskRole::Zdb => self.place_zdb(disk.size),
        }
    }

    /// `checkForCandidates` with the SSD policy: mounted pools first; unmounted pools only while no
    /// mounted one fits; candidates sorted by most free after allocation. A vdisk then prefers the
    /// first candidate that already has a `vdisks` subvolume.
    fn place_on_ssd(&self, disk: DiskDemand) -> Option<usize> {
        let mut order: Vec<usize> = (0..self.0.len()).filter(|&idx| self.0[idx].kind == PoolKind::Ssd).collect();
        order.sort_by_key(|&idx| !self.0[idx].mounted());
        let mut candidates = Vec::new();
        for idx in order {
            let pool = &self.0[idx];
            if !pool.mounted() {
                if !candidates.is_empty() {
                    break;
                }
                if disk.size > pool.size {
                    continue;
                }
            }
            if pool.fits(disk.size) {
                candidates.push(idx);
            }
        }
        candidates.sort_by_key(|&idx| Reverse(self.0[idx].free().saturating_sub(disk.size)));
        let with_vdisks = || candidates.iter().copied().find(|&idx| self.0[idx].has_vdisks());
        match disk.role {
            DiskRole::Vdisk => with_vdisks().or_else(|| candidates.first().copied()),
            _ => candidates.first().copied(),
        }
    }

    /// zdb: a disk that already runs a zdb container and has room (the one with most room left,
    /// where ZOS takes the first in random map order); else a fresh HDD, mounted ones first.
    fn place_zdb(&self, size: Unit) -> Option<usize> {
        let shared = (0..self.0.len())
            .filter(|&idx| self.0[idx].kind == PoolKind::Hdd && self.0[idx].has_zdb() && self.0[idx].fits(size))
            .max_by_key(|&idx| (self.0[idx].free(), Reverse(idx)));
        shared.or_else(|| self.fresh_zdb_device(size))
    }

    /// storaged's `DeviceAllocate`: the first HDD pool (mounted ones first) that has no zdb container yet
    /// and can take `size`: one zdb container per disk.
    pub fn fresh_zdb_device(&self, size: Unit) -> Option<usize> {
        let mut fresh: Vec<usize> = (0..self.0.len())
            .filter(|&idx| self.0[idx].kind == PoolKind::Hdd && !self.0[idx].has_zdb() && self.0[idx].fits(size))
            .collect();
        fresh.sort_by_key(|&idx| !self.0[idx].mounted());
        fresh.first().copied()
    }

    /// The shortfall for a disk that fits nowhere, with the picture of every pool of its kind.
    pub fn shortfall(&self, disk: DiskDemand) -> Shortfall {
        let kind = kind_of(disk.role);
        let resource = if kind == PoolKind::Ssd { Resource::Sru } else { Resource::Hru };
        let pools: Vec<&Pool> = self.0.iter().filter(|pool| pool.kind == kind).collect();
        let total = pools.iter().fold(Unit::ZERO, |sum, pool| sum.saturating_add(pool.size));
        let used = pools.iter().fold(Unit::ZERO, |sum, pool| sum.saturating_add(pool.used));
        let free_total = pools.iter().fold(Unit::ZERO, |sum, pool| sum.saturating_add(pool.free()));
        let largest = pools.iter().max_by_key(|pool| pool.free());
        let message = match largest {
            None => format!(
                "not enough space left in pools of this type {}: the node has no {} pool",
                kind.as_str(),
                kind.as_str()
            ),
            Some(largest) => format!(
                "not enough space left in pools of this type {kind}: {size} requested, no {kind} pool has that much free \
                 (largest free: {largest_free} on {name}; {free_total} free in total across {n} pools)",
                kind = kind.as_str(),
                size = disk.size,
                largest_free = largest.free(),
                name = largest.name,
                n = pools.len(),
            ),
        };
        Shortfall {
            resource,
            requested: disk.size.0,
            used: used.0,
            reserved: 0,
            total: total.0,
            available: largest.map_or(0, |pool| pool.free().0),
            pools: pools.iter().map(|pool| pool.picture()).collect(),
            message,
            reason: Reason::Capacity,
        }
    }

    /// Records a placement.
    pub fn add(&mut self, idx: usize, disk: DiskDemand) {
        self.account(idx, disk, u64::saturating_add);
    }

    /// Undoes a placement.
    pub fn remove(&mut self, idx: usize, disk: DiskDemand) {
        self.account(idx, disk, u64::saturating_sub);
    }

    /// Applies `op` (saturating add or sub) to the pool's usage and to its counters for the disk's role.
    fn account(&mut self, idx: usize, disk: DiskDemand, op: fn(u64, u64) -> u64) {
        if let Some(pool) = self.0.get_mut(idx) {
            pool.used = Unit(op(pool.used.0, disk.size.0));
            pool.placed = op(pool.placed, 1);
            match disk.role {
                DiskRole::Vdisk => pool.vdisks = op(pool.vdisks, 1),
                DiskRole::Zdb => pool.zdbs = op(pool.zdbs, 1),
                DiskRole::Volume => {}
            }
        }
    }

    /// Total size and used space of the pools of one kind.
    pub fn totals(&self, kind: PoolKind) -> (Unit, Unit) {
        self.0.iter().filter(|pool| pool.kind == kind).fold((Unit::ZERO, Unit::ZERO), |(size, used), pool| {
            (size.saturating_add(pool.size), used.saturating_add(pool.used))
        })
    }
}

/// The pool kind a disk role needs.
pub fn kind_of(role: DiskRole) -> PoolKind {
    match role {
        DiskRole::Volume | DiskRole::Vdisk => PoolKind::Ssd,
        DiskRole::Zdb => PoolKind::Hdd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: PoolKind, size: u64, used: u64) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            kind,
            size: Unit(size),
            used: Unit(used),
            mounted: true,
            vdisks: false,
            zdb: false,
        }
    }

    fn volume(size: u64) -> DiskDemand {
        DiskDemand { role: DiskRole::Volume, size: Unit(size) }
    }

    fn vdisk(size: u64) -> DiskDemand {
        DiskDemand { role: DiskRole::Vdisk, size: Unit(size) }
    }

    fn name(pools: &Pools, idx: Option<usize>) -> Option<&str> {
        idx.and_then(|idx| pools.get(idx)).map(|pool| pool.name.as_str())
    }

    // Upstream `TestCreateSubvol` / `TestCreateSubvolUnlimited` (storage_test.go).
    #[test]
    fn volume_goes_to_most_free_pool() {
        let pools = Pools::new(&[spec("pool-1", PoolKind::Ssd, 10000, 300), spec("pool-2", PoolKind::Ssd, 10000, 100)]);
        assert_eq!(name(&pools, pools.place(volume(500), None)), Some("pool-2"));
    }

    // Upstream `TestCreateSubvolNoSpaceLeft`.
    #[test]
    fn no_space_left_says_so() {
        let pools = Pools::new(&[spec("pool-1", PoolKind::Ssd, 10000, 300), spec("pool-2", PoolKind::Ssd, 10000, 100)]);
        assert_eq!(pools.place(volume(20000), None), None);
        assert!(pools.shortfall(volume(20000)).message.starts_with("not enough space left in pools of this type ssd"));
    }

    // Upstream `TestVDiskFindCandidatesHasEnoughSpace`.
    #[test]
    fn vdisk_prefers_pool_with_vdisks() {
        let mut with_vdisks = spec("pool-1", PoolKind::Ssd, 10000, 100);
        with_vdisks.vdisks = true;
        let pools = Pools::new(&[
            with_vdisks,
            spec("pool-2", PoolKind::Ssd, 10000, 100),
            spec("pool-3", PoolKind::Ssd, 100000, 0),
        ]);
        assert_eq!(name(&pools, pools.place(vdisk(1000), None)), Some("pool-1"));
    }

    // Upstream `TestVDiskFindCandidatesNoSpace`.
    #[test]
    fn vdisk_goes_where_it_fits() {
        let mut small = spec("pool-1", PoolKind::Ssd, 5000, 100);
        small.vdisks = true;
        let pools =
            Pools::new(&[small, spec("pool-2", PoolKind::Ssd, 5000, 100), spec("pool-3", PoolKind::Ssd, 100000, 0)]);
        assert_eq!(name(&pools, pools.place(vdisk(10000), None)), Some("pool-3"));
    }

    // Upstream `TestVDiskFindCandidatesOverProvision`.
    #[test]
    fn no_overprovisioning() {
        let pools = Pools::new(&[spec("pool-1", PoolKind::Ssd, 5000, 100)]);
        assert!(pools.place(vdisk(4000), None).is_some());
        assert!(pools.place(vdisk(5000), None).is_none());
    }

    // Derived placement cases of reference section 7.8.
    #[test]
    fn derived_placement_cases() {
        let pools = Pools::new(&[spec("A", PoolKind::Ssd, 1000, 900), spec("B", PoolKind::Ssd, 1000, 100)]);
        assert_eq!(name(&pools, pools.place(volume(200), None)), Some("B"));
        assert_eq!(pools.place(volume(950), None), None);
        assert_eq!(name(&pools, pools.place(volume(900), None)), Some("B"));
    }

    #[test]
    fn mounted_pools_first_unmounted_only_when_needed() {
        let mut unmounted = spec("cold", PoolKind::Ssd, 100000, 0);
        unmounted.mounted = false;
        let pools = Pools::new(&[unmounted, spec("warm", PoolKind::Ssd, 1000, 0)]);
        assert_eq!(name(&pools, pools.place(volume(500), None)), Some("warm"));
        assert_eq!(name(&pools, pools.place(volume(5000), None)), Some("cold"));
    }

    #[test]
    fn zdb_one_container_per_hdd() {
        let mut pools = Pools::new(&[
            spec("h1", PoolKind::Hdd, 1000, 0),
            spec("h2", PoolKind::Hdd, 1000, 0),
            spec("s", PoolKind::Ssd, 5000, 0),
        ]);
        let zdb = |size| DiskDemand { role: DiskRole::Zdb, size: Unit(size) };
        let first = pools.place(zdb(600), None).expect("fits");
        assert_eq!(name(&pools, Some(first)), Some("h1"));
        pools.add(first, zdb(600));
        // The h1 container has 400 left: a 300 namespace shares it, a 500 one takes a fresh disk.
        assert_eq!(name(&pools, pools.place(zdb(300), None)), Some("h1"));
        assert_eq!(name(&pools, pools.place(zdb(500), None)), Some("h2"));
        assert_eq!(pools.place(zdb(1001), None), None);
        let short = pools.shortfall(zdb(1001));
        assert_eq!(short.resource, Resource::Hru);
        assert_eq!(short.available, 1000);
        assert_eq!(short.pools.len(), 2);
    }
}
