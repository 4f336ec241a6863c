//! Reading input files with errors that name the file, the line and the field at fault.

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// A decoding error: where, and what is wrong. Displays as `FILE:LINE:COLUMN: at PATH: message`.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    /// The file (`-` for stdin).
    pub file: String,
    /// Line, from 1 (0 when unknown).
    pub line: usize,
    /// Column, from 1 (0 when unknown).
    pub column: usize,
    /// The field path, e.g. `node.mru` (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "at {}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for InputError {}

impl InputError {
    /// Splits the planner's `LINE:COLUMN: [at PATH: ]message`.
    fn from_document(file: &str, text: &str) -> InputError {
        let mut parts = text.splitn(3, ':');
        let line = parts.next().and_then(|it| it.trim().parse().ok());
        let column = parts.next().and_then(|it| it.trim().parse().ok());
        let rest = parts.next().unwrap_or_default().trim_start();
        match (line, column) {
            (Some(line), Some(column)) => {
                let (path, message) = match rest.strip_prefix("at ").and_then(|it| it.split_once(": ")) {
                    Some((path, message)) => (path.to_string(), message.to_string()),
                    None => (String::new(), rest.to_string()),
                };
                InputError { file: file.to_string(), line, column, path, message }
            }
            _ => InputError { file: file.to_string(), line: 0, column: 0, path: String::new(), message: text.into() },
        }
    }
}

/// Reads a file, or stdin for `-`.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Reads and decodes a JSON file (`-`: stdin). A decoding error is an [`InputError`]. The fields
/// inside workload data that the decoding ignored (ZOS shapes ignore unknown fields, so a misspelt `compute_capacty` is read as no field at all): each is printed as a
/// WARNING on stderr with its path.
pub fn read_json_warn<T: DeserializeOwned + Serialize>(path: &Path) -> anyhow::Result<T> {
    decode_warn(path, &read_text(path)?)
}

/// [`read_json_warn`] on text already read from `path`.
pub fn decode_warn<T: DeserializeOwned + Serialize>(path: &Path, text: &str) -> anyhow::Result<T> {
    let value: T = zos_planner::document::parse(text)
        .map_err(|err| refine(text, InputError::from_document(&path.display().to_string(), &err)))?;
    if let (Ok(input), Ok(decoded)) = (serde_json::from_str::<Value>(text), serde_json::to_value(&value)) {
        let mut ignored = Vec::new();
        ignored_fields(&input, &decoded, "", false, &mut ignored);
        for field in ignored {
            eprintln!("zos-plan: WARNING: {}: unknown field {field} is ignored", path.display());
        }
    }
    Ok(value)
}

/// Other names a field is read under (`#[serde(alias)]`), which come back under their main name.
const ALIASES: [&str; 1] = ["ygg_ip"];

/// Keys of `input` that `decoded` (the decoded value written back) lacks, under a workload's `data`.
fn ignored_fields(input: &Value, decoded: &Value, path: &str, in_data: bool, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(input), Value::Object(decoded)) => {
            for (key, value) in input {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let inside = in_data || key == "data";
                match decoded.get(key) {
                    Some(back) => ignored_fields(value, back, &here, inside, out),
                    None => {
                        let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
                        if in_data && !empty && !ALIASES.contains(&key.as_str()) {
                            out.push(here);
                        }
                    }
                }
            }
        }
        (Value::Array(input), Value::Array(decoded)) => {
            for (i, (value, back)) in input.iter().zip(decoded).enumerate() {
                ignored_fields(value, back, &format!("{path}[{i}]"), in_data, out);
            }
        }
        _ => {}
    }
}

/// Says what a decoding error expected in words: `u64` is "a whole number from 0 to ...", a float
/// that stands for a too-large integer is shown as written in the file.
fn in_words(message: &str, raw: Option<&str>) -> String {
    let mut message = message.to_string();
    if let (Some(start), Some(raw)) = (message.find("floating point `"), raw)
        && let Some(end) = message.get(start + 16..).and_then(|tail| tail.find('`'))
    {
        message.replace_range(start..start + 16 + end + 1, &format!("number {raw}"));
    }
    for (ty, max) in [("u64", u64::MAX), ("u32", u64::from(u32::MAX)), ("u16", u64::from(u16::MAX)), ("u8", 255)] {
        message = message.replace(&format!("expected {ty}"), &format!("expected a whole number from 0 to {max}"));
    }
    message.replace("invalid type: ", "got ")
}

/// The number token that ends at byte `end` of `text` (serde_json reports the position after a value).
fn raw_number_before(text: &str, end: usize) -> Option<&str> {
    let head = text.get(..end)?;
    let start = head.rfind(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))? + 1;
    head.get(start..).filter(|raw| !raw.is_empty())
}

fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut offset = 0;
    for (i, row) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return Some(offset + column.min(row.len()));
        }
        offset += row.len();
    }
    None
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let head = text.get(..offset).unwrap_or(text);
    let line = head.matches('\n').count() + 1;
    let column = head.rfind('\n').map_or(head.len(), |nl| head.len() - nl - 1) + 1;
    (line, column)
}

/// The value at a path such as `requests[0].workloads[3]`.
fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut value = root;
    for part in path.split('.') {
        let (key, indices) = part.split_once('[').map_or((part, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            value = value.get(key)?;
        }
        for index in indices.split('[').filter(|it| !it.is_empty()) {
            value = value.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(value)
}

fn inner_error<T: DeserializeOwned>(data: &Value) -> Option<(String, String)> {
    match serde_path_to_error::deserialize::<_, T>(data.clone()) {
        Ok(_) => None,
        Err(err) => Some((err.path().to_string(), err.inner().to_string())),
    }
}

/// Makes a decoding error say more: a bad field inside workload data (decoded in a second pass, so
/// reported at the workload) is named by its full path and found at its own line and column; what
/// was expected is said in words.
pub fn refine(text: &str, mut error: InputError) -> InputError {
    let end = offset_of(text, error.line, error.column);
    if let Some(rest) = error.message.strip_prefix("invalid data of workload ")
        && let Some((head, _)) = rest.split_once("): ")
        && let Some(kind) = head.rsplit_once("(type ").map(|(_, kind)| kind.to_string())
        && let Ok(root) = serde_json::from_str::<Value>(text)
        && let Some(data) = value_at(&root, &error.path).and_then(|wl| wl.get("data"))
    {
        use zos_types::workload::{Network, Qsfs, Volume, ZMachine, ZMount, Zdb};
        let inner = match kind.as_str() {
            "zmachine" => inner_error::<ZMachine>(data),
            "zmount" => inner_error::<ZMount>(data),
            "volume" => inner_error::<Volume>(data),
            "zdb" => inner_error::<Zdb>(data),
            "qsfs" => inner_error::<Qsfs>(data),
            "network" => inner_error::<Network>(data),
            _ => None,
        };
        if let Some((path, message)) = inner {
            let keys: Vec<&str> = if path == "." { Vec::new() } else { path.split('.').collect() };
            error.path =
                format!("{}.data{}", error.path, if keys.is_empty() { String::new() } else { format!(".{path}") });
            error.message = format!("workload {head}): {}", in_words(&message, None));
            // Find the value in the text: the last `"data"` before the workload's end, then each key.
            if let Some(mut at) = end.and_then(|end| text.get(..end)).and_then(|head| head.rfind("\"data\"")) {
                let mut found = true;
                for key in keys.iter().filter(|key| !key.ends_with(']')) {
                    match text.get(at..).and_then(|tail| tail.find(&format!("\"{key}\""))) {
                        Some(pos) => at += pos + key.len() + 2,
                        None => found = false,
                    }
                }
                if found && let Some(colon) = text.get(at..).and_then(|tail| tail.find(':')) {
                    let value = at + colon + 1;
                    let skip = text.get(value..).map_or(0, |tail| tail.len() - tail.trim_start().len());
                    (error.line, error.column) = line_column(text, value + skip);
                }
            }
            return error;
        }
    }
    if error.message.contains("untagged enum RawPolicy") {
        let value = serde_json::from_str::<Value>(text).ok();
        error.message = policy_message(value.as_ref().and_then(|root| value_at(root, &error.path)));
        return error;
    }
    error.message = in_words(&error.message, end.and_then(|end| raw_number_before(text, end)));
    error
}

const POLICY_FIELDS: [&str; 4] = ["preset", "cpu_overcommit", "atomic", "reserved_mru"];

/// What is wrong with a policy, and what a policy can be.
fn policy_message(value: Option<&Value>) -> String {
    let accepted = "a policy is \"zos\", \"strict\", or an object with preset (\"zos\" or \"strict\"), \
                    cpu_overcommit (a number above 0), atomic (true or false) and reserved_mru (bytes)";
    let problem = match value {
        Some(Value::String(name)) => format!("unknown policy \"{name}\""),
        Some(Value::Object(object)) => {
            let unknown: Vec<&str> =
                object.keys().map(String::as_str).filter(|key| !POLICY_FIELDS.contains(key)).collect();
            match object.get("preset") {
                _ if !unknown.is_empty() => format!("unknown policy field {}", unknown.join(", ")),
                Some(Value::String(preset)) if preset != "zos" && preset != "strict" => {
                    format!("unknown preset \"{preset}\"")
                }
                _ => "a field of the wrong type".to_string(),
            }
        }
        Some(other) => format!("got {other}"),
        None => "not a policy".to_string(),
    };
    format!("{problem}: {accepted}")
}
