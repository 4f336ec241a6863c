//! The guest the vmd tests and the memory bench boot: a busybox initramfs (cpio newc) on the
//! distribution's cloud kernel with its virtio, vfat and virtiofs modules. Its init prints a marker on
//! the serial console, mounts its cidata seed, takes the hostname and the static addresses the seed
//! gives (matched by MAC), mounts a shared directory over virtiofs, prints what it sees and keeps a
//! shell on the console. Booted in container mode (`rootfstype=virtiofs`), it mounts the `vroot`
//! share first, as ZOS's container initramfs does before switching to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zos_vmd::Config;

pub const MARKER: &str = "ZOS-VMD-GUEST-UP";
pub const READY: &str = "ZOS-VMD-GUEST-READY";
pub const BOOT_LIMIT: Duration = Duration::from_secs(90);
pub const MIB: u64 = 1 << 20;
/// Modules to load, in this order; their dependencies (from `modules.dep`) come first.
const MODULES: [&str; 15] = [
    "virtio_ring",
    "virtio",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "fat",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
    "nls_ascii",
    "nls_utf8",
    "fuse",
    "virtiofs",
];

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /seed /shared /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko 2>/dev/null || echo "insmod $m failed"; done
echo ZOS-VMD-GUEST-UP
if grep -q "rootfstype=virtiofs" /proc/cmdline; then
  mkdir -p /newroot
  if mount -t virtiofs vroot /newroot; then echo "GUEST-VROOT=$(cat /newroot/etc/zos-root)"; fi
fi
seed=""
for try in 1 2 3 4 5 6 7 8 9 10; do
  for d in /dev/vd*; do
    [ -b "$d" ] || continue
    if mount -t vfat -o ro "$d" /seed 2>/dev/null; then
      if [ -f /seed/meta-data ]; then seed=$d; break; fi
      umount /seed
    fi
  done
  [ -n "$seed" ] && break
  sleep 1
done
echo "GUEST-SEED=$seed"
sed 's/^/GUEST-ZOSRC /' /seed/zosrc
host=$(sed -n 's/^local-hostname: "\(.*\)"$/\1/p' /seed/meta-data)
hostname "$host"
echo "GUEST-HOSTNAME=$(hostname)"
ip link set lo up
awk '/macaddress:/ {gsub(/"/, "", $2); mac=$2; next} /^    addresses:/ {inaddr=1; next} /^      - / && inaddr {print mac, $2; next} {inaddr=0}' /seed/network-config > /tmp/addrs
while read mac addr; do
  for n in /sys/class/net/*; do
    if [ "$(cat $n/address)" = "$mac" ]; then dev=${n##*/}; ip link set "$dev" up; ip addr add "$addr" dev "$dev"; fi
  done
done < /tmp/addrs
ip -o -4 addr show | sed 's/^/GUEST-ADDR /'
if mount -t virtiofs shared /shared 2>/dev/null; then echo "GUEST-SHARED=$(cat /shared/hello)"; fi
echo ZOS-VMD-GUEST-READY
while true; do setsid cttyhack sh; sleep 1; done
"#;

pub fn have(binary: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The cloud kernel and its modules' directory, newest first.
pub fn cloud_kernel() -> Option<(PathBuf, PathBuf)> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    kernels.sort();
    let kernel = kernels.pop()?;
    let version = kernel.file_name()?.to_str()?.trim_start_matches("vmlinuz-").to_string();
    let modules = PathBuf::from("/lib/modules").join(version);
    modules.join("modules.dep").exists().then_some((kernel, modules))
}

/// Why the guest tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (taps, namespaces; CI runs as root)".into());
    }
    for binary in ["qemu-system-x86_64", "busybox", "cpio", "ip"] {
        if !have(binary) {
            return Some(format!("needs {binary} (scripts/test installs it)"));
        }
    }
    if cloud_kernel().is_none() {
        return Some("needs linux-image-cloud-amd64 (scripts/test installs it)".into());
    }
    if !Path::new(&Config::default().virtiofsd).exists() {
        return Some("needs virtiofsd (qemu-system-common; scripts/test installs it)".into());
    }
    None
}

/// The modules to load in order, each after its dependencies.
pub fn module_order(modules: &Path) -> Vec<(String, PathBuf)> {
    let dep = std::fs::read_to_string(modules.join("modules.dep")).expect("modules.dep");
    let deps: std::collections::HashMap<String, (String, Vec<String>)> = dep
        .lines()
        .filter_map(|line| {
            let (module, rest) = line.split_once(':')?;
            let name = Path::new(module).file_name()?.to_str()?.trim_end_matches(".ko").to_string();
            Some((name.replace('-', "_"), (module.to_string(), rest.split_whitespace().map(str::to_string).collect())))
        })
        .collect();
    let mut order: Vec<(String, PathBuf)> = Vec::new();
    fn add(
        name: &str,
        deps: &std::collections::HashMap<String, (String, Vec<String>)>,
        modules: &Path,
        order: &mut Vec<(String, PathBuf)>,
    ) {
        let key = name.replace('-', "_");
        if order.iter().any(|(n, _)| n.replace('-', "_") == key) {
            return;
        }
        let Some((path, needs)) = deps.get(&key) else { return }; // built in
        // modules.dep lists the full closure, deepest last: load from the end.
        for need in needs.iter().rev() {
            let need = Path::new(need).file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_end_matches(".ko");
            add(need, deps, modules, order);
        }
        let stem = Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_end_matches(".ko");
        order.push((stem.to_string(), modules.join(path)));
    }
    for name in MODULES {
        add(name, &deps, modules, &mut order);
    }
    order
}

/// Builds the busybox initramfs (cpio newc) in `dir`; returns (kernel, initrd).
pub fn build_guest(dir: &Path) -> (PathBuf, PathBuf) {
    let (kernel, modules) = cloud_kernel().expect("cloud kernel");
    let root = dir.join("initramfs");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("lib/modules")).expect("mkdir");
    let busybox =
        String::from_utf8(Command::new("sh").args(["-c", "command -v busybox"]).output().expect("which").stdout)
            .expect("utf8");
    std::fs::copy(busybox.trim(), root.join("bin/busybox")).expect("busybox");
    let mut order = String::new();
    for (name, path) in module_order(&modules) {
        std::fs::copy(&path, root.join("lib/modules").join(format!("{name}.ko"))).expect("module");
        order.push_str(&name);
        order.push('\n');
    }
    std::fs::write(root.join("lib/modules/order"), order).expect("order");
    std::fs::write(root.join("init"), INIT).expect("init");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let initrd = dir.join("initrd.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && find . | cpio -o -H newc --quiet > {}", root.display(), initrd.display()))
        .status()
        .expect("cpio");
    assert!(status.success(), "cpio failed");
    (kernel, initrd)
}
