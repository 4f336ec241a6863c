//! `storage@0.0.1` served by [`Storage`]: each call runs on a blocking-capable worker thread.

use crate::storage::Storage;
use zos_interfaces::storage::{BrokenDevice, BrokenPool, Device, PoolMetrics, StorageModule, VDisk, Volume};
use zos_types::scenario::PoolKind;
use zos_zbus::{RemoteError, code};

/// `Ok(false)` for a lookup that found nothing, the error for any other failure.
fn exists<T>(lookup: Result<T, RemoteError>) -> Result<bool, RemoteError> {
    match lookup {
        Ok(_) => Ok(true),
        Err(err) if err.code == code::NOT_FOUND => Ok(false),
        Err(err) => Err(err),
    }
}

fn blocking<T>(f: impl FnOnce() -> Result<T, crate::StorageError>) -> Result<T, RemoteError> {
    tokio::task::block_in_place(f).map_err(RemoteError::from)
}

impl StorageModule for Storage {
    async fn cache(&self) -> Result<Volume, RemoteError> {
        blocking(|| Storage::cache(self))
    }
    async fn total(&self, kind: String) -> Result<u64, RemoteError> {
        match kind.as_str() {
            "ssd" => Ok(Storage::total(self, PoolKind::Ssd)),
            "hdd" => Ok(Storage::total(self, PoolKind::Hdd)),
            other => Err(RemoteError::new(code::INVALID, format!("unknown device type '{other}' (ssd or hdd)"))),
        }
    }
    async fn broken_pools(&self) -> Result<Vec<BrokenPool>, RemoteError> {
        Ok(Storage::broken_pools(self))
    }
    async fn broken_devices(&self) -> Result<Vec<BrokenDevice>, RemoteError> {
        Ok(Storage::broken_devices(self))
    }
    async fn volume_create(&self, name: String, size: u64) -> Result<Volume, RemoteError> {
        blocking(|| Storage::volume_create(self, &name, size))
    }
    async fn volume_update(&self, name: String, size: u64) -> Result<(), RemoteError> {
        blocking(|| Storage::volume_update(self, &name, size))
    }
    async fn volume_lookup(&self, name: String) -> Result<Volume, RemoteError> {
        blocking(|| Storage::volume_lookup(self, &name))
    }
    async fn volume_exists(&self, name: String) -> Result<bool, RemoteError> {
        exists(blocking(|| Storage::volume_lookup(self, &name)))
    }
    async fn volume_delete(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Storage::volume_delete(self, &name))
    }
    async fn volume_list(&self) -> Result<Vec<Volume>, RemoteError> {
        blocking(|| Storage::volume_list(self))
    }
    async fn disk_create(&self, name: String, size: u64) -> Result<VDisk, RemoteError> {
        blocking(|| Storage::disk_create(self, &name, size))
    }
    async fn disk_resize(&self, name: String, size: u64) -> Result<VDisk, RemoteError> {
        blocking(|| Storage::disk_resize(self, &name, size))
    }
    async fn disk_write(&self, name: String, image: String) -> Result<(), RemoteError> {
        blocking(|| Storage::disk_write(self, &name, &image))
    }
    async fn disk_format(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Storage::disk_format(self, &name))
    }
    async fn disk_lookup(&self, name: String) -> Result<VDisk, RemoteError> {
        blocking(|| Storage::disk_lookup(self, &name))
    }
    async fn disk_exists(&self, name: String) -> Result<bool, RemoteError> {
        exists(blocking(|| Storage::disk_lookup(self, &name)))
    }
    async fn disk_delete(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Storage::disk_delete(self, &name))
    }
    async fn disk_list(&self) -> Result<Vec<VDisk>, RemoteError> {
        blocking(|| Storage::disk_list(self))
    }
    async fn devices(&self) -> Result<Vec<Device>, RemoteError> {
        blocking(|| Ok(Storage::devices(self)))
    }
    async fn device_allocate(&self, min: u64) -> Result<Device, RemoteError> {
        blocking(|| Storage::device_allocate(self, min))
    }
    async fn volume_create_on(&self, name: String, size: u64, pool: String) -> Result<Volume, RemoteError> {
        blocking(|| Storage::volume_create_on(self, &name, size, &pool))
    }

    async fn disk_create_on(&self, name: String, size: u64, pool: String) -> Result<VDisk, RemoteError> {
        blocking(|| Storage::disk_create_on(self, &name, size, &pool))
    }

    async fn device_allocate_on(&self, pool: String, min: u64) -> Result<Device, RemoteError> {
        blocking(|| Storage::device_allocate_on(self, &pool, min))
    }

    async fn device_release(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| Storage::device_release(self, &name))
    }

    async fn device_lookup(&self, name: String) -> Result<Device, RemoteError> {
        blocking(|| Storage::device_lookup(self, &name))
    }
    async fn metrics(&self) -> Result<Vec<PoolMetrics>, RemoteError> {
        blocking(|| Storage::metrics(self))
    }
}
