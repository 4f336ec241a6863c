//! Reading input files with errors that name the file, the line and the field at fault.

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads and decodes a JSON file. A decoding error reads
/// `FILE:LINE:COLUMN: at FIELD.PATH: what is wrong`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_json(&text).map_err(|err| anyhow!("{}:{err}", path.display()))
}

/// Decodes JSON text; the error starts with `LINE:COLUMN:` and names the field path.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = (inner.line(), inner.column());
        // serde_json appends " at line L column C" to its message; we say it up front instead.
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        if path == "." || path.is_empty() {
            format!("{line}:{column}: {message}")
        } else {
            format!("{line}:{column}: at {path}: {message}")
        }
    })?;
    deserializer.end().map_err(|err| format!("{}:{}: {err}", err.line(), err.column()))?;
    Ok(value)
}
