//! The zbus API served by the engine.

use crate::engine::{Engine, EngineError, Outcome};
use crate::modules::ModuleManagers;
use crate::twins::TwinRegistry;
use std::sync::Arc;
use zos_interfaces::provision::Counters;
use zos_interfaces::provision::{Admission, DriftReport, GpuUse, ProvisionModule, StatisticsModule, WorkloadOutcome};
use zos_planner::Verdict;
use zos_types::{Capacity, Deployment, Timestamp, TwinRequest, Workload, WorkloadData, WorkloadId};
use zos_zbus::RemoteError;

/// The engine as the bus sees it.
pub struct Service {
    /// The engine.
    pub engine: Arc<Engine<TwinRegistry>>,
    /// The modules, for the reconciler.
    pub modules: ModuleManagers,
}

fn remote(err: EngineError) -> RemoteError {
    RemoteError::new(err.code(), err.to_string())
}

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs() as i64))
}

impl Service {
    /// A twin's signed request for `operation`, checked against the twin registry now.
    fn authenticated(&self, operation: &str, request: &TwinRequest) -> Result<(), RemoteError> {
        self.engine.authenticate(operation, request, now().0).map_err(remote)
    }
}

fn blocking<T>(f: impl FnOnce() -> Result<T, EngineError>) -> Result<T, RemoteError> {
    tokio::task::block_in_place(f).map_err(remote)
}

