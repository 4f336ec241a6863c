//! Workload results and their states (ZOS `gridtypes/workload.go`).

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Seconds since the Unix epoch. Reads a JSON integer or an RFC 3339 string, as ZOS does;
/// writes an integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(secs) => Ok(Timestamp(secs)),
            Raw::Text(text) => {
                let parsed = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|err| serde::de::Error::custom(format!("invalid timestamp '{text}': {err}")))?;
                Ok(Timestamp(parsed.unix_timestamp()))
            }
        }
    }
}

/// The state of a workload's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultState {
    /// No result yet (the empty string on the wire): a workload sent by a user.
    #[default]
    #[serde(rename = "")]
    None,
    /// First state in storage.
    Init,
    /// An action failed but the previous state still holds; skipped when reading the current state.
    Unchanged,
    /// The workload failed.
    Error,
    /// The workload runs.
    Ok,
    /// The workload was deleted.
    Deleted,
    /// The workload is paused; it still holds its capacity.
    Paused,
}

impl ResultState {
    /// ZOS's `IsOkay`: `ok` or `paused`, the states that hold capacity.
    pub fn is_okay(self) -> bool {
        matches!(self, ResultState::Ok | ResultState::Paused)
    }

    /// The state as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultState::None => "",
            ResultState::Init => "init",
            ResultState::Unchanged => "unchanged",
            ResultState::Error => "error",
            ResultState::Ok => "ok",
            ResultState::Deleted => "deleted",
            ResultState::Paused => "paused",
        }
    }
}

impl fmt::Display for ResultState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result a node attaches to a workload: `{"created", "state", "message", "data"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkloadResult {
    /// When the result was produced.
    pub created: Timestamp,
    /// The state.
    pub state: ResultState,
    /// The error text when `state` is `error`.
    #[serde(rename = "message")]
    pub error: String,
    /// Type-specific output (raw JSON).
    pub data: serde_json::Value,
}

impl WorkloadResult {
    /// ZOS's `Result.Valid`: a stored result needs a creation time and a known state.
    pub fn validate(&self) -> Result<(), String> {
        if self.created.0 == 0 {
            return Err("created time must be set".into());
        }
        if self.state == ResultState::None {
            return Err("invalid result state".into());
        }
        Ok(())
    }

    /// ZOS's `Result.IsNil`: no state, no time, no data.
    pub fn is_nil(&self) -> bool {
        self.state == ResultState::None && self.created.0 == 0 && self.data.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream `TestTimestamp` (gridtypes/workload_test.go).
    #[test]
    fn timestamp_reads_int_and_rfc3339() {
        let ts: Timestamp = serde_json::from_str("1234").expect("int");
        assert_eq!(ts, Timestamp(1234));
        let ts: Timestamp = serde_json::from_str("\"2021-01-02T03:04:05Z\"").expect("rfc3339");
        assert_eq!(ts, Timestamp(1_609_556_645));
        let ts: Timestamp = serde_json::from_str("\"2021-01-02T05:04:05+02:00\"").expect("offset");
        assert_eq!(ts, Timestamp(1_609_556_645));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn states_round_trip() {
        for state in ["init", "unchanged", "error", "ok", "deleted", "paused", ""] {
            let parsed: ResultState = serde_json::from_str(&format!("\"{state}\"")).expect("state");
            assert_eq!(parsed.as_str(), state);
        }
        assert!(serde_json::from_str::<ResultState>("\"running\"").is_err());
        assert!(ResultState::Ok.is_okay() && ResultState::Paused.is_okay());
        assert!(!ResultState::Init.is_okay() && !ResultState::Error.is_okay() && !ResultState::Deleted.is_okay());
    }

    #[test]
    fn result_json_shape() {
        let result: WorkloadResult =
            serde_json::from_str(r#"{"created": 5, "state": "error", "message": "boom", "data": null, "extra": 1}"#)
                .expect("result");
        assert_eq!(result.error, "boom");
        assert!(result.validate().is_ok());
        assert!(WorkloadResult::default().is_nil());
        assert_eq!(WorkloadResult::default().validate(), Err("created time must be set".to_string()));
    }
}
