//! Hardware discovery from `/proc` and `/sys` under a root directory (`/`, or a snapshot such as
//! `../shared/fixtures/hardware/h100-node`). storaged and networkd will own this reading when they
//! land; until then `zos-plan` reads the same files itself.

use anyhow::{Context, anyhow};
use std::path::{Path, PathBuf};
use zos_types::Unit;
use zos_types::scenario::{GpuSpec, NodeSpec, PoolKind, PoolSpec};

/// A network interface, for the report (not part of the node object).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub state: String,
    pub speed_mbps: Option<i64>,
    pub physical: bool,
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub node: NodeSpec,
    pub nics: Vec<Nic>,
    /// Block devices left out, and why.
    pub skipped_disks: Vec<(String, String)>,
}

fn read(root: &Path, rel: &str) -> anyhow::Result<String> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn list_dir(path: &Path) -> Vec<(String, PathBuf)> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(path)
        .map(|dir| {
            dir.filter_map(Result::ok).map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Kind overrides given by the operator (`--ssd vda`, `--hdd vdb`).
pub struct Overrides<'a> {
    pub ssd: &'a [String],
    pub hdd: &'a [String],
}

/// Reads the machine under `root`.
pub fn discover(root: &Path, overrides: &Overrides<'_>) -> anyhow::Result<Discovery> {
    let cpuinfo = read(root, "proc/cpuinfo")?;
    let cru = cpuinfo.lines().filter(|line| line.starts_with("processor")).count() as u64;
    if cru == 0 {
        return Err(anyhow!("{}: no processor entries", root.join("proc/cpuinfo").display()));
    }
    let meminfo = read(root, "proc/meminfo")?;
    let total = meminfo_kib(&meminfo, "MemTotal").ok_or_else(|| anyhow!("proc/meminfo: no MemTotal"))?;
    let available = meminfo_kib(&meminfo, "MemAvailable").unwrap_or(total);
    let mut pools = Vec::new();
    let mut skipped_disks = Vec::new();
    for (name, path) in list_dir(&root.join("sys/block")) {
        if let Some(reason) = excluded(&name, &path) {
            skipped_disks.push((name, reason));
            continue;
        }
        let sectors: u64 = read_opt(&path.join("size")).and_then(|s| s.parse().ok()).unwrap_or(0);
        let rotational = read_opt(&path.join("queue/rotational")).as_deref() == Some("1");
        let kind = if overrides.ssd.contains(&name) {
            PoolKind::Ssd
        } else if overrides.hdd.contains(&name) || rotational {
            PoolKind::Hdd
        } else {
            PoolKind::Ssd
        };
        pools.push(PoolSpec {
            name,
            kind,
            size: Unit(sectors.saturating_mul(512)),
            used: Unit::ZERO,
            mounted: true,
            vdisks: false,
            zdb: false,
        });
    }
    let gpus = list_dir(&root.join("sys/bus/pci/devices"))
        .into_iter()
        .filter(|(_, path)| read_opt(&path.join("class")).is_some_and(|class| class.starts_with("0x03")))
        .map(|(id, path)| {
            let hex = |file: &str| read_opt(&path.join(file)).unwrap_or_default().trim_start_matches("0x").to_string();
            GpuSpec { id, vendor: hex("vendor"), device: hex("device") }
        })
        .collect();
    let nics = list_dir(&root.join("sys/class/net"))
        .into_iter()
        .map(|(name, path)| Nic {
            mac: read_opt(&path.join("address")).unwrap_or_default(),
            state: read_opt(&path.join("operstate")).unwrap_or_default(),
            speed_mbps: read_opt(&path.join("speed")).and_then(|s| s.parse().ok()).filter(|&s: &i64| s > 0),
            physical: path.join("device").exists(),
            name,
        })
        .collect();
    let node = NodeSpec {
        cru,
        mru: Unit(total.saturating_mul(1024)),
        os_used_mru: Unit(total.saturating_sub(available).saturating_mul(1024)),
        pools,
        public_ips: Vec::new(),
        gpus,
    };
    Ok(Discovery { node, nics, skipped_disks })
}

/// Why ZOS would not use a block device: ram, zram, loop, floppy, optical, USB, removable, empty.
fn excluded(name: &str, path: &Path) -> Option<String> {
    for (prefix, what) in
        [("ram", "ram disk"), ("zram", "zram"), ("loop", "loop device"), ("fd", "floppy"), ("sr", "optical")]
    {
        if name.starts_with(prefix) {
            return Some(what.into());
        }
    }
    if read_opt(&path.join("removable")).as_deref() == Some("1") {
        return Some("removable".into());
    }
    let device = std::fs::canonicalize(path.join("device")).unwrap_or_default();
    if device.to_string_lossy().contains("/usb") {
        return Some("USB".into());
    }
    if read_opt(&path.join("size")).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) == 0 {
        return Some("empty".into());
    }
    None
}
