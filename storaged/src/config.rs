//! `storaged.toml`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use zos_types::scenario::PoolKind;

fn slash() -> PathBuf {
    PathBuf::from("/")
}
fn mnt() -> PathBuf {
    PathBuf::from("/mnt")
}
fn cache() -> PathBuf {
    PathBuf::from("/var/cache")
}
fn images() -> Vec<PathBuf> {
    vec![PathBuf::from("/var/cache/modules/flistd")]
}
fn redis() -> String {
    "unix:///var/run/redis.sock".into()
}
fn workers() -> usize {
    1
}
fn period() -> u64 {
    300
}
fn rescan() -> u64 {
    60
}

/// The daemon's configuration. Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of `/sys` for discovery (`/` on a node).
    #[serde(default = "slash")]
    pub root: PathBuf,
    /// Use exactly these devices instead of discovering them (loop devices in tests, a chosen set on a node).
    #[serde(default)]
    pub devices: Vec<PathBuf>,
    /// Where pools are mounted, one directory per pool label.
    #[serde(default = "mnt")]
    pub mount_root: PathBuf,
    /// Where the `zos-cache` volume is mounted.
    #[serde(default = "cache")]
    pub cache_path: PathBuf,
    /// The zbus Redis.
    #[serde(default = "redis")]
    pub redis: String,
    /// zbus workers.
    #[serde(default = "workers")]
    pub workers: usize,
    /// How often the cache volume is resized, in seconds.
    #[serde(default = "period")]
    pub cache_check_secs: u64,
    /// Classify disks without an override by a seek-time probe instead of the rotational flag.
    #[serde(default)]
    pub seektime_probe: bool,
    /// How often the disks are rescanned (a disk that appeared or vanished), in seconds.
    #[serde(default = "rescan")]
    pub rescan_secs: u64,
    /// The only directories `DiskWrite` reads images from (flistd's image cache on a node): a caller
    /// cannot make storaged copy any other host file into a vdisk.
    #[serde(default = "images")]
    pub images: Vec<PathBuf>,
    /// Operator overrides of disk kinds, by device name or path: `vdb = "hdd"`.
    #[serde(default)]
    pub overrides: BTreeMap<String, PoolKind>,
}

impl Config {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses_with_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/zos/storaged.toml")).expect("example");
        let config = Config::parse(&text).expect("parses");
        assert_eq!(config.cache_path, PathBuf::from("/var/cache"));
        assert_eq!(config.redis, "unix:///var/run/redis.sock");
        assert_eq!(config.rescan_secs, 60);
        assert!(Config::parse("cache_pth = \"/x\"").is_err(), "unknown keys are refused");
        assert_eq!(Config::parse("[overrides]\nvdb = \"hdd\"").expect("override").overrides["vdb"], PoolKind::Hdd);
    }
}
