//! The daemon's configuration (`flistd --config FILE`, TOML) and the layout of its directories.
//!
//! ```toml
//! redis = "unix:///var/run/redis.sock"
//! root = "/var/cache/modules/flistd"          # state/, log/, ro/ (the lower FUSE mounts of RW mounts)
//! cache = "/var/cache/modules/flistd"         # flist/<md5> and blocks/ (default: root)
//! mount_root = "/var/cache/modules/flistd/mountpoint"   # <mount_root>/<name> (default: root/mountpoint)
//! allow_dirs = ["/var/lib/hub"]               # dir:// routes followed only under these
//! storage_module = "storage"                  # storaged's zbus module, for RW volumes
//! workers = 4
//! mount_with = "auto"                         # fuse, unpack, or auto (FUSE when /dev/fuse opens)
//!
//! [download]
//! connect_timeout_secs = 10
//! read_timeout_secs = 20
//! retries = 5
//! backoff_ms = 500
//! max_bytes = 1073741824
//!
//! [evict]
//! max_age_days = 90
//! min_free_percent = 10
//! interval_secs = 3600
//! ```

use crate::hub::HubConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// flistd's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Redis that carries zbus: `unix:///path/redis.sock` or `redis://host:port`.
    pub redis: String,
    /// The daemon's own directory (ZOS: `/var/cache/modules/flistd`).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Where downloaded flists (`flist/<md5>`) and blocks (`blocks/`) are cached; `root` by default.
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Where named mounts appear (`<mount_root>/<name>`); `<root>/mountpoint` by default.
    #[serde(default)]
    pub mount_root: Option<PathBuf>,
    /// The only directories a `dir://` route of an flist may read (none by default).
    #[serde(default)]
    pub allow_dirs: Vec<PathBuf>,
    /// storaged's module name on zbus, for the volumes of read-write mounts.
    #[serde(default = "default_storage_module")]
    pub storage_module: String,
    /// zbus workers (concurrent calls).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How `.fl` files are downloaded.
    #[serde(default)]
    pub download: Download,
    /// When cached blocks are evicted.
    #[serde(default)]
    pub evict: Evict,
    /// How images are mounted.
    #[serde(default)]
    pub mount_with: MountWith,
}

/// How the daemon mounts an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountWith {
    /// FUSE when `/dev/fuse` can be opened, unpacking otherwise.
    #[default]
    Auto,
    /// FUSE, lazily: blocks fetched on first read.
    Fuse,
    /// The image unpacked once into a shared read-only tree (`trees/<md5>`, every block fetched and
    /// verified), bind-mounted read-only: for machines without FUSE.
    Unpack,
}

impl MountWith {
    /// Whether mounts use FUSE on this machine.
    pub fn fuse(self) -> bool {
        match self {
            MountWith::Fuse => true,
            MountWith::Unpack => false,
            MountWith::Auto => std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_ok(),
        }
    }
}

/// The block cache's eviction: blocks unused for `max_age_days` (ZOS: 90), and the least recently used
/// ones while the cache's filesystem has less than `min_free_percent` free, checked at start and every
/// `interval_secs`; a block of an image mounted now is never evicted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Evict {
    /// Days a block may go unused.
    pub max_age_days: u64,
    /// The share of the cache's filesystem kept free, in percent (0: no limit by space).
    pub min_free_percent: u8,
    /// Seconds between two evictions.
    pub interval_secs: u64,
}

impl Default for Evict {
    fn default() -> Evict {
        Evict { max_age_days: 90, min_free_percent: 10, interval_secs: 3600 }
    }
}

impl Evict {
    /// How long a block may go unused.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_days.saturating_mul(86_400))
    }

    /// The pause between two evictions (at least a second).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }
}

fn default_root() -> PathBuf {
    PathBuf::from("/var/cache/modules/flistd")
}

fn default_storage_module() -> String {
    "storage".into()
}

fn default_workers() -> usize {
    4
}

