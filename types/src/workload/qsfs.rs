//! `qsfs`: a quantum-safe filesystem; fixed 1 CPU and 1 GiB of memory plus its SSD cache.

use crate::text::HexBytes;
use crate::{Capacity, Challenge, Unit};
use serde::{Deserialize, Serialize};

/// A zdb backend of qsfs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZdbBackend {
    /// `host:port`.
    pub address: String,
    /// Namespace.
    pub namespace: String,
    /// Password.
    pub password: String,
}

/// A group of backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZdbGroup {
    /// Backends.
    pub backends: Vec<ZdbBackend>,
}

/// Encryption settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Encryption {
    /// Algorithm (`AES`).
    pub algorithm: String,
    /// Key, in hex.
    pub key: HexBytes,
}

/// Metadata store settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantumSafeMetaConfig {
    /// Key prefix.
    pub prefix: String,
    /// Encryption of the metadata.
    pub encryption: Encryption,
    /// Metadata backends.
    pub backends: Vec<ZdbBackend>,
}

/// Metadata store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantumSafeMeta {
    /// Store type (`zdb`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Store settings.
    pub config: QuantumSafeMetaConfig,
}

/// Compression settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Compression {
    /// Algorithm (`snappy`).
    pub algorithm: String,
}

/// qsfs configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantumSafeFsConfig {
    /// Shards needed to rebuild data.
    pub minimal_shards: u32,
    /// Shards written.
    pub expected_shards: u32,
    /// Groups that may be lost.
    pub redundant_groups: u32,
    /// Nodes per group that may be lost.
    pub redundant_nodes: u32,
    /// Largest zdb data directory.
    pub max_zdb_data_dir_size: u32,
    /// Data encryption.
    pub encryption: Encryption,
    /// Metadata store.
    pub meta: QuantumSafeMeta,
    /// Data backends.
    pub groups: Vec<ZdbGroup>,
    /// Compression.
    pub compression: Compression,
}

/// Data of a `qsfs` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qsfs {
    /// Local cache size (SSD).
    pub cache: Unit,
    /// Configuration.
    pub config: QuantumSafeFsConfig,
}

fn put_backend(c: &mut Challenge, backend: &ZdbBackend) {
    c.put(&backend.address);
    c.put(&backend.namespace);
    c.put(&backend.password);
}

impl Qsfs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.config.minimal_shards > self.config.expected_shards {
            return Err("minimal shards can't be greater than expected shards".into());
        }
        Ok(())
    }

    pub(crate) fn capacity(&self) -> Capacity {
        Capacity { cru: 1, mru: Unit::GIB, sru: self.cache, ..Capacity::default() }
    }

    pub(crate) fn challenge(&self, c: &mut Challenge) {
        let config = &self.config;
        c.put(self.cache.0);
        c.put(config.minimal_shards);
        c.put(config.expected_shards);
        c.put(config.redundant_groups);
        c.put(config.redundant_nodes);
        c.put(config.max_zdb_data_dir_size);
        c.put(&config.encryption.algorithm);
        c.put(&config.encryption.key);
        c.put(&config.meta.kind);
        c.put(&config.meta.config.prefix);
        c.put(&config.meta.config.encryption.algorithm);
        c.put(&config.meta.config.encryption.key);
        for backend in &config.meta.config.backends {
            put_backend(c, backend);
        }
        for group in &config.groups {
            for backend in &group.backends {
                put_backend(c, backend);
            }
        }
        c.put(&config.compression.algorithm);
    }
}
