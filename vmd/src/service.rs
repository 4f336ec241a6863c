//! `manager@0.0.1` on zbus: [`VmService`] serves the [`Manager`] (each call on a blocking thread,
//! errors with their codes), and [`ProvisionWorkloads`] is the monitor's link to provisiond
//! (`provision@0.0.1`: `GetWorkloadStatus` and `Deprovision`).

use crate::error::VmError;
use crate::manager::{Manager, WorkloadState, Workloads};
use std::sync::Arc;
use zos_interfaces::provision::ProvisionClient;
use zos_interfaces::vm::{MachineInfo, MachineMetrics, VM, VMInfo, VMModule};
use zos_zbus::RemoteError;

/// The manager, served.
#[derive(Debug, Clone)]
pub struct VmService(pub Arc<Manager>);

impl VmService {
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Manager) -> Result<T, VmError> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let manager = self.0.clone();
        match tokio::task::spawn_blocking(move || job(&manager)).await {
            Ok(result) => result.map_err(RemoteError::from),
            Err(err) => Err(RemoteError::new(zos_zbus::code::INTERNAL, format!("vmd task failed: {err}"))),
        }
    }
}

impl VMModule for VmService {
    async fn run(&self, vm: VM) -> Result<MachineInfo, RemoteError> {
        self.blocking(move |m| m.run(&vm)).await
    }

    async fn inspect(&self, name: String) -> Result<VMInfo, RemoteError> {
        self.blocking(move |m| m.inspect(&name)).await
    }

    async fn delete(&self, name: String) -> Result<(), RemoteError> {
        self.blocking(move |m| m.delete(&name)).await
    }

    async fn exists(&self, name: String) -> Result<bool, RemoteError> {
        self.blocking(move |m| Ok(m.exists(&name))).await
    }

    async fn logs(&self, name: String) -> Result<String, RemoteError> {
        self.blocking(move |m| m.logs(&name)).await
    }

    async fn list(&self) -> Result<Vec<String>, RemoteError> {
        self.blocking(|m| m.list()).await
    }

    async fn metrics(&self) -> Result<MachineMetrics, RemoteError> {
        self.blocking(|m| m.metrics()).await
    }

    async fn lock(&self, name: String, lock: bool) -> Result<(), RemoteError> {
        self.blocking(move |m| m.lock(&name, lock)).await
    }
}

/// provisiond as the monitor sees it. The calls block: use it from a blocking thread.
#[derive(Debug, Clone)]
pub struct ProvisionWorkloads {
    client: ProvisionClient,
    runtime: tokio::runtime::Handle,
}

impl ProvisionWorkloads {
    /// Over `client` (module `provision`), calling on `runtime`.
    pub fn new(client: zos_zbus::Client, runtime: tokio::runtime::Handle) -> ProvisionWorkloads {
        ProvisionWorkloads { client: ProvisionClient::new(client, "provision"), runtime }
    }
}

/// `twin-contract-name` as (twin, contract).
fn parts(id: &str) -> Option<(u32, u64)> {
    let mut it = id.splitn(3, '-');
    let twin = it.next()?.parse().ok()?;
    let contract = it.next()?.parse().ok()?;
    it.next().filter(|name| !name.is_empty())?;
    Some((twin, contract))
}

impl Workloads for ProvisionWorkloads {
    fn state(&self, id: &str) -> WorkloadState {
        match self.runtime.block_on(self.client.get_workload_status(id.to_string())) {
            Ok((_, false)) => WorkloadState::Gone,
            Ok((state, true)) if state == "deleted" || state == "error" => WorkloadState::Gone,
            Ok(_) => WorkloadState::Alive,
            Err(err) => {
                tracing::debug!(vm = id, "workload state unknown: {err}");
                WorkloadState::Unknown
            }
        }
    }

    /// provisiond's interface decommissions deployments, not single workloads: the VM's whole
    /// deployment is removed (and its capacity released).
    fn decommission(&self, id: &str, reason: &str) -> Result<(), String> {
        let (twin, contract) = parts(id).ok_or_else(|| format!("'{id}' is not a workload id"))?;
        self.runtime
            .block_on(self.client.deprovision(twin, contract, reason.to_string()))
            .map(drop)
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids() {
        assert_eq!(parts("12-345-vm-one"), Some((12, 345)));
        assert_eq!(parts("12-345-"), None);
        assert_eq!(parts("x-1-vm"), None);
    }
}
