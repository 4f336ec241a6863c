//! The node's storage: pools on whole disks, and the volumes, vdisks and zdb devices on them.
//! Placement is the planner's (`zos_planner::Pools`), so that what `zos-plan` predicts is what happens.

use crate::btrfs::{self, QGroup};
use crate::cache_volume::{CACHE_STEP, next_size};
use crate::command::run;
use crate::config::Config;
use crate::device;
use crate::{StorageError, validate_name};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zos_hardware::block::{self, Disk};
use zos_interfaces::storage::{BrokenDevice, BrokenPool, Device, PoolMetrics, Usage, VDisk, Volume};
use zos_planner::{DiskDemand, DiskRole, Pools};
use zos_types::Unit;
use zos_types::scenario::{PoolKind, PoolSpec};

/// Label prefix of the pools storaged creates; anything else is foreign.
pub const LABEL_PREFIX: &str = "zos-";
/// Subvolume holding the vdisk files.
pub const VDISKS: &str = "vdisks";
/// Subvolume of a zdb device.
pub const ZDB: &str = "zdb";
/// The cache volume.
pub const CACHE: &str = "zos-cache";
/// Where a pool keeps its kind.
const KIND_FILE: &str = ".zos-kind";
/// Where a zdb device keeps its reserved size.
const ZDB_SIZE_FILE: &str = ".zos-size";
/// Size of the tmpfs that stands in when the cache volume cannot be created.
pub const TMPFS_CACHE: &str = "500M";

/// A mounted pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Label (the pool's name).
    pub name: String,
    /// Device.
    pub device: PathBuf,
    /// SSD or HDD.
    pub kind: PoolKind,
    /// Device size.
    pub size: Unit,
    /// Mount point.
    pub mountpoint: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    pools: Vec<Pool>,
    broken_pools: Vec<BrokenPool>,
    broken_devices: Vec<BrokenDevice>,
}

/// storaged's state and operations. Every operation takes the module lock: calls are serialized.
#[derive(Debug)]
pub struct Storage {
    config: Config,
    state: Mutex<State>,
}

fn kind_name(kind: PoolKind) -> &'static str {
    kind.as_str()
}

impl Pool {
    fn subvolume(&self, name: &str) -> PathBuf {
        self.mountpoint.join(name)
    }

    /// Reservation-based use: a volume counts its quota (its files when unlimited), the `vdisks`
    /// subvolume its files' apparent sizes, a zdb device its reserved size.
    fn usage(&self, qgroups: &HashMap<String, QGroup>) -> Unit {
        self.usage_split(qgroups).0
    }

    /// What the pool holds (reservation-based), and the part of it that belongs to no workload: the
    /// cache volume and any subvolume not named like a workload. The vdisks and the zdb device are
    /// workloads' (the ledger holds them as reservations).
    fn usage_split(&self, qgroups: &HashMap<String, QGroup>) -> (Unit, Unit) {
        btrfs::subvolumes(&self.mountpoint).into_iter().fold((Unit::ZERO, Unit::ZERO), |(all, system), (name, path)| {
            let (used, workload) = match name.as_str() {
                VDISKS => (btrfs::files_size(&path), true),
                ZDB => (
                    std::fs::read_to_string(path.join(ZDB_SIZE_FILE))
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0),
                    true,
                ),
                _ => (
                    qgroups.get(&name).and_then(|q| q.max_referenced).unwrap_or_else(|| btrfs::files_size(&path)),
                    zos_types::WorkloadId::parse(&name).is_some(),
                ),
            };
            let system = if workload { system } else { system.saturating_add(Unit(used)) };
            (all.saturating_add(Unit(used)), system)
        })
    }

    fn has(&self, subvolume: &str) -> bool {
        btrfs::is_subvolume(&self.subvolume(subvolume))
    }
}

