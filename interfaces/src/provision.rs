//! `provision@0.0.1` and `statistics@0.0.1`: provisiond's deployment API and capacity statistics
//! (ZOS `pkg/provision.go`, `pkg/statistics.go`).

use serde::{Deserialize, Serialize};
use zos_planner::Shortfall;
use zos_types::{Capacity, Deployment, TwinRequest, Workload};

/// The verdict on one workload of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadOutcome {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `admit` or `reject`.
    pub verdict: String,
    /// Every shortfall of a rejected workload.
    #[serde(default)]
    pub shortfalls: Vec<Shortfall>,
}

/// The answer to `CreateOrUpdate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// Stored, with its job; false: refused at the door and nothing stored.
    pub accepted: bool,
    /// The job that runs it.
    pub job: Option<u64>,
    /// Each workload judged (empty when accepted without a judgement to show).
    pub workloads: Vec<WorkloadOutcome>,
}

/// A disagreement between what the node holds and what the modules report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftReport {
    /// `missing` (held, but the module has nothing) or `orphan` (the module has it, nothing holds it).
    pub kind: String,
    /// `storage`, `network` or `vm`.
    pub module: String,
    /// The resource (volume, vdisk, network id, tap).
    pub resource: String,
    /// The workload it belongs to (`twin-contract-name`), empty when no workload is known for it.
    #[serde(default)]
    pub workload: String,
    /// That workload's state (`ok`, `paused`, ...), `none` when no workload holds the resource.
    #[serde(default)]
    pub state: String,
}

/// A GPU and the contract using it (0 when free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuUse {
    /// PCI slot.
    pub id: String,
    /// Vendor id.
    pub vendor: String,
    /// Device id.
    pub device: String,
    /// Contract holding it, 0 when free.
    pub contract: u64,
}

/// A workload's new state, for the operators' stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateChange {
    /// The workload (`twin-contract-name`).
    pub id: String,
    /// Its new state.
    pub state: String,
    /// The message that came with it.
    pub message: String,
}

/// What a twin's workloads use, in ZOS's `Counters.users` shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsersCounters {
    /// Deployments holding capacity.
    pub deployments: u64,
    /// Workloads holding capacity.
    pub workloads: u64,
    /// When the newest running workload got its result (0 when none), as ZOS reports it.
    #[serde(default)]
    pub last_deployment_timestamp: i64,
}

/// ZOS's `GetCounters`: `{total, used, system, users}`; `used` includes the system's reservation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// The node's capacity.
    pub total: zos_types::Capacity,
    /// What workloads hold plus what the system keeps.
    pub used: zos_types::Capacity,
    /// What the system keeps.
    pub system: zos_types::Capacity,
    /// Deployments and workloads holding capacity.
    pub users: UsersCounters,
}

zos_zbus::interface! {
    /// provisiond's deployment API.
    pub trait ProvisionModule, client ProvisionClient, server ProvisionServer, object("provision", "0.0.1") {
        /// Creates (`update = false`) or updates a twin's deployment; refused at the door when it does not fit.
        "CreateOrUpdate" => fn create_or_update(twin: u32, deployment: Deployment, update: bool) -> Admission;
        /// Queues the removal of a deployment; returns the job.
        "Deprovision" => fn deprovision(twin: u32, contract: u64, reason: String) -> u64;
        /// Queues pausing a deployment.
        "Pause" => fn pause(twin: u32, contract: u64) -> u64;
        /// Queues resuming a deployment.
        "Resume" => fn resume(twin: u32, contract: u64) -> u64;
        /// A twin's deployment with its current results.
        "Get" => fn get(twin: u32, contract: u64) -> Deployment;
        /// A twin's deployments.
        "List" => fn list(twin: u32) -> Vec<Deployment>;
        /// The result log of a twin's deployment.
        "Changes" => fn changes(twin: u32, contract: u64) -> Vec<Workload>;
        /// A workload's state by id (`twin-contract-name`), and whether it exists.
        "GetWorkloadStatus" => fn get_workload_status(id: String) -> (String, bool);
        /// Public IPv4 addresses held by workloads.
        "ListPublicIPs" => fn list_public_ips() -> Vec<String>;
        /// Private addresses of a twin's VMs on one of its networks.
        "ListPrivateIPs" => fn list_private_ips(twin: u32, network: String) -> Vec<String>;
        /// Compares what the node holds with what storaged and networkd report.
        "Reconcile" => fn reconcile() -> Vec<DriftReport>;
        /// `Deprovision` for a twin's signed request (operation `Deprovision`): what `zosctl` uses. The
        /// unsigned methods serve the node's own modules on the root-only socket.
        "SignedDeprovision" => fn signed_deprovision(request: TwinRequest, reason: String) -> u64;
        /// `Pause` for a twin's signed request (operation `Pause`).
        "SignedPause" => fn signed_pause(request: TwinRequest) -> u64;
        /// `Resume` for a twin's signed request (operation `Resume`).
        "SignedResume" => fn signed_resume(request: TwinRequest) -> u64;
        /// `Get` for a twin's signed request (operation `Get`).
        "SignedGet" => fn signed_get(request: TwinRequest) -> Deployment;
        /// `List` for a twin's signed request (operation `List`, contract 0).
        "SignedList" => fn signed_list(request: TwinRequest) -> Vec<Deployment>;
        /// `Changes` for a twin's signed request (operation `Changes`).
        "SignedChanges" => fn signed_changes(request: TwinRequest) -> Vec<Workload>;
    }
}

zos_zbus::interface! {
    /// provisiond's capacity statistics.
    pub trait StatisticsModule, client StatisticsClient, server StatisticsServer, object("statistics", "0.0.1") {
        /// The node's capacity.
        "Total" => fn total() -> Capacity;
        /// What is used, the system's reservation included.
        "Current" => fn current() -> Capacity;
        /// Workloads holding capacity.
        "Workloads" => fn workloads() -> u64;
        /// ZOS's counters.
        "GetCounters" => fn get_counters() -> Counters;
        /// GPUs and who uses them.
        "ListGPUs" => fn list_gpus() -> Vec<GpuUse>;
    }
}
