//! What the store's tests share: a deployment of one zmount in `init`, carrying `text` bytes of
//! description so that tests can make it as large as they need.

use serde_json::json;
use zos_types::{Deployment, ResultState, Timestamp, Workload, WorkloadResult};

/// Deployment `contract` of twin 1 with a description of `text` bytes.
pub fn deployment(contract: u64, text: usize) -> Deployment {
    let mut wl: Workload =
        serde_json::from_value(json!({"name": "disk", "type": "zmount", "data": {"size": 1024}})).expect("wl");
    wl.result = WorkloadResult { created: Timestamp(1), state: ResultState::Init, ..WorkloadResult::default() };
    Deployment {
        twin_id: 1,
        contract_id: contract,
        description: "x".repeat(text),
        workloads: vec![wl],
        ..Deployment::default()
    }
}
