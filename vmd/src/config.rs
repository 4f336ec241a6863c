//! `vmd.toml`. Every key is optional; unknown keys are refused.

use crate::accel::{AccelMode, ProbeConfig};
use serde::Deserialize;
use std::path::PathBuf;

fn redis() -> String {
    "unix:///var/run/redis.sock".into()
}
fn workers() -> usize {
    2
}
fn state_dir() -> PathBuf {
    PathBuf::from("/var/cache/modules/vmd")
}
fn run_dir() -> PathBuf {
    PathBuf::from("/var/run/vmd")
}
fn qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}
fn virtiofsd() -> PathBuf {
    PathBuf::from("/usr/lib/qemu/virtiofsd")
}
fn monitor_secs() -> u64 {
    10
}
fn window() -> u64 {
    120
}
fn failures() -> u32 {
    4
}
fn port_base() -> u16 {
    20000
}
fn log_max() -> u64 {
    8 << 20
}
fn tail() -> usize {
    64 << 10
}
fn sys() -> PathBuf {
    PathBuf::from("/sys")
}

/// The daemon's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The zbus Redis.
    #[serde(default = "redis")]
    pub redis: String,
    /// zbus workers.
    #[serde(default = "workers")]
    pub workers: usize,
    /// Where the KVM probe's verdict is kept (survives reboots).
    #[serde(default = "state_dir")]
    pub state_dir: PathBuf,
    /// Where the machines' files live (a tmpfs on a node: machines do not survive a reboot).
    #[serde(default = "run_dir")]
    pub run_dir: PathBuf,
    /// `auto` (KVM only when the probe proves it), `kvm` or `tcg`.
    #[serde(default)]
    pub accel: AccelMode,
    /// The probe guest for `auto`; without one, `auto` means TCG.
    #[serde(default)]
    pub probe: Option<ProbeConfig>,
    /// The QEMU binary.
    #[serde(default = "qemu")]
    pub qemu: PathBuf,
    /// The virtiofsd binary (Debian 12 ships it in `qemu-system-common`).
    #[serde(default = "virtiofsd")]
    pub virtiofsd: PathBuf,
    /// TCG's translation buffer in MiB; QEMU's default (1 GiB) when absent.
    #[serde(default)]
    pub tcg_tb_size_mib: Option<u32>,
    /// How often the monitor looks at the machines, in seconds (ZOS: 10).
    #[serde(default = "monitor_secs")]
    pub monitor_secs: u64,
    /// The failure window in seconds (ZOS: 2 minutes).
    #[serde(default = "window")]
    pub restart_window_secs: u64,
    /// The death within the window on which the workload is decommissioned instead of restarted
    /// (ZOS: the 4th).
    #[serde(default = "failures")]
    pub failures_before_decommission: u32,
    /// The console's port is this plus the last octet of the VM's private address (ZOS: 20000).
    #[serde(default = "port_base")]
    pub console_port_base: u16,
    /// A machine's log is rotated (to `machine.log.1`) past this size (ZOS: 8 MiB).
    #[serde(default = "log_max")]
    pub log_max_bytes: u64,
    /// How much of the log's end `Logs` returns.
    #[serde(default = "tail")]
    pub logs_tail_bytes: usize,
    /// Where sysfs is (IOMMU groups, PCI devices, tap counters).
    #[serde(default = "sys")]
    pub sys_root: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config::parse("").unwrap_or_else(|_| unreachable!("the empty configuration is valid"))
    }
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
    fn defaults_are_zos_values_and_unknown_keys_are_refused() {
        let config = Config::default();
        assert_eq!(
            (config.monitor_secs, config.restart_window_secs, config.failures_before_decommission),
            (10, 120, 4)
        );
        assert_eq!((config.console_port_base, config.log_max_bytes), (20000, 8 << 20));
        assert_eq!(config.accel, AccelMode::Auto);
        let forced = Config::parse("accel = \"tcg\"\nrun_dir = \"/tmp/x\"\n").expect("valid");
        assert_eq!(forced.accel, AccelMode::Tcg);
        assert!(Config::parse("acel = \"tcg\"\n").is_err());
    }

    #[test]
    fn the_example_configuration_is_the_defaults() {
        let example = Config::parse(include_str!("../../etc/zos/vmd.toml")).expect("etc/zos/vmd.toml");
        let defaults = Config::default();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }
}
