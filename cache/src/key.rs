//! Key layout of the single sled tree (schema 3). Every key starts with a one-byte table tag; numbers
//! are big-endian so that keys sort by twin, then contract, then sequence. A deployment's records are
//! few and whole (one `D`, one `R`, one `H` per change), so creating one writes three keys (`D`, `R`
//! and its job's `J`), whatever the number of its workloads: a new `D` record holds its log's first
//! step itself until it first changes (schema 2 wrote that step under `H` at once).
//!
//! | tag | key | value |
//! |---|---|---|
//! | `M` | name | store metadata (`schema`, `generation`, `job_seq`) |
//! | `D` | twin, contract | the deployment: version, texts, signature requirement, its active workloads in order with their current results, log sequence |
//! | `H` | twin, contract, sequence | the append-only log of results: each step, the whole of every workload it changed (the first step is written when the `D` record first changes) |
//! | `S` | twin, name | sharable name registry: the contract that owns the name |
//! | `R` | twin, contract | the reservations the ledger granted the deployment's workloads, by name |
//! | `J` | sequence | a queued job |
//! | `X` | twin, contract | a delete asked for and not done yet: its reason |
//! | `C` | twin, contract, name | a failed workload whose cleanup failed: to be cleaned up again |
//!
//! Schema 1 also had `W` (twin, contract, name: an active workload), one `R` per workload (twin,
//! contract, name) and one workload per `H`; `crate::migration` rewrites it.

pub(crate) const META: u8 = b'M';
pub(crate) const DEPLOYMENT: u8 = b'D';
pub(crate) const HISTORY: u8 = b'H';
pub(crate) const SHARABLE: u8 = b'S';
pub(crate) const RESERVATION: u8 = b'R';
pub(crate) const JOB: u8 = b'J';
pub(crate) const DELETING: u8 = b'X';
pub(crate) const CLEANUP: u8 = b'C';

pub(crate) fn meta(name: &str) -> Vec<u8> {
    let mut key = vec![META];
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn deployment(twin: u32, contract: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(13);
    key.push(DEPLOYMENT);
    key.extend_from_slice(&twin.to_be_bytes());
    key.extend_from_slice(&contract.to_be_bytes());
    key
}

pub(crate) fn twin_deployments(twin: u32) -> Vec<u8> {
    let mut key = vec![DEPLOYMENT];
    key.extend_from_slice(&twin.to_be_bytes());
    key
}

pub(crate) fn scoped(tag: u8, twin: u32, contract: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.push(tag);
    key.extend_from_slice(&twin.to_be_bytes());
    key.extend_from_slice(&contract.to_be_bytes());
    key
}

pub(crate) fn reservation(twin: u32, contract: u64) -> Vec<u8> {
    scoped(RESERVATION, twin, contract)
}

pub(crate) fn deleting(twin: u32, contract: u64) -> Vec<u8> {
    scoped(DELETING, twin, contract)
}

pub(crate) fn cleanup(twin: u32, contract: u64, name: &str) -> Vec<u8> {
    let mut key = scoped(CLEANUP, twin, contract);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn history_prefix(twin: u32, contract: u64) -> Vec<u8> {
    scoped(HISTORY, twin, contract)
}

pub(crate) fn history(twin: u32, contract: u64, seq: u64) -> Vec<u8> {
    let mut key = scoped(HISTORY, twin, contract);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn sharable(twin: u32, name: &str) -> Vec<u8> {
    let mut key = vec![SHARABLE];
    key.extend_from_slice(&twin.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn job(seq: u64) -> Vec<u8> {
    let mut key = vec![JOB];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `(twin, contract)` of a `D`, `H`, `R`, `X` or `C` key.
pub(crate) fn twin_contract(key: &[u8]) -> Option<(u32, u64)> {
    let twin = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
    let contract = u64::from_be_bytes(key.get(5..13)?.try_into().ok()?);
    Some((twin, contract))
}

/// `(twin, contract, name)` of a `C` key (and of schema 1's `W` and `R` keys).
pub(crate) fn twin_contract_name(key: &[u8]) -> Option<(u32, u64, String)> {
    let (twin, contract) = twin_contract(key)?;
    let name = String::from_utf8(key.get(13..)?.to_vec()).ok()?;
    Some((twin, contract, name))
}

/// `(twin, name)` of an `S` key.
pub(crate) fn twin_name(key: &[u8]) -> Option<(u32, String)> {
    let twin = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
    let name = String::from_utf8(key.get(5..)?.to_vec()).ok()?;
    Some((twin, name))
}

/// The sequence number of a `J` key.
pub(crate) fn job_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// A key in printable form, for error messages.
pub(crate) fn printable(key: &[u8]) -> String {
    key.iter().map(|&b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("\\x{b:02x}") }).collect()
}