impl ProvisionModule for Service {
    async fn create_or_update(
        &self,
        twin: u32,
        deployment: Deployment,
        update: bool,
    ) -> Result<Admission, RemoteError> {
        let outcome = if update {
            blocking(|| self.engine.update(twin, deployment, now()))?
        } else {
            self.engine.create_async(twin, deployment, now()).await.map_err(remote)?
        };
        Ok(match outcome {
            Outcome::Accepted(job) => Admission { accepted: true, job: Some(job.0), workloads: Vec::new() },
            Outcome::Refused(verdicts) => Admission {
                accepted: false,
                job: None,
                workloads: verdicts
                    .into_iter()
                    .map(|v| {
                        let (verdict, shortfalls) = match v.verdict {
                            Verdict::Admit(_) => ("admit", Vec::new()),
                            Verdict::Reject(shortfalls) => ("reject", shortfalls),
                        };
                        WorkloadOutcome { name: v.name, kind: v.kind.to_string(), verdict: verdict.into(), shortfalls }
                    })
                    .collect(),
            },
        })
    }
    async fn deprovision(&self, twin: u32, contract: u64, reason: String) -> Result<u64, RemoteError> {
        blocking(|| self.engine.deprovision(twin, contract, &reason)).map(|job| job.0)
    }
    async fn pause(&self, twin: u32, contract: u64) -> Result<u64, RemoteError> {
        blocking(|| self.engine.pause(twin, contract)).map(|job| job.0)
    }
    async fn resume(&self, twin: u32, contract: u64) -> Result<u64, RemoteError> {
        blocking(|| self.engine.resume(twin, contract)).map(|job| job.0)
    }
    async fn get(&self, twin: u32, contract: u64) -> Result<Deployment, RemoteError> {
        blocking(|| Ok(self.engine.store().get(twin, contract)?))
    }
    async fn list(&self, twin: u32) -> Result<Vec<Deployment>, RemoteError> {
        blocking(|| {
            let store = self.engine.store();
            let contracts = store.by_twin(twin)?;
            Ok(contracts.into_iter().map(|contract| store.get(twin, contract)).collect::<Result<Vec<_>, _>>()?)
        })
    }
    async fn changes(&self, twin: u32, contract: u64) -> Result<Vec<Workload>, RemoteError> {
        blocking(|| Ok(self.engine.store().changes(twin, contract)?))
    }
    async fn get_workload_status(&self, id: String) -> Result<(String, bool), RemoteError> {
        let id =
            WorkloadId::parse(&id).ok_or_else(|| RemoteError::new("invalid", format!("invalid workload id '{id}'")))?;
        let (twin, contract, name) = id.parts().ok_or_else(|| RemoteError::new("invalid", "invalid workload id"))?;
        match self.engine.store().current(twin, contract, name) {
            Ok(workload) => Ok((workload.result.state.to_string(), true)),
            Err(_) => Ok((String::new(), false)),
        }
    }
    async fn list_public_ips(&self) -> Result<Vec<String>, RemoteError> {
        let ledger = self.engine.ledger_snapshot();
        Ok(ledger.reservations().filter_map(|(_, r)| ledger.assignment(r).ip).collect())
    }
    async fn reconcile(&self) -> Result<Vec<DriftReport>, RemoteError> {
        self.drift().await
    }
    async fn signed_deprovision(&self, request: TwinRequest, reason: String) -> Result<u64, RemoteError> {
        self.authenticated("Deprovision", &request)?;
        self.deprovision(request.twin, request.contract, reason).await
    }
    async fn signed_pause(&self, request: TwinRequest) -> Result<u64, RemoteError> {
        self.authenticated("Pause", &request)?;
        self.pause(request.twin, request.contract).await
    }
    async fn signed_resume(&self, request: TwinRequest) -> Result<u64, RemoteError> {
        self.authenticated("Resume", &request)?;
        self.resume(request.twin, request.contract).await
    }
    async fn signed_get(&self, request: TwinRequest) -> Result<Deployment, RemoteError> {
        self.authenticated("Get", &request)?;
        self.get(request.twin, request.contract).await
    }
    async fn signed_list(&self, request: TwinRequest) -> Result<Vec<Deployment>, RemoteError> {
        self.authenticated("List", &request)?;
        self.list(request.twin).await
    }
    async fn signed_changes(&self, request: TwinRequest) -> Result<Vec<Workload>, RemoteError> {
        self.authenticated("Changes", &request)?;
        self.changes(request.twin, request.contract).await
    }
    async fn list_private_ips(&self, twin: u32, network: String) -> Result<Vec<String>, RemoteError> {
        blocking(|| {
            let store = self.engine.store();
            let mut ips = Vec::new();
            for contract in store.by_twin(twin)? {
                for workload in store.get(twin, contract)?.workloads {
                    if let WorkloadData::ZMachine(vm) = &workload.data
                        && workload.result.state.is_okay()
                    {
                        ips.extend(
                            vm.network
                                .interfaces
                                .iter()
                                .filter(|i| i.network == network)
                                .filter_map(|i| i.ip.map(|ip| ip.to_string())),
                        );
                    }
                }
            }
            Ok(ips)
        })
    }
}

impl Service {
    /// Runs the reconciler.
    pub async fn drift(&self) -> Result<Vec<DriftReport>, RemoteError> {
        let (settled, unsettled) = blocking(|| self.engine.reconciled_workloads())?;
        self.modules.reconcile(&settled, &unsettled).await.map_err(|err| RemoteError::new("unavailable", err))
    }
}

impl StatisticsModule for Service {
    async fn total(&self) -> Result<Capacity, RemoteError> {
        Ok(self.engine.counters().total)
    }
    async fn current(&self) -> Result<Capacity, RemoteError> {
        Ok(self.engine.counters().used)
    }
    async fn workloads(&self) -> Result<u64, RemoteError> {
        Ok(self.engine.counters().users.workloads)
    }
    async fn get_counters(&self) -> Result<Counters, RemoteError> {
        Ok(self.engine.counters())
    }
    async fn list_gpus(&self) -> Result<Vec<GpuUse>, RemoteError> {
        let ledger = self.engine.ledger_snapshot();
        Ok(ledger
            .gpu_holders()
            .map(|(gpu, holder)| GpuUse {
                id: gpu.id.clone(),
                vendor: gpu.vendor.clone(),
                device: gpu.device.clone(),
                contract: holder.and_then(|id| id.parts()).map_or(0, |(_, contract, _)| contract),
            })
            .collect())
    }
}
