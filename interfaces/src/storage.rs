//! `storage@0.0.1`: storaged's module interface (ZOS `pkg/storage.go`), with ZOS's shapes (Go field
//! names on the wire).

use serde::{Deserialize, Serialize};

/// Size and reservation-based use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Size (quota, or device size for a pool or a device).
    #[serde(rename = "Size")]
    pub size: u64,
    /// What is reserved.
    #[serde(rename = "Used")]
    pub used: u64,
}

/// A volume (subvolume with a quota).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Path.
    #[serde(rename = "Path")]
    pub path: String,
    /// Usage.
    #[serde(rename = "Usage")]
    pub usage: Usage,
}

/// A virtual disk file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VDisk {
    /// Path of the file.
    #[serde(rename = "Path")]
    pub path: String,
    /// Size.
    #[serde(rename = "Size")]
    pub size: i64,
}

/// A zdb device: an HDD pool's `zdb` subvolume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Path of the `zdb` subvolume.
    #[serde(rename = "Path")]
    pub path: String,
    /// The pool's name.
    #[serde(rename = "ID")]
    pub id: String,
    /// The device's usage.
    #[serde(rename = "Usage")]
    pub usage: Usage,
}

/// A pool's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMetrics {
    /// Pool name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `ssd` or `hdd`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Device size.
    #[serde(rename = "Size")]
    pub size: u64,
    /// Reserved.
    #[serde(rename = "Used")]
    pub used: u64,
    /// The part of `Used` that belongs to no workload (the cache volume, foreign subvolumes): what the
    /// ledger adds to the reservations it holds, so that a workload's disk is never counted twice.
    /// Not in ZOS's shape (Go peers ignore it; a reply without it reads as 0).
    #[serde(rename = "System", default)]
    pub system: u64,
}

/// A pool that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenPool {
    /// Label.
    #[serde(rename = "Label")]
    pub label: String,
    /// Why.
    #[serde(rename = "Err")]
    pub err: String,
}

/// A device left alone (foreign data) or failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenDevice {
    /// Device path.
    #[serde(rename = "Path")]
    pub path: String,
    /// Why.
    #[serde(rename = "Err")]
    pub err: String,
}

zos_zbus::interface! {
    /// storaged's module interface (ZOS `pkg/storage.go`).
    pub trait StorageModule, client StorageClient, server StorageServer, object("storage", "0.0.1") {
        /// The `zos-cache` volume.
        "Cache" => fn cache() -> Volume;
        /// Total size of the pools of a kind (`ssd` or `hdd`), as of now.
        "Total" => fn total(kind: String) -> u64;
        /// Pools that could not be mounted or used.
        "BrokenPools" => fn broken_pools() -> Vec<BrokenPool>;
        /// Devices left alone or failing.
        "BrokenDevices" => fn broken_devices() -> Vec<BrokenDevice>;
        /// Creates a volume (idempotent by name: an existing one is returned as is).
        "VolumeCreate" => fn volume_create(name: String, size: u64) -> Volume;
        /// Creates a volume on the pool the ledger chose; refused (`not_found`, `not_enough_space`,
        /// `conflict`) rather than placed elsewhere.
        "VolumeCreateOn" => fn volume_create_on(name: String, size: u64, pool: String) -> Volume;
        /// Changes a volume's quota.
        "VolumeUpdate" => fn volume_update(name: String, size: u64) -> ();
        /// A volume by name.
        "VolumeLookup" => fn volume_lookup(name: String) -> Volume;
        /// Whether a volume exists.
        "VolumeExists" => fn volume_exists(name: String) -> bool;
        /// Deletes a volume (idempotent).
        "VolumeDelete" => fn volume_delete(name: String) -> ();
        /// Every volume.
        "VolumeList" => fn volume_list() -> Vec<Volume>;
        /// Creates a fully allocated NOCOW vdisk.
        "DiskCreate" => fn disk_create(name: String, size: u64) -> VDisk;
        /// Creates a vdisk on the pool the ledger chose; refused rather than placed elsewhere.
        "DiskCreateOn" => fn disk_create_on(name: String, size: u64, pool: String) -> VDisk;
        /// Grows a vdisk.
        "DiskResize" => fn disk_resize(name: String, size: u64) -> VDisk;
        /// Writes a raw image into an empty vdisk.
        "DiskWrite" => fn disk_write(name: String, image: String) -> ();
        /// Formats a vdisk with btrfs unless it is formatted already.
        "DiskFormat" => fn disk_format(name: String) -> ();
        /// A vdisk by name.
        "DiskLookup" => fn disk_lookup(name: String) -> VDisk;
        /// Whether a vdisk exists.
        "DiskExists" => fn disk_exists(name: String) -> bool;
        /// Deletes a vdisk (idempotent).
        "DiskDelete" => fn disk_delete(name: String) -> ();
        /// Every vdisk.
        "DiskList" => fn disk_list() -> Vec<VDisk>;
        /// zdb devices in use.
        "Devices" => fn devices() -> Vec<Device>;
        /// Takes a fresh HDD for a zdb container (one per disk).
        "DeviceAllocate" => fn device_allocate(min: u64) -> Device;
        /// Takes the HDD pool the ledger chose for a zdb container; refused rather than another one.
        "DeviceAllocateOn" => fn device_allocate_on(pool: String, min: u64) -> Device;
        /// A zdb device by pool name.
        "DeviceLookup" => fn device_lookup(name: String) -> Device;
        /// Gives a zdb device back: its container and data go, the HDD is free again (idempotent).
        "DeviceRelease" => fn device_release(name: String) -> ();
        /// Every pool's numbers.
        "Metrics" => fn metrics() -> Vec<PoolMetrics>;
    }
}
