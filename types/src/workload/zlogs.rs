//! `zlogs`: streams a zmachine's logs to a URL; zero capacity.

use crate::workload::WorkloadType;
use crate::{Capacity, Challenge, Deployment};
use serde::{Deserialize, Serialize};

/// Data of a `zlogs` workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZLogs {
    /// Name of the zmachine of the same deployment.
    pub zmachine: String,
    /// Where the logs go: `redis://`, `ws://` or `wss://`.
    pub output: String,
}

impl ZLogs {
    pub(crate) fn validate(&self, deployment: &Deployment) -> Result<(), String> {
        let scheme = self.output.split_once("://").map(|(scheme, _)| scheme).unwrap_or_default();
        if !matches!(scheme, "redis" | "ws" | "wss") {
            return Err(format!("invalid output schema '{scheme}' not supported"));
        }
        let Some(machine) = deployment.workloads.iter().find(|wl| wl.name == self.zmachine) else {
            return Err(format!("vm '{}' does not exist", self.zmachine));
        };
        if machine.kind() != WorkloadType::ZMachine {
            return Err(format!(
                "expected type '{}' for '{}' got '{}'",
                WorkloadType::ZMachine,
                self.zmachine,
                machine.kind()
            ));
        }
        Ok(())
    }
    pub(crate) fn capacity(&self) -> Capacity {
        Capacity::default()
    }
    pub(crate) fn challenge(&self, c: &mut Challenge) {
        c.put(&self.zmachine);
        c.put(&self.output);
    }
}
