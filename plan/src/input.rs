//! Reading input files with errors that name the file, the line and the field at fault.

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads and decodes a JSON file. A decoding error reads
/// `FILE:LINE:COLUMN: at FIELD.PATH: what is wrong`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    zos_planner::document::parse(&text).map_err(|err| anyhow!("{}:{err}", path.display()))
}
