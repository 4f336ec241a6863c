//! The managers that run workloads through the modules' zbus clients: storaged for zmount, volume and
//! zdb, networkd for network and ip. zmachine and qsfs need vmd, which does not exist yet: they fail
//! with "module unavailable" (and so release their reservation). Gateways and zlogs hold no capacity
//! and are recorded as they are.

use crate::engine::Managers;
use serde_json::{Value, json};
use zos_interfaces::network::{NetworkClient, NetworkSpec};
use zos_interfaces::storage::StorageClient;
use zos_types::{ReservationRecord, Workload, WorkloadData, WorkloadId};

/// Managers over the modules' zbus clients.
#[derive(Clone, Debug)]
pub struct ModuleManagers {
    storage: StorageClient,
    network: NetworkClient,
}

fn text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

impl ModuleManagers {
    /// Managers over a bus client.
    pub fn new(client: zos_zbus::Client) -> ModuleManagers {
        ModuleManagers {
            storage: StorageClient::new(client.clone(), "storage"),
            network: NetworkClient::new(client, "network"),
        }
    }

    fn tap(id: &WorkloadId) -> String {
        id.unique("pub")
    }
}

impl ModuleManagers {
    /// The reconciler: what `live` (the workloads that should exist) implies, against what storaged and
    /// networkd report. Missing resources and orphans (resources named like a workload that no live
    /// workload explains) are both reported.
    pub async fn reconcile(
        &self,
        live: &[(WorkloadId, Workload, Option<ReservationRecord>)],
    ) -> Result<Vec<zos_interfaces::provision::DriftReport>, String> {
        use std::collections::BTreeSet;
        let report = |kind: &str, module: &str, resource: String| zos_interfaces::provision::DriftReport {
            kind: kind.into(),
            module: module.into(),
            resource,
        };
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
        let mut want_devices = BTreeSet::new();
        let (mut want_volumes, mut want_disks, mut want_networks, mut want_taps) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (id, workload, reservation) in live {
            match &workload.data {
                WorkloadData::Zdb(_) => {
                    if let Some((pool, _)) = reservation.as_ref().and_then(|r| r.disk.as_ref()) {
                        want_devices.insert(pool.clone());
                    }
                }
                WorkloadData::Volume(_) => {
                    want_volumes.insert(id.to_string());
                }
                WorkloadData::ZMount(_) => {
                    want_disks.insert(id.to_string());
                }
                WorkloadData::Network(_) => {
                    if let Some((twin, _, _)) = id.parts() {
                        want_networks.insert(zos_types::network_id(twin, &workload.name));
                    }
                }
                WorkloadData::Ip(ip) if ip.v4 => {
                    want_taps.insert(format!("p-{}", Self::tap(id)));
                }
                WorkloadData::Ipv4(_) => {
                    want_taps.insert(format!("p-{}", Self::tap(id)));
                }
                _ => {}
            }
        }
        let workload_like = |name: &str| WorkloadId::parse(name).is_some();
        let mut drifts = Vec::new();
        for (module, want, have, owned) in [
            ("storage", &want_volumes, &volumes, true),
            ("storage", &want_disks, &disks, true),
            ("network", &want_networks, &networks, false),
            ("network", &want_taps, &taps, false),
            ("storage", &want_devices, &devices, false),
        ] {
            drifts.extend(want.difference(have).map(|r| report("missing", module, r.clone())));
            drifts.extend(
                have.difference(want)
                    .filter(|r| !owned || workload_like(r))
                    .map(|r| report("orphan", module, r.clone())),
            );
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
        match &workload.data {
            WorkloadData::ZMount(disk) => {
                match self.storage.disk_lookup(name.clone()).await {
                    Ok(existing) if existing.size as u64 >= disk.size.bytes() => {}
                    Ok(_) => {
                        self.storage.disk_resize(name.clone(), disk.size.bytes()).await.map_err(text)?;
                    }
                    Err(_) => {
                        self.storage.disk_create(name.clone(), disk.size.bytes()).await.map_err(text)?;
                    }
                }
                Ok(json!({"volume_id": name}))
            }
            WorkloadData::Volume(volume) => {
                let created = self.storage.volume_create(name.clone(), volume.size.bytes()).await.map_err(text)?;
                if created.usage.size != volume.size.bytes() {
                    self.storage.volume_update(name.clone(), volume.size.bytes()).await.map_err(text)?;
                }
                Ok(json!({"id": name}))
            }
            WorkloadData::Zdb(zdb) => {
                let planned = reservation.and_then(|r| r.disk.as_ref()).map(|(pool, _)| pool.clone());
                let device = match planned {
                    Some(pool) => match self.storage.device_lookup(pool).await {
                        Ok(device) => device,
                        Err(_) => self.storage.device_allocate(zdb.size.bytes()).await.map_err(text)?,
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
            WorkloadData::ZMachine(_) | WorkloadData::Qsfs(_) => {
                Err("module unavailable: vmd is not running on this node".into())
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
