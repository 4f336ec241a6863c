//! The zmachine manager: a zmachine workload as a VM of vmd (`manager@0.0.1`). Its root filesystem
//! is its flist mounted by flistd (`flist@0.0.1`) read-write, the writable layer in a storaged volume
//! of its root size on the pool the ledger chose, named after the workload, and shared into the VM
//! over virtiofs (ZOS's container mode: the kernel and initrd of provisiond's `[zmachine]` section
//! boot with `root=vroot rootfstype=virtiofs`). Its private interface is a tap from networkd on the
//! network's bridge, its public address the tap of the deployment's `ip` workload, its zmounts
//! storaged's vdisks attached as disks (volumes are shared directories), its GPUs the ones the ledger
//! granted; then vmd runs it. Idempotent: a VM that vmd has already is answered as it is. Everything
//! made here is undone, newest first, when a later step fails.

use crate::modules::{ModuleManagers, text};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use zos_interfaces::flist::MountOptions;
use zos_interfaces::vm::{BOOT_VIRTIOFS, Boot, SharedDir, VM, VMDisk, VMIface, VMNetworkInfo};
use zos_types::workload::ZMachine;
use zos_types::{ReservationRecord, Workload, WorkloadId};

/// The kernel a zmachine boots in container mode (ZOS's `cloud-container` kernel).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZMachineBoot {
    /// The kernel.
    pub kernel: String,
    /// Its initrd.
    #[serde(default)]
    pub initrd: String,
}

