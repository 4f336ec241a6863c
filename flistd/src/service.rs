//! `flist@0.0.1` served by [`Mounts`] (each call on a blocking-capable worker thread), and storaged's
//! volumes over zbus as the [`Volumes`] of read-write mounts.

use crate::FlistError;
use crate::mounts::{Mounts, Volumes};
use std::path::PathBuf;
use std::sync::Arc;
use zos_interfaces::flist::{FlistModule, MountOptions};
use zos_interfaces::storage::StorageClient;
use zos_zbus::{RemoteError, code};

/// The error as the bus carries it, with a code a caller can act on.
fn remote(err: FlistError) -> RemoteError {
    let code = match &err {
        FlistError::InvalidName(_)
        | FlistError::MissingDiskType
        | FlistError::Extension(_)
        | FlistError::Md5Mismatch { .. }
        | FlistError::NotAnFlist { .. }
        | FlistError::Unsafe(_)
        | FlistError::HashInvalidLen
        | FlistError::Store { .. } => code::INVALID,
        FlistError::NotMounted(_) | FlistError::HashNotSupported | FlistError::Http { status: 404, .. } => {
            code::NOT_FOUND
        }
        FlistError::HubDown { .. } => code::UNAVAILABLE,
        FlistError::TooLarge { .. } => code::TOO_LARGE,
        FlistError::Volume { source, .. } => source.code().unwrap_or(code::INTERNAL),
        _ => code::INTERNAL,
    };
    RemoteError::new(code, err.to_string())
}

fn blocking<T>(f: impl FnOnce() -> Result<T, FlistError>) -> Result<T, RemoteError> {
    tokio::task::block_in_place(f).map_err(remote)
}

/// flistd's zbus object.
pub struct Flistd(pub Arc<Mounts>);

impl FlistModule for Flistd {
    async fn mount(&self, name: String, url: String, opt: MountOptions) -> Result<String, RemoteError> {
        blocking(|| self.0.mount(&name, &url, &opt)).map(|path| path.display().to_string())
    }
    async fn update_mount_size(&self, name: String, limit: u64) -> Result<String, RemoteError> {
        blocking(|| self.0.update_mount_size(&name, limit)).map(|path| path.display().to_string())
    }
    async fn unmount(&self, name: String) -> Result<(), RemoteError> {
        blocking(|| self.0.unmount(&name))
    }
    async fn hash_from_root_path(&self, name: String) -> Result<String, RemoteError> {
        blocking(|| self.0.hash_from_root_path(&name))
    }
    async fn flist_hash(&self, url: String) -> Result<String, RemoteError> {
        blocking(|| self.0.hub().flist_hash(&url))
    }
    async fn exists(&self, name: String) -> Result<bool, RemoteError> {
        blocking(|| self.0.exists(&name))
    }
}

/// storaged's volumes (`storage@0.0.1`: `VolumeLookup`, `VolumeCreate`, `VolumeUpdate`,
/// `VolumeDelete`), called from the blocking mount code on the daemon's runtime.
pub struct StorageVolumes {
    client: StorageClient,
    runtime: tokio::runtime::Handle,
}

impl StorageVolumes {
    /// Volumes through `client`, its calls run on `runtime`.
    pub fn new(client: StorageClient, runtime: tokio::runtime::Handle) -> StorageVolumes {
        StorageVolumes { client, runtime }
    }
}

impl Volumes for StorageVolumes {
    fn lookup(&self, name: &str) -> Result<Option<PathBuf>, FlistError> {
        match self.runtime.block_on(self.client.volume_lookup(name.to_string())) {
            Ok(volume) => Ok(Some(PathBuf::from(volume.path))),
            Err(err) if err.code() == Some(code::NOT_FOUND) => Ok(None),
            Err(source) => Err(FlistError::Volume { name: name.to_string(), source }),
        }
    }

    fn create(&self, name: &str, size: u64) -> Result<PathBuf, FlistError> {
        self.runtime
            .block_on(self.client.volume_create(name.to_string(), size))
            .map(|volume| PathBuf::from(volume.path))
            .map_err(|source| FlistError::Volume { name: name.to_string(), source })
    }

    fn update(&self, name: &str, size: u64) -> Result<(), FlistError> {
        self.runtime
            .block_on(self.client.volume_update(name.to_string(), size))
            .map_err(|source| FlistError::Volume { name: name.to_string(), source })
    }

    fn delete(&self, name: &str) -> Result<(), FlistError> {
        self.runtime
            .block_on(self.client.volume_delete(name.to_string()))
            .map_err(|source| FlistError::Volume { name: name.to_string(), source })
    }
}
