//! JSON documents (scenarios, farms, requests) decoded with errors that name the line, column and field.

use serde::de::DeserializeOwned;

/// Decodes JSON text; the error starts with `LINE:COLUMN:` and names the field path.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
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
