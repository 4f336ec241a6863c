//! The managers that run workloads through the modules' zbus clients: storaged for zmount, volume and
//! zdb, networkd for network and ip, vmd for zmachine (with flistd's root, networkd's taps and
//! storaged's vdisks, [`crate::zmachine`]). qsfs fails with "module unavailable" (and so releases its reservation).
//! Gateways and zlogs hold no capacity and are recorded as they are.

use crate::engine::Managers;
use serde_json::{Value, json};
use zos_interfaces::flist::FlistClient;
use zos_interfaces::network::{NetworkClient, NetworkSpec};
use zos_interfaces::storage::StorageClient;
use zos_interfaces::vm::VMClient;
use zos_types::{ReservationRecord, Workload, WorkloadData, WorkloadId};

/// Managers over the modules' zbus clients.
#[derive(Clone, Debug)]
pub struct ModuleManagers {
    pub(crate) storage: StorageClient,
    pub(crate) network: NetworkClient,
    pub(crate) vm: VMClient,
    pub(crate) flist: FlistClient,
    pub(crate) zmachine_boot: Option<crate::zmachine::ZMachineBoot>,
}

/// A module error as the text a workload's result carries.
pub(crate) fn text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

impl ModuleManagers {
    /// Managers over a bus client.
    pub fn new(client: zos_zbus::Client) -> ModuleManagers {
        ModuleManagers {
            storage: StorageClient::new(client.clone(), "storage"),
            network: NetworkClient::new(client.clone(), "network"),
            vm: VMClient::new(client.clone(), zos_interfaces::vm::MODULE),
            flist: FlistClient::new(client, "flist"),
            zmachine_boot: None,
        }
    }

    /// The kernel and initrd zmachines boot in container mode, their flist as the root filesystem.
    pub fn with_zmachine_boot(mut self, boot: Option<crate::zmachine::ZMachineBoot>) -> ModuleManagers {
        self.zmachine_boot = boot;
        self
    }

    fn tap(id: &WorkloadId) -> String {
        id.unique("pub")
    }
}