/// A MAC address derived from the tap's name (locally administered, unicast), stable across runs.
pub fn mac_of(tap: &str) -> String {
    // FNV-1a, 64 bits.
    let hash = tap.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let b = hash.to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// A module's error, said plainly when the module (`daemon`) does not answer at all; otherwise its
/// own text after `context`.
fn module_error(daemon: &str, context: &str, err: zos_zbus::ZbusError) -> String {
    match err {
        zos_zbus::ZbusError::Deadline { .. } => {
            format!("module unavailable: {daemon} is not running on this node ({err})")
        }
        other => format!("{context}{other}"),
    }
}

/// vmd's error.
fn vm_error(err: zos_zbus::ZbusError) -> String {
    module_error("vmd", "", err)
}

/// The private tap's name: ZOS's `wl.ID.Unique(network)`.
fn private_tap(id: &WorkloadId, network: &str) -> String {
    id.unique(network)
}

enum Undo {
    Tap(String),
    Vm(String),
    Volume(String),
    Root(String),
}

/// flistd's error.
fn flist_error(err: zos_zbus::ZbusError) -> String {
    module_error("flistd", "flist root: ", err)
}

impl ModuleManagers {
    pub(crate) async fn provision_zmachine(
        &self,
        id: &WorkloadId,
        workload: &Workload,
        machine: &ZMachine,
        reservation: Option<&ReservationRecord>,
    ) -> Result<Value, String> {
        let name = id.to_string();
        let iface = machine.network.interfaces.first().ok_or("a zmachine needs one private network")?;
        let ip = match iface.ip {
            Some(IpAddr::V4(ip)) => ip,
            _ => return Err("a zmachine needs a private IPv4 address".into()),
        };
        let result = |console: String| json!({"id": name, "ip": ip.to_string(), "planetary_ip": "", "mycelium_ip": "", "console_url": console});
        // Without a container kernel configured, nothing can boot: said before anything is made.
        let boot = self.zmachine_boot.as_ref().ok_or_else(|| {
            format!(
                "module unavailable: no container kernel is configured on this node ([zmachine] kernel) to boot '{}'",
                machine.flist
            )
        })?;
        if self.vm.exists(name.clone()).await.map_err(vm_error)? {
            let info = self.vm.inspect(name.clone()).await.map_err(vm_error)?;
            return Ok(result(info.console_url));
        }
        if machine.network.planetary || machine.network.mycelium.is_some() {
            return Err("planetary and mycelium addresses are not supported on this node yet".into());
        }
        let mut undo = Vec::new();
        let made = self.make_zmachine(id, workload, machine, reservation, boot, ip, &mut undo).await;
        match made {
            Ok(console) => Ok(result(console)),
            Err(err) => {
                for step in undo.into_iter().rev() {
                    let undone = match &step {
                        Undo::Tap(tap) => self.network.remove_tap(tap.clone()).await,
                        Undo::Vm(vm) => self.vm.delete(vm.clone()).await,
                        Undo::Volume(volume) => self.storage.volume_delete(volume.clone()).await,
                        Undo::Root(mount) => self.flist.unmount(mount.clone()).await,
                    };
                    if let Err(undo_err) = undone {
                        tracing::warn!(workload = %name, "undo after a failed zmachine: {undo_err}");
                    }
                }
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn make_zmachine(
        &self,
        id: &WorkloadId,
        workload: &Workload,
        machine: &ZMachine,
        reservation: Option<&ReservationRecord>,
        boot: &ZMachineBoot,
        ip: std::net::Ipv4Addr,
        undo: &mut Vec<Undo>,
    ) -> Result<String, String> {
        let name = id.to_string();
        let (twin, contract, _) = id.parts().ok_or("invalid workload id")?;
        let iface = machine.network.interfaces.first().ok_or("a zmachine needs one private network")?;
        let root = self.mount_root(id, machine, reservation, undo).await?;
        // Private interface: a tap on the network's bridge; ZOS's subnets are /24 with the gateway on .1.
        let netid = zos_types::network_id(twin, &iface.network);
        let tap_name = private_tap(id, &iface.network);
        let tap = self.network.setup_priv_tap(netid.clone(), tap_name.clone(), ip.to_string()).await.map_err(text)?;
        undo.push(Undo::Tap(tap_name));
        let [a, b, c, _] = ip.octets();
        let mut ifaces = vec![VMIface {
            mac: mac_of(&tap),
            tap,
            ips: vec![format!("{ip}/24")],
            ip4_default_gateway: format!("{a}.{b}.{c}.1"),
            net_id: netid,
            ..VMIface::default()
        }];
        // Public interface: the tap the deployment's ip workload holds.
        if !machine.network.public_ip.is_empty() {
            let holder = WorkloadId::new(twin, contract, &machine.network.public_ip).unique("pub");
            let tap_name = format!("p-{holder}");
            let held = self
                .network
                .public_ips()
                .await
                .map_err(text)?
                .into_iter()
                .find(|p| p.tap == tap_name)
                .ok_or_else(|| format!("public ip '{}' has no tap on this node", machine.network.public_ip))?;
            let public = self.network.setup_pub_tap(holder, held.ip).await.map_err(text)?;
            ifaces.push(VMIface {
                tap: public.tap,
                mac: public.mac,
                ips: vec![public.ip],
                ip4_default_gateway: public.gateway,
                public_ipv4: true,
                ..VMIface::default()
            });
        }
        // Mounts: zmounts are disks, volumes shared directories.
        let mut disks = Vec::new();
        let mut shared = Vec::new();
        for mount in &machine.mounts {
            let mount_id = WorkloadId::new(twin, contract, &mount.name).to_string();
            match self.storage.disk_lookup(mount_id.clone()).await {
                Ok(disk) => disks.push(VMDisk { path: disk.path, target: mount.mountpoint.clone() }),
                Err(_) => {
                    let volume = self
                        .storage
                        .volume_lookup(mount_id)
                        .await
                        .map_err(|err| format!("mount '{}': {err}", mount.name))?;
                    shared.push(SharedDir {
                        id: mount.name.clone(),
                        path: volume.path,
                        target: mount.mountpoint.clone(),
                    });
                }
            }
        }
        let devices = reservation
            .map(|r| r.gpus.iter().filter_map(|g| zos_types::workload::GpuRef::parse(g).ok()).map(|g| g.slot).collect())
            .unwrap_or_default();
        let vm = VM {
            name: name.clone(),
            hostname: workload.name.clone(),
            cpu: machine.compute_capacity.cpu,
            memory: machine.compute_capacity.memory.bytes(),
            network: VMNetworkInfo { ifaces, nameservers: Vec::new() },
            kernel_image: boot.kernel.clone(),
            initrd_image: boot.initrd.clone(),
            boot: Boot { kind: BOOT_VIRTIOFS, path: root },
            entrypoint: machine.entrypoint.clone(),
            disks,
            shared,
            environment: machine.env.clone(),
            devices,
            ..VM::default()
        };
        undo.push(Undo::Vm(name));
        let info = self.vm.run(vm).await.map_err(vm_error)?;
        Ok(info.console_url)
    }

    /// The zmachine's root filesystem: the writable layer's volume made on the pool the ledger chose
    /// (storaged places nothing itself: one placement), then the flist mounted read-write by flistd
    /// over it (a persisted volume: flistd leaves deleting it to us). Its path.
    async fn mount_root(
        &self,
        id: &WorkloadId,
        machine: &ZMachine,
        reservation: Option<&ReservationRecord>,
        undo: &mut Vec<Undo>,
    ) -> Result<String, String> {
        let name = id.to_string();
        let size = machine.root_size().bytes();
        let volume = match reservation.and_then(|r| r.disk.as_ref()) {
            Some((pool, _)) => self.storage.volume_create_on(name.clone(), size, pool.clone()).await,
            None => self.storage.volume_create(name.clone(), size).await,
        }
        .map_err(|err| format!("root filesystem: {err}"))?;
        undo.push(Undo::Volume(name.clone()));
        let options =
            MountOptions { read_only: false, limit: size, persisted_volume: volume.path, ..MountOptions::default() };
        let root = self.flist.mount(name.clone(), machine.flist.clone(), options).await.map_err(flist_error)?;
        undo.push(Undo::Root(name));
        Ok(root)
    }

    pub(crate) async fn deprovision_zmachine(&self, id: &WorkloadId, machine: &ZMachine) -> Result<(), String> {
        if self.zmachine_boot.is_none() {
            // Nothing could have been made (see `provision_zmachine`).
            return Ok(());
        }
        let name = id.to_string();
        self.vm.delete(name.clone()).await.map_err(vm_error)?;
        for iface in &machine.network.interfaces {
            self.network.remove_tap(private_tap(id, &iface.network)).await.map_err(text)?;
        }
        // Idempotent both: nothing mounted, or no volume, is no error.
        self.flist.unmount(name.clone()).await.map_err(flist_error)?;
        self.storage.volume_delete(name).await.map_err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_unicast_and_local() {
        let mac = mac_of("t-abc");
        assert_eq!(mac, mac_of("t-abc"));
        assert_ne!(mac, mac_of("t-abd"));
        assert!(mac.starts_with("52:54:"), "{mac}");
        assert_eq!(mac.len(), 17);
    }
}