impl Storage {
    /// Discovers the disks, prepares and mounts a pool on each usable one, and leaves foreign ones alone.
    pub fn start(config: Config) -> Result<Storage, StorageError> {
        let storage = Storage { config, state: Mutex::new(State::default()) };
        storage.rescan()?;
        Ok(storage)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The devices to use: discovered, or the configured ones (a configured path that does not exist is
    /// reported as broken).
    fn disks(&self) -> (Vec<Disk>, Vec<BrokenDevice>) {
        if self.config.devices.is_empty() {
            return (block::discover(&self.config.root).disks, Vec::new());
        }
        let mut disks = Vec::new();
        let mut missing = Vec::new();
        for path in &self.config.devices {
            match device::configured(path) {
                Some(disk) => disks.push(disk),
                None => missing.push(BrokenDevice {
                    path: path.display().to_string(),
                    err: "configured device does not exist or cannot be read".into(),
                }),
            }
        }
        (disks, missing)
    }

    fn kind_of(&self, disk: &Disk, mountpoint: &Path) -> PoolKind {
        let override_kind =
            self.config.overrides.get(&disk.name).or_else(|| self.config.overrides.get(&*disk.path.to_string_lossy()));
        let persisted = std::fs::read_to_string(mountpoint.join(KIND_FILE)).ok().and_then(|text| match text.trim() {
            "ssd" => Some(PoolKind::Ssd),
            "hdd" => Some(PoolKind::Hdd),
            _ => None,
        });
        let kind = override_kind.copied().or(persisted).unwrap_or_else(|| {
            let probed = if self.config.seektime_probe { block::seek_probe(&disk.path, disk.size) } else { None };
            probed.unwrap_or(if disk.rotational { PoolKind::Hdd } else { PoolKind::Ssd })
        });
        if persisted != Some(kind) {
            let _ = std::fs::write(mountpoint.join(KIND_FILE), kind_name(kind));
        }
        kind
    }

    /// Re-reads the disks: a new blank disk becomes a pool, a vanished one leaves the totals.
    pub fn rescan(&self) -> Result<(), StorageError> {
        let mut pools = Vec::new();
        let mut broken_pools = Vec::new();
        let (disks, mut broken_devices) = self.disks();
        for disk in disks {
            let shown = disk.path.display().to_string();
            let label = match device::contents(&disk, LABEL_PREFIX) {
                device::Contents::Pool(label) => label,
                device::Contents::Blank => {
                    let label = format!("{LABEL_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                    if let Err(err) = btrfs::mkfs(&disk.path, &label) {
                        broken_devices.push(BrokenDevice { path: shown, err: err.to_string() });
                        continue;
                    }
                    tracing::info!(device = %disk.path.display(), label, "formatted a blank disk as a pool");
                    label
                }
                device::Contents::Foreign(what) => {
                    tracing::warn!(device = %disk.path.display(), "foreign disk left untouched: {what}");
                    broken_devices.push(BrokenDevice { path: shown, err: format!("foreign: {what}, left untouched") });
                    continue;
                }
                device::Contents::Broken(why) => {
                    tracing::warn!(device = %disk.path.display(), "disk not used, left untouched: {why}");
                    broken_devices.push(BrokenDevice { path: shown, err: format!("broken: {why}, left untouched") });
                    continue;
                }
            };
            let mountpoint = self.config.mount_root.join(&label);
            match btrfs::mount(&disk.path, &mountpoint) {
                Ok(()) => {
                    let kind = self.kind_of(&disk, &mountpoint);
                    pools.push(Pool { name: label, device: disk.path.clone(), kind, size: disk.size, mountpoint });
                }
                Err(err) => broken_pools.push(BrokenPool { label, err: err.to_string() }),
            }
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        let mut state = self.lock();
        for gone in state.pools.iter().filter(|old| !pools.iter().any(|pool| pool.name == old.name)) {
            tracing::warn!(pool = gone.name, device = %gone.device.display(), "pool vanished");
            let _ = btrfs::umount(&gone.mountpoint);
            broken_pools.push(BrokenPool {
                label: gone.name.clone(),
                err: format!("device {} vanished", gone.device.display()),
            });
        }
        for new in pools.iter().filter(|pool| !state.pools.iter().any(|old| old.name == pool.name)) {
            tracing::info!(pool = new.name, kind = kind_name(new.kind), size = new.size.0, "pool ready");
        }
        *state = State { pools, broken_pools, broken_devices };
        Ok(())
    }

    /// The pools.
    pub fn pools(&self) -> Vec<Pool> {
        self.lock().pools.clone()
    }

    /// The planner's view of the pools, with their reservation-based use.
    fn planner_pools(pools: &[Pool]) -> Result<Pools, StorageError> {
        let specs = pools
            .iter()
            .map(|pool| {
                let qgroups = btrfs::qgroups(&pool.mountpoint)?;
                Ok(PoolSpec {
                    name: pool.name.clone(),
                    kind: pool.kind,
                    size: pool.size,
                    used: pool.usage(&qgroups),
                    mounted: true,
                    vdisks: pool.has(VDISKS),
                    zdb: pool.has(ZDB),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(Pools::new(&specs))
    }

    /// The pool for a new disk: the one the caller names (the ledger's choice, which must then fit
    /// there), or else the one storaged's placement rules choose. One placement decision per disk: a
    /// named pool that cannot take it is refused, never silently replaced by another.
    fn place(pools: &[Pool], role: DiskRole, size: u64, named: Option<&str>) -> Result<Pool, StorageError> {
        let planned = Self::planner_pools(pools)?;
        let kind = zos_planner::kind_of(role);
        let demand = DiskDemand { role, size: Unit(size) };
        match named {
            None => planned.place(demand, None).and_then(|idx| pools.get(idx).cloned()),
            Some(name) => {
                let idx = pools
                    .iter()
                    .position(|pool| pool.name == name)
                    .ok_or_else(|| StorageError::NotFound(format!("pool '{name}'")))?;
                planned.place(demand, Some(idx)).filter(|placed| *placed == idx).and_then(|idx| pools.get(idx).cloned())
            }
        }
        .ok_or(StorageError::NotEnoughSpace(kind_name(kind)))
    }

    fn volume_of(pool: &Pool, name: &str) -> Result<Volume, StorageError> {
        let qgroups = btrfs::qgroups(&pool.mountpoint)?;
        let path = pool.subvolume(name);
        let group = qgroups.get(name).copied().unwrap_or_default();
        let size = group.max_referenced.unwrap_or(0);
        Ok(Volume {
            name: name.to_string(),
            path: path.display().to_string(),
            usage: Usage { size, used: if size > 0 { size } else { btrfs::files_size(&path) } },
        })
    }

    fn find_volume(pools: &[Pool], name: &str) -> Option<Pool> {
        pools.iter().find(|pool| btrfs::is_subvolume(&pool.subvolume(name))).cloned()
    }

    fn user_volume_name(name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        if name == VDISKS || name == CACHE || name.starts_with(ZDB) {
            return Err(StorageError::Invalid(format!("'{name}' is reserved")));
        }
        Ok(())
    }

    /// ZOS's `VolumeCreate`: an existing volume of that name is returned as is; otherwise a subvolume
    /// on the pool the placement rules choose, limited to `size` (0: unlimited).
    pub fn volume_create(&self, name: &str, size: u64) -> Result<Volume, StorageError> {
        self.create_volume(name, size, None)
    }

    /// `VolumeCreate` on the pool the ledger chose: honoured, or refused with a coded error
    /// (`not_found` for an unknown pool, `not_enough_space`, `conflict` when the volume exists on another
    /// pool).
    pub fn volume_create_on(&self, name: &str, size: u64, pool: &str) -> Result<Volume, StorageError> {
        self.create_volume(name, size, Some(pool))
    }

    fn create_volume(&self, name: &str, size: u64, named: Option<&str>) -> Result<Volume, StorageError> {
        Self::user_volume_name(name)?;
        let state = self.lock();
        if let Some(pool) = Self::find_volume(&state.pools, name) {
            if let Some(named) = named.filter(|named| *named != pool.name) {
                return Err(StorageError::Conflict(format!(
                    "volume '{name}' is on pool '{}', not '{named}'",
                    pool.name
                )));
            }
            return Self::volume_of(&pool, name);
        }
        let pool = Self::place(&state.pools, DiskRole::Volume, size, named)?;
        let path = pool.subvolume(name);
        btrfs::subvolume_create(&path)?;
        if let Err(err) = btrfs::qgroup_limit(&path, size) {
            let _ = btrfs::subvolume_delete(&path);
            return Err(err);
        }
        Self::volume_of(&pool, name)
    }

    /// Changes a volume's quota; never below what it already holds.
    pub fn volume_update(&self, name: &str, size: u64) -> Result<(), StorageError> {
        Self::user_volume_name(name)?;
        let state = self.lock();
        let pool =
            Self::find_volume(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("volume '{name}'")))?;
        let held = btrfs::qgroups(&pool.mountpoint)?.get(name).map_or(0, |q| q.referenced);
        if size != 0 && size < held {
            return Err(StorageError::Invalid(format!("volume '{name}' holds {held} bytes, more than {size}")));
        }
        btrfs::qgroup_limit(&pool.subvolume(name), size)
    }

    /// A volume by name.
    pub fn volume_lookup(&self, name: &str) -> Result<Volume, StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let pool =
            Self::find_volume(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("volume '{name}'")))?;
        Self::volume_of(&pool, name)
    }

    /// Deletes a volume; deleting one that does not exist is not an error.
    pub fn volume_delete(&self, name: &str) -> Result<(), StorageError> {
        Self::user_volume_name(name)?;
        let state = self.lock();
        match Self::find_volume(&state.pools, name) {
            Some(pool) => btrfs::subvolume_delete(&pool.subvolume(name)),
            None => Ok(()),
        }
    }

    /// Every user volume.
    pub fn volume_list(&self) -> Result<Vec<Volume>, StorageError> {
        let state = self.lock();
        let mut volumes = Vec::new();
        for pool in &state.pools {
            for (name, _) in btrfs::subvolumes(&pool.mountpoint) {
                if name != VDISKS && !name.starts_with(ZDB) {
                    volumes.push(Self::volume_of(pool, &name)?);
                }
            }
        }
        Ok(volumes)
    }

    fn find_disk(pools: &[Pool], name: &str) -> Option<PathBuf> {
        pools.iter().map(|pool| pool.subvolume(VDISKS).join(name)).find(|path| path.is_file())
    }

    fn vdisk(path: &Path) -> Result<VDisk, StorageError> {
        let size = std::fs::metadata(path)?.len();
        Ok(VDisk { path: path.display().to_string(), size: i64::try_from(size).unwrap_or(i64::MAX) })
    }

    /// Creates a vdisk: a NOCOW file, fully allocated, in a `vdisks` subvolume (pools that have one first).
    pub fn disk_create(&self, name: &str, size: u64) -> Result<VDisk, StorageError> {
        self.create_disk(name, size, None)
    }

    /// `DiskCreate` on the pool the ledger chose: honoured, or refused with a coded error.
    pub fn disk_create_on(&self, name: &str, size: u64, pool: &str) -> Result<VDisk, StorageError> {
        self.create_disk(name, size, Some(pool))
    }

    fn create_disk(&self, name: &str, size: u64, named: Option<&str>) -> Result<VDisk, StorageError> {
        validate_name(name)?;
        if size == 0 {
            return Err(StorageError::Invalid("invalid size".into()));
        }
        let state = self.lock();
        if Self::find_disk(&state.pools, name).is_some() {
            return Err(StorageError::Exists(format!("disk '{name}'")));
        }
        let pool = Self::place(&state.pools, DiskRole::Vdisk, size, named)?;
        let dir = pool.subvolume(VDISKS);
        if !btrfs::is_subvolume(&dir) {
            btrfs::subvolume_create(&dir)?;
        }
        let path = dir.join(name);
        let created = std::fs::File::create(&path)
            .map_err(StorageError::from)
            .and_then(|_| run("chattr", &["+C".as_ref(), path.as_os_str()]))
            .and_then(|_| run("fallocate", &["-l".as_ref(), size.to_string().as_ref(), path.as_os_str()]));
        if let Err(err) = created {
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        Self::vdisk(&path)
    }

    /// Grows a vdisk (never shrinks: "not safe to shrink a disk").
    pub fn disk_resize(&self, name: &str, size: u64) -> Result<VDisk, StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let path =
            Self::find_disk(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("disk '{name}'")))?;
        let current = std::fs::metadata(&path)?.len();
        if size < current {
            return Err(StorageError::Invalid("not safe to shrink a disk".into()));
        }
        let pool = state.pools.iter().find(|pool| path.starts_with(&pool.mountpoint)).cloned();
        if let Some(pool) = pool {
            let used = pool.usage(&btrfs::qgroups(&pool.mountpoint)?);
            if used.0.saturating_add(size - current) > pool.size.0 {
                return Err(StorageError::NotEnoughSpace(kind_name(pool.kind)));
            }
        }
        run("fallocate", &["-l".as_ref(), size.to_string().as_ref(), path.as_os_str()])?;
        Self::vdisk(&path)
    }

    /// Writes a raw image into a vdisk that holds nothing yet and is not smaller than the image.
    pub fn disk_write(&self, name: &str, image: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let path =
            Self::find_disk(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("disk '{name}'")))?;
        if device::signature(&path)?.is_some_and(|found| !found.is_blank()) {
            return Err(StorageError::Invalid(format!("disk '{name}' already holds data")));
        }
        let image = self.image_path(image)?;
        let image_size = std::fs::metadata(&image)?.len();
        if image_size > std::fs::metadata(&path)?.len() {
            return Err(StorageError::Invalid(format!("image {} is larger than disk '{name}'", image.display())));
        }
        let mut source = std::fs::File::open(&image)?;
        let mut target = std::fs::OpenOptions::new().write(true).open(&path)?;
        std::io::copy(&mut source, &mut target)?;
        target.sync_all()?;
        Ok(())
    }

    /// An image path `DiskWrite` may read: a regular file under one of the configured image
    /// directories, links resolved first (so `..` and symlinks cannot lead out).
    fn image_path(&self, image: &str) -> Result<PathBuf, StorageError> {
        let outside = || StorageError::Invalid(format!("image {image} is not a file under the image cache"));
        let resolved = std::fs::canonicalize(image).map_err(|_| outside())?;
        let inside = self
            .config
            .images
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| resolved.starts_with(root));
        if !inside || !resolved.is_file() {
            return Err(outside());
        }
        Ok(resolved)
    }

    /// Formats a vdisk with btrfs, unless it holds a filesystem already.
    pub fn disk_format(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let path =
            Self::find_disk(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("disk '{name}'")))?;
        if device::signature(&path)?.is_some_and(|found| !found.fs_type.is_empty()) {
            return Ok(());
        }
        run("mkfs.btrfs", &["-q".as_ref(), path.as_os_str()]).map(drop)
    }