/// Timeouts, retries and limits of `.fl` downloads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Download {
    /// Longest wait for a connection.
    pub connect_timeout_secs: u64,
    /// Longest wait for any one read.
    pub read_timeout_secs: u64,
    /// Tries after the first.
    pub retries: u32,
    /// The first pause between tries (it doubles).
    pub backoff_ms: u64,
    /// The largest `.fl` accepted.
    pub max_bytes: u64,
}

impl Default for Download {
    fn default() -> Download {
        let hub = HubConfig::default();
        Download {
            connect_timeout_secs: hub.connect_timeout.as_secs(),
            read_timeout_secs: hub.read_timeout.as_secs(),
            retries: hub.retries,
            backoff_ms: u64::try_from(hub.backoff.as_millis()).unwrap_or(u64::MAX),
            max_bytes: hub.max_bytes,
        }
    }
}

impl Download {
    /// As the hub client takes it.
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs.max(1)),
            read_timeout: Duration::from_secs(self.read_timeout_secs.max(1)),
            retries: self.retries,
            backoff: Duration::from_millis(self.backoff_ms),
            max_bytes: self.max_bytes,
        }
    }
}

/// Where the daemon keeps what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Downloaded flists, `flist/<md5>`.
    pub flists: PathBuf,
    /// The block cache.
    pub blocks: PathBuf,
    /// Named mounts, `<mount_root>/<name>`.
    pub mount_root: PathBuf,
    /// The FUSE mounts under read-write overlays, `ro/<name>`.
    pub lower: PathBuf,
    /// One state file per mount, `state/<name>.json` (0700 directory, 0600 files).
    pub state: PathBuf,
    /// The mount processes' logs, `log/<name>.log`.
    pub logs: PathBuf,
    /// Images unpacked where FUSE is not used, shared by every mount of one flist: `trees/<md5>`.
    pub trees: PathBuf,
}

impl Config {
    /// The directories this configuration names.
    pub fn layout(&self) -> Layout {
        let cache = self.cache.clone().unwrap_or_else(|| self.root.clone());
        Layout {
            flists: cache.join("flist"),
            blocks: cache.join("blocks"),
            mount_root: self.mount_root.clone().unwrap_or_else(|| self.root.join("mountpoint")),
            lower: self.root.join("ro"),
            state: self.root.join("state"),
            logs: self.root.join("log"),
            trees: cache.join("trees"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_layout() {
        let config: Config = toml::from_str("redis = \"unix:///r.sock\"\nroot = \"/x\"\n").expect("config");
        let layout = config.layout();
        assert_eq!(layout.flists, PathBuf::from("/x/flist"));
        assert_eq!(layout.blocks, PathBuf::from("/x/blocks"));
        assert_eq!(layout.mount_root, PathBuf::from("/x/mountpoint"));
        assert_eq!(config.download.hub(), HubConfig::default());
        assert_eq!((config.storage_module.as_str(), config.workers), ("storage", 4));
        let err = toml::from_str::<Config>("redis = \"r\"\n[download]\nretry = 1\n").expect_err("typo");
        assert!(err.to_string().contains("retry"), "{err}");
    }

    #[test]
    fn the_example_configuration_is_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/zos/flistd.toml")).expect("example");
        let config: Config = toml::from_str(&text).expect("example parses");
        let defaults: Config = toml::from_str(&format!("redis = {:?}", config.redis)).expect("minimal");
        assert_eq!(config.layout(), defaults.layout());
        assert_eq!(
            (config.workers, &config.storage_module, &config.allow_dirs),
            (4, &defaults.storage_module, &vec![])
        );
        assert_eq!(config.download.hub(), defaults.download.hub());
        assert_eq!(config.evict, defaults.evict);
        assert_eq!(config.evict, Evict::default());
        assert_eq!((config.mount_with, defaults.mount_with), (MountWith::Auto, MountWith::Auto));
    }
}