/// The module resources a workload stands for: (index into the reconciler's resource kinds, resource
/// name). A zmachine stands for its VM (when the node can boot one: see [`ModuleManagers::reconcile`])
/// and the volume of its flist root's writable layer.
fn resources_of(id: &WorkloadId, workload: &Workload, reservation: Option<&ReservationRecord>) -> Vec<(usize, String)> {
    match &workload.data {
        WorkloadData::Volume(_) => vec![(VOLUMES, id.to_string())],
        WorkloadData::ZMount(_) => vec![(DISKS, id.to_string())],
        WorkloadData::ZMachine(_) => vec![(VOLUMES, id.to_string()), (VMS, id.to_string())],
        WorkloadData::Network(_) => {
            id.parts().map(|(twin, _, _)| (NETWORKS, zos_types::network_id(twin, &workload.name))).into_iter().collect()
        }
        WorkloadData::Ip(ip) if ip.v4 => vec![(TAPS, format!("p-{}", ModuleManagers::tap(id)))],
        WorkloadData::Ipv4(_) => vec![(TAPS, format!("p-{}", ModuleManagers::tap(id)))],
        WorkloadData::Zdb(_) => {
            reservation.and_then(|r| r.disk.as_ref()).map(|(pool, _)| (DEVICES, pool.clone())).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

const VOLUMES: usize = 0;
const DISKS: usize = 1;
const NETWORKS: usize = 2;
const TAPS: usize = 3;
const DEVICES: usize = 4;
const VMS: usize = 5;
/// Each resource kind: its module, and whether every resource of the kind with a workload-like name
/// is ours (volumes, vdisks and VMs are named after their workload; networks, taps and devices by hashes).
const KINDS: [(&str, bool); 6] =
    [("storage", true), ("storage", true), ("network", false), ("network", false), ("storage", false), ("vm", true)];

/// A workload the reconciler looks at: its id, its data, its state, its reservation.
pub type Held = (WorkloadId, Workload, Option<ReservationRecord>);

impl ModuleManagers {
    /// The reconciler: what `settled` (the workloads whose last job is done and that should exist)
    /// implies, against what storaged and networkd report. Missing resources and orphans (resources
    /// named like a workload that no settled workload explains) are both reported, each naming the
    /// workload and its state. The resources of `unsettled` workloads (a job queued or running, or not
    /// yet provisioned) are left out on both sides: they are being made or removed right now.
    pub async fn reconcile(
        &self,
        settled: &[Held],
        unsettled: &[Held],
    ) -> Result<Vec<zos_interfaces::provision::DriftReport>, String> {
        use std::collections::{BTreeMap, BTreeSet};
        let volumes: BTreeSet<String> =
            self.storage.volume_list().await.map_err(text)?.into_iter().map(|v| v.name).collect();
        let disks: BTreeSet<String> = self
            .storage
            .disk_list()
            .await
            .map_err(text)?
            .into_iter()
            .filter_map(|d| std::path::Path::new(&d.path).file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let networks: BTreeSet<String> = self.network.networks().await.map_err(text)?.into_iter().collect();
        let taps: BTreeSet<String> = self
            .network
            .public_ips()
            .await
            .map_err(text)?
            .into_iter()
            .map(|p| p.tap)
            .filter(|t| !t.is_empty())
            .collect();
        let devices: BTreeSet<String> = self.storage.devices().await.map_err(text)?.into_iter().map(|d| d.id).collect();
        // VMs only where zmachines can boot: elsewhere none is ever made, and vmd need not run.
        let vms: BTreeSet<String> = match self.zmachine_boot {
            Some(_) => self.vm.list().await.map_err(text)?.into_iter().collect(),
            None => BTreeSet::new(),
        };
        let have = [volumes, disks, networks, taps, devices, vms];
        let reconciled = |kind: usize| kind != VMS || self.zmachine_boot.is_some();
        let mut want: [BTreeMap<String, (String, String)>; 6] = Default::default();
        for (id, workload, reservation) in settled {
            for (kind, name) in
                resources_of(id, workload, reservation.as_ref()).into_iter().filter(|(k, _)| reconciled(*k))
            {
                want[kind].insert(name, (id.to_string(), workload.result.state.to_string()));
            }
        }
        let mut busy: [BTreeSet<String>; 6] = Default::default();
        for (id, workload, reservation) in unsettled {
            for (kind, name) in resources_of(id, workload, reservation.as_ref()) {
                busy[kind].insert(name);
            }
        }
        let mut drifts = Vec::new();
        for (kind, (module, named_after_workloads)) in KINDS.iter().enumerate() {
            for (resource, (workload, state)) in &want[kind] {
                if !have[kind].contains(resource) && !busy[kind].contains(resource) {
                    drifts.push(zos_interfaces::provision::DriftReport {
                        kind: "missing".into(),
                        module: module.to_string(),
                        resource: resource.clone(),
                        workload: workload.clone(),
                        state: state.clone(),
                    });
                }
            }
            for resource in &have[kind] {
                let ours = !named_after_workloads || WorkloadId::parse(resource).is_some();
                if ours && !want[kind].contains_key(resource) && !busy[kind].contains(resource) {
                    drifts.push(zos_interfaces::provision::DriftReport {
                        kind: "orphan".into(),
                        module: module.to_string(),
                        resource: resource.clone(),
                        workload: if *named_after_workloads { resource.clone() } else { String::new() },
                        state: "none".into(),
                    });
                }
            }
        }
        drifts.sort();
        Ok(drifts)
    }
}

impl Managers for ModuleManagers {
    async fn provision(
        &self,
        id: &WorkloadId,
        workload: &Workload,
        reservation: Option<&ReservationRecord>,
    ) -> Result<Value, String> {
        let name = id.to_string();
        // One placement decision per disk: the ledger's. storaged honours it or refuses.
        let planned = reservation.and_then(|r| r.disk.as_ref()).map(|(pool, _)| pool.clone());
        match &workload.data {
            WorkloadData::ZMount(disk) => {
                match self.storage.disk_lookup(name.clone()).await {
                    Ok(existing) if existing.size as u64 >= disk.size.bytes() => {}
                    Ok(_) => {
                        self.storage.disk_resize(name.clone(), disk.size.bytes()).await.map_err(text)?;
                    }
                    Err(_) => match planned {
                        Some(pool) => {
                            self.storage.disk_create_on(name.clone(), disk.size.bytes(), pool).await.map_err(text)?;
                        }
                        None => {
                            self.storage.disk_create(name.clone(), disk.size.bytes()).await.map_err(text)?;
                        }
                    },
                }
                Ok(json!({"volume_id": name}))
            }
            WorkloadData::Volume(volume) => {
                let created = match planned {
                    Some(pool) => self.storage.volume_create_on(name.clone(), volume.size.bytes(), pool).await,
                    None => self.storage.volume_create(name.clone(), volume.size.bytes()).await,
                }
                .map_err(text)?;
                if created.usage.size != volume.size.bytes() {
                    self.storage.volume_update(name.clone(), volume.size.bytes()).await.map_err(text)?;
                }
                Ok(json!({"id": name}))
            }
            WorkloadData::Zdb(zdb) => {
                let device = match planned {
                    Some(pool) => match self.storage.device_lookup(pool.clone()).await {
                        Ok(device) => device,
                        Err(_) => self.storage.device_allocate_on(pool, zdb.size.bytes()).await.map_err(text)?,
                    },
                    None => self.storage.device_allocate(zdb.size.bytes()).await.map_err(text)?,
                };
                Ok(json!({"Namespace": name, "IPs": [], "Port": 9900, "Device": device.id}))
            }
            WorkloadData::Network(network) => {
                let spec = NetworkSpec {
                    ip_range: network.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    subnet: network.subnet.map(|s| s.to_string()).unwrap_or_default(),
                    wireguard_private_key: network.wireguard_private_key.clone(),
                    wireguard_listen_port: network.wireguard_listen_port,
                };
                let (twin, _, _) = id.parts().ok_or("invalid workload id")?;
                let resource = self.network.create_nr(twin, workload.name.clone(), spec).await.map_err(text)?;
                Ok(json!({"netid": resource.netid, "wireguard": resource.wireguard}))
            }
            WorkloadData::Ip(ip) if !ip.v4 => Ok(json!({"ip": ""})),
            WorkloadData::Ip(_) | WorkloadData::Ipv4(_) => {
                let address = reservation
                    .and_then(|r| r.ip.clone())
                    .ok_or("no public IPv4 address was granted to this workload")?;
                let tap = self.network.setup_pub_tap(Self::tap(id), address).await.map_err(text)?;
                Ok(json!({"ip": tap.ip, "gateway": tap.gateway}))
            }
            WorkloadData::GatewayNameProxy(_) | WorkloadData::GatewayFqdnProxy(_) | WorkloadData::ZLogs(_) => {
                Ok(Value::Null)
            }
            WorkloadData::ZMachine(machine) => self.provision_zmachine(id, workload, machine, reservation).await,
            WorkloadData::Qsfs(_) => {
                Err("module unavailable: qsfs (its zstor and 0-db-fs) is not supported on this node".into())
            }
        }
    }

    async fn deprovision(&self, id: &WorkloadId, workload: &Workload) -> Result<(), String> {
        let name = id.to_string();
        match &workload.data {
            WorkloadData::ZMount(_) => self.storage.disk_delete(name).await.map_err(text),
            WorkloadData::Volume(_) => self.storage.volume_delete(name).await.map_err(text),
            WorkloadData::Network(_) => {
                let (twin, _, _) = id.parts().ok_or("invalid workload id")?;
                self.network.delete_nr(twin, workload.name.clone()).await.map_err(text)
            }
            WorkloadData::Ip(_) | WorkloadData::Ipv4(_) => {
                self.network.remove_pub_tap(Self::tap(id)).await.map_err(text)
            }
            WorkloadData::ZMachine(machine) => self.deprovision_zmachine(id, machine).await,
            // The device the zdb was given is named in its result; without one, nothing was allocated.
            WorkloadData::Zdb(_) => match workload.result.data.get("Device").and_then(Value::as_str) {
                Some(device) if !device.is_empty() => {
                    self.storage.device_release(device.to_string()).await.map_err(text)
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}
