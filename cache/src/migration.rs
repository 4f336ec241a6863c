//! Schema 1 to the current schema, at open. Schema 1 kept each active workload under its own `W` key,
//! one `R` key per workload and one workload per `H` step: eleven keys to create a deployment of three
//! workloads. Schema 2 keeps a deployment whole (`crate::key`): four keys; the records it writes are
//! valid in schema 3, which only lets a new record hold its first log step. The store is rewritten into
//! a fresh copy swapped in by renames (`crate::compaction::rewrite`), so a crash or a failure during
//! the migration leaves the schema 1 store as it was, to be migrated at the next open.

use crate::compaction::{Fresh, rewrite};
use crate::error::StoreError;
use crate::key;
use crate::store::{Record, Reservations, SCHEMA, SCHEMA_VERSION, Stored, decode, encode, open_engine};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;
use zos_types::{ReservationRecord, SignatureRequirement, Workload};

/// Schema 1's `W` tag: an active workload under (twin, contract, name).
const V1_WORKLOAD: u8 = b'W';

/// Schema 1's `D` value: the workloads by name only.
#[derive(Deserialize)]
struct V1Deployment {
    version: u32,
    metadata: String,
    description: String,
    signature_requirement: SignatureRequirement,
    workloads: Vec<String>,
    next_seq: u64,
}

/// Migrates the store at `path` when it is of schema 1; any other store is left as it is.
pub(crate) fn migrate(path: &Path) -> Result<(), StoreError> {
    if !path.join("db").exists() {
        return Ok(());
    }
    let schema = {
        let db = open_engine(path)?;
        db.open_tree("zos")?.get(key::meta(SCHEMA))?
    };
    if schema.as_deref() != Some(b"1".as_slice()) {
        return Ok(());
    }
    tracing::info!(store = %path.display(), "migrating the store from schema 1 to {SCHEMA_VERSION}");
    rewrite(path, |from, to| {
        let mut group: Option<((u32, u64), Reservations)> = None;
        for item in from.iter() {
            let (k, v) = item?;
            let tag = k.first().copied();
            if tag != Some(key::RESERVATION) {
                flush(to, group.take())?;
            }
            match tag {
                Some(key::META) if k.as_ref() == key::meta(SCHEMA).as_slice() => {
                    to.insert(k, SCHEMA_VERSION.to_string().as_bytes())?;
                }
                Some(key::DEPLOYMENT) => to.insert(k.clone(), deployment(from, &k, &v)?)?,
                Some(key::HISTORY) => {
                    let step: Workload = decode(&k, &v)?;
                    to.insert(k, encode(&[step]))?;
                }
                Some(key::RESERVATION) => {
                    let (twin, contract, name) =
                        key::twin_contract_name(&k).ok_or_else(|| corrupt(&k, "bad schema 1 reservation key"))?;
                    let record: ReservationRecord = decode(&k, &v)?;
                    match &mut group {
                        Some((ids, records)) if *ids == (twin, contract) => {
                            records.insert(name, record);
                        }
                        _ => {
                            flush(to, group.take())?;
                            group = Some(((twin, contract), Reservations::from([(name, record)])));
                        }
                    }
                }
                // Read through their deployments.
                Some(V1_WORKLOAD) => {}
                _ => to.insert(k, v)?,
            }
        }
        flush(to, group)
    })
}

fn corrupt(k: &[u8], err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: key::printable(k), message: err.to_string() }
}

/// Writes one deployment's reservations, gathered from its schema 1 keys.
fn flush(to: &mut Fresh, group: Option<((u32, u64), Reservations)>) -> Result<(), StoreError> {
    let Some(((twin, contract), records)) = group else {
        return Ok(());
    };
    let k = key::reservation(twin, contract);
    to.insert(k, encode(&records))
}

/// A deployment record (with its log's steps under `H`, as schema 2 wrote it) from a schema 1 `D` value and the `W` records it names.
fn deployment(from: &sled::Tree, k: &[u8], v: &[u8]) -> Result<Vec<u8>, StoreError> {
    let (twin, contract) = key::twin_contract(k).ok_or_else(|| corrupt(k, "bad schema 1 deployment key"))?;
    let old: V1Deployment = decode(k, v)?;
    let workloads = old
        .workloads
        .iter()
        .map(|name| {
            let mut wk = key::scoped(V1_WORKLOAD, twin, contract);
            wk.extend_from_slice(name.as_bytes());
            let bytes = from.get(&wk)?.ok_or_else(|| corrupt(&wk, "workload named by its deployment is missing"))?;
            decode::<Workload>(&wk, &bytes)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let record: Stored = Record {
        version: old.version,
        metadata: Cow::Owned(old.metadata),
        description: Cow::Owned(old.description),
        signature_requirement: Cow::Owned(old.signature_requirement),
        workloads: Cow::Owned(workloads),
        next_seq: old.next_seq,
    };
    Ok(encode(&record))
}
