//! `flist@0.0.1`: flistd's module interface (ZOS `pkg/flist.go`, module `flist`), with ZOS's shapes
//! (Go field names on the wire).

use serde::{Deserialize, Serialize};

/// How an flist is mounted (ZOS `MountOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOptions {
    /// Read-only: the image itself. Otherwise an overlay whose writes land in a volume.
    #[serde(rename = "ReadOnly")]
    pub read_only: bool,
    /// The size of the read-write layer, in bytes (ZOS `gridtypes.Unit`); 0 is refused for a read-write
    /// mount that needs a new volume.
    #[serde(rename = "Limit")]
    pub limit: u64,
    /// The block store to use instead of the hub's (ZOS passes it to g8ufs for `.flist` images only; an
    /// rfs `.fl` names its own stores in its routes, and this is ignored for it).
    #[serde(rename = "Storage")]
    pub storage: String,
    /// For a read-write mount: the path of an existing volume to keep the writes in, instead of a new
    /// one named after the mount and deleted on `Unmount`.
    #[serde(rename = "PersistedVolume")]
    pub persisted_volume: String,
}

impl MountOptions {
    /// ZOS's `ReadOnlyMountOptions`.
    pub fn read_only() -> MountOptions {
        MountOptions { read_only: true, ..MountOptions::default() }
    }

    /// ZOS's `DefaultMountOptions`: read-write, a 256 MiB layer.
    pub fn read_write_default() -> MountOptions {
        MountOptions { read_only: false, limit: 256 << 20, ..MountOptions::default() }
    }
}

zos_zbus::interface! {
    /// flistd's module interface (ZOS `pkg/flist.go`, `Flister`).
    pub trait FlistModule, client FlistClient, server FlistServer, object("flist", "0.0.1") {
        /// Mounts the flist at `url` as `name` and returns the mount's path (an existing mount of that name
        /// is returned as is).
        "Mount" => fn mount(name: String, url: String, opt: MountOptions) -> String;
        /// Changes the size of a read-write mount's layer; returns the mount's path.
        "UpdateMountSize" => fn update_mount_size(name: String, limit: u64) -> String;
        /// Unmounts `name` and deletes its read-write volume (idempotent).
        "Unmount" => fn unmount(name: String) -> ();
        /// The md5 of the flist a mount runs (`name` may be the mount's path).
        "HashFromRootPath" => fn hash_from_root_path(name: String) -> String;
        /// The md5 the hub publishes for the flist at `url` (`<url>.md5`).
        "FlistHash" => fn flist_hash(url: String) -> String;
        /// Whether a mount of that name is live.
        "Exists" => fn exists(name: String) -> bool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_have_zos_field_names() {
        let encoded = serde_json::to_value(MountOptions::read_write_default()).expect("json");
        assert_eq!(
            encoded,
            serde_json::json!({"ReadOnly": false, "Limit": 268_435_456u64, "Storage": "", "PersistedVolume": ""})
        );
    }
}