    /// A vdisk by name.
    pub fn disk_lookup(&self, name: &str) -> Result<VDisk, StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let path =
            Self::find_disk(&state.pools, name).ok_or_else(|| StorageError::NotFound(format!("disk '{name}'")))?;
        Self::vdisk(&path)
    }

    /// Deletes a vdisk; deleting one that does not exist is not an error.
    pub fn disk_delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let state = self.lock();
        match Self::find_disk(&state.pools, name) {
            Some(path) => Ok(std::fs::remove_file(path)?),
            None => Ok(()),
        }
    }

    /// Every vdisk.
    pub fn disk_list(&self) -> Result<Vec<VDisk>, StorageError> {
        let state = self.lock();
        let mut disks = Vec::new();
        for pool in &state.pools {
            let Ok(dir) = std::fs::read_dir(pool.subvolume(VDISKS)) else { continue };
            for entry in dir.filter_map(Result::ok) {
                disks.push(Self::vdisk(&entry.path())?);
            }
        }
        disks.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(disks)
    }

    fn device_of(pool: &Pool) -> Device {
        let path = pool.subvolume(ZDB);
        let used =
            std::fs::read_to_string(path.join(ZDB_SIZE_FILE)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        Device { path: path.display().to_string(), id: pool.name.clone(), usage: Usage { size: pool.size.0, used } }
    }

    /// zdb devices: HDD pools with a `zdb` subvolume.
    pub fn devices(&self) -> Vec<Device> {
        let state = self.lock();
        state.pools.iter().filter(|pool| pool.kind == PoolKind::Hdd && pool.has(ZDB)).map(Self::device_of).collect()
    }

    /// ZOS's `DeviceAllocate`: a fresh HDD (no zdb container yet) that can take `min`.
    pub fn device_allocate(&self, min: u64) -> Result<Device, StorageError> {
        self.allocate_device(min, None)
    }

    /// `DeviceAllocate` on the HDD pool the ledger chose: honoured (it is an HDD without a zdb
    /// container and big enough), or refused with a coded error.
    pub fn device_allocate_on(&self, pool: &str, min: u64) -> Result<Device, StorageError> {
        self.allocate_device(min, Some(pool))
    }

    fn allocate_device(&self, min: u64, named: Option<&str>) -> Result<Device, StorageError> {
        let state = self.lock();
        let pool = match named {
            None => {
                let planned = Self::planner_pools(&state.pools)?;
                planned.fresh_zdb_device(Unit(min)).and_then(|idx| state.pools.get(idx).cloned())
            }
            Some(name) => {
                let pool = state
                    .pools
                    .iter()
                    .find(|pool| pool.name == name)
                    .ok_or_else(|| StorageError::NotFound(format!("pool '{name}'")))?;
                if pool.has(ZDB) {
                    return Err(StorageError::Conflict(format!("pool '{name}' already holds a zdb device")));
                }
                (pool.kind == PoolKind::Hdd && pool.size.0 >= min).then(|| pool.clone())
            }
        }
        .ok_or(StorageError::NotEnoughSpace("hdd"))?;
        let path = pool.subvolume(ZDB);
        btrfs::subvolume_create(&path)?;
        std::fs::write(path.join(ZDB_SIZE_FILE), min.to_string())?;
        Ok(Self::device_of(&pool))
    }

    /// A zdb device by pool name.
    pub fn device_lookup(&self, name: &str) -> Result<Device, StorageError> {
        validate_name(name)?;
        let state = self.lock();
        state
            .pools
            .iter()
            .find(|pool| pool.name == name && pool.has(ZDB))
            .map(Self::device_of)
            .ok_or_else(|| StorageError::NotFound(format!("device '{name}'")))
    }

    /// Gives a zdb device back: deletes the pool's `zdb` subvolume, so that the HDD is fresh for the next
    /// `DeviceAllocate`. Idempotent: a device that is not allocated is no error.
    pub fn device_release(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let state = self.lock();
        let Some(pool) = state.pools.iter().find(|pool| pool.name == name && pool.kind == PoolKind::Hdd) else {
            return Err(StorageError::NotFound(format!("device '{name}'")));
        };
        if pool.has(ZDB) {
            btrfs::subvolume_delete(&pool.subvolume(ZDB))?;
        }
        Ok(())
    }

    /// Total size of the pools of a kind, now (a rescan reflects disks that came or went).
    pub fn total(&self, kind: PoolKind) -> u64 {
        self.lock()
            .pools
            .iter()
            .filter(|pool| pool.kind == kind)
            .fold(0u64, |sum, pool| sum.saturating_add(pool.size.0))
    }

    /// Every pool's numbers.
    pub fn metrics(&self) -> Result<Vec<PoolMetrics>, StorageError> {
        let state = self.lock();
        state
            .pools
            .iter()
            .map(|pool| {
                let (used, system) = pool.usage_split(&btrfs::qgroups(&pool.mountpoint)?);
                Ok(PoolMetrics {
                    name: pool.name.clone(),
                    kind: kind_name(pool.kind).into(),
                    size: pool.size.0,
                    used: used.0,
                    system: system.0,
                })
            })
            .collect()
    }

    /// Pools that failed.
    pub fn broken_pools(&self) -> Vec<BrokenPool> {
        self.lock().broken_pools.clone()
    }

    /// Devices left alone or failing.
    pub fn broken_devices(&self) -> Vec<BrokenDevice> {
        self.lock().broken_devices.clone()
    }

    /// Creates (5 GiB) or finds the `zos-cache` volume and mounts it at the cache path. When it cannot,
    /// a small tmpfs stands in, and the error says so: the caller logs it loudly.
    pub fn ensure_cache(&self) -> Result<Volume, StorageError> {
        let volume = {
            let state = self.lock();
            match Self::find_volume(&state.pools, CACHE) {
                Some(pool) => Self::volume_of(&pool, CACHE),
                None => Self::place(&state.pools, DiskRole::Volume, CACHE_STEP.0, None).and_then(|pool| {
                    btrfs::subvolume_create(&pool.subvolume(CACHE))?;
                    btrfs::qgroup_limit(&pool.subvolume(CACHE), CACHE_STEP.0)?;
                    Self::volume_of(&pool, CACHE)
                }),
            }
        };
        let target = &self.config.cache_path;
        std::fs::create_dir_all(target)?;
        match volume {
            Ok(volume) => {
                if !btrfs::is_mountpoint(target) {
                    run("mount", &["--bind".as_ref(), volume.path.as_ref(), target.as_os_str()])?;
                }
                Ok(volume)
            }
            Err(err) => {
                if !btrfs::is_mountpoint(target) {
                    run(
                        "mount",
                        &[
                            "-t".as_ref(),
                            "tmpfs".as_ref(),
                            "-o".as_ref(),
                            format!("size={TMPFS_CACHE}").as_ref(),
                            "tmpfs".as_ref(),
                            target.as_os_str(),
                        ],
                    )?;
                }
                Err(err)
            }
        }
    }

    /// Applies the cache size policy (grow at 60%, shrink below 20%, 5 GiB steps and floor).
    pub fn resize_cache(&self) -> Result<Option<u64>, StorageError> {
        let state = self.lock();
        let Some(pool) = Self::find_volume(&state.pools, CACHE) else { return Ok(None) };
        let group = btrfs::qgroups(&pool.mountpoint)?.get(CACHE).copied().unwrap_or_default();
        let size = Unit(group.max_referenced.unwrap_or(0));
        match next_size(size, Unit(group.exclusive), CACHE_STEP) {
            Some(new) => {
                btrfs::qgroup_limit(&pool.subvolume(CACHE), new.0)?;
                Ok(Some(new.0))
            }
            None => Ok(None),
        }
    }

    /// The cache volume.
    pub fn cache(&self) -> Result<Volume, StorageError> {
        let state = self.lock();
        let pool =
            Self::find_volume(&state.pools, CACHE).ok_or_else(|| StorageError::NotFound("cache volume".into()))?;
        Self::volume_of(&pool, CACHE)
    }

    /// Unmounts the cache path and every pool (for a clean stop and for tests).
    pub fn unmount_all(&self) {
        let _ = btrfs::umount(&self.config.cache_path);
        for pool in self.lock().pools.iter() {
            let _ = btrfs::umount(&pool.mountpoint);
        }
    }
}
