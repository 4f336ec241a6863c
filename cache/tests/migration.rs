//! A store written by schema 1 (one `W` key per workload, one `R` key per reservation, one workload
//! per log step) is migrated at open to the current schema with nothing lost; a migration that cannot finish
//! leaves the schema 1 store as it was.

use serde_json::json;
use zos_cache::{SCHEMA_VERSION, Store, StoreError};
use zos_types::{
    ReservationRecord, ResultState, SignatureRequirement, Timestamp, Workload, WorkloadId, WorkloadResult,
};

fn scoped(tag: u8, twin: u32, contract: u64) -> Vec<u8> {
    let mut key = vec![tag];
    key.extend_from_slice(&twin.to_be_bytes());
    key.extend_from_slice(&contract.to_be_bytes());
    key
}

fn named(tag: u8, twin: u32, contract: u64, name: &str) -> Vec<u8> {
    let mut key = scoped(tag, twin, contract);
    key.extend_from_slice(name.as_bytes());
    key
}

fn seq(tag: u8, twin: u32, contract: u64, seq: u64) -> Vec<u8> {
    let mut key = scoped(tag, twin, contract);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn workload(name: &str, kind: &str, state: ResultState, created: i64) -> Workload {
    let mut wl: Workload =
        serde_json::from_value(json!({"name": name, "type": kind, "data": {"size": 10}})).expect("workload");
    wl.result = WorkloadResult { created: Timestamp(created), state, ..WorkloadResult::default() };
    wl
}

fn bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

fn reservation(wl: &Workload) -> ReservationRecord {
    ReservationRecord { capacity: wl.capacity(), ..ReservationRecord::default() }
}

/// Deployment 1-10 (a zmount run to `ok` and a sharable network, three log steps) and 2-20 (one volume
/// with a queued job), as schema 1 wrote them, in a fresh directory. `vm_missing` leaves out 1-10's `vm` workload record.
fn schema_1_store(vm_missing: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    let db = sled::open(&path).expect("sled");
    let tree = db.open_tree("zos").expect("tree");
    let vm_init = workload("vm", "zmount", ResultState::Init, 1);
    let vm_ok = workload("vm", "zmount", ResultState::Ok, 2);
    let net = workload("net", "network", ResultState::Init, 1);
    let disk = workload("disk", "volume", ResultState::Init, 3);
    let header = |names: &[&str], next_seq: u64| {
        bytes(&json!({
            "version": 1,
            "metadata": "some metadata",
            "description": "description",
            "signature_requirement": SignatureRequirement::default(),
            "workloads": names,
            "next_seq": next_seq,
        }))
    };
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"Mschema".to_vec(), b"1".to_vec()),
        (b"Mgeneration".to_vec(), b"5".to_vec()),
        (b"Mjob_seq".to_vec(), b"2".to_vec()),
        (scoped(b'D', 1, 10), header(&["vm", "net"], 4)),
        (named(b'W', 1, 10, "net"), bytes(&net)),
        (seq(b'H', 1, 10, 1), bytes(&vm_init)),
        (seq(b'H', 1, 10, 2), bytes(&net)),
        (seq(b'H', 1, 10, 3), bytes(&vm_ok)),
        (named(b'R', 1, 10, "net"), bytes(&reservation(&net))),
        (named(b'R', 1, 10, "vm"), bytes(&reservation(&vm_ok))),
        ([b"S".as_slice(), &1u32.to_be_bytes(), b"net"].concat(), b"10".to_vec()),
        (scoped(b'D', 2, 20), header(&["disk"], 2)),
        (named(b'W', 2, 20, "disk"), bytes(&disk)),
        (seq(b'H', 2, 20, 1), bytes(&disk)),
        (named(b'R', 2, 20, "disk"), bytes(&reservation(&disk))),
        (
            [b"J".as_slice(), &2u64.to_be_bytes()].concat(),
            bytes(&json!({"op": "provision", "twin": 2, "contract": 20, "reason": "", "remove": []})),
        ),
    ];
    if !vm_missing {
        records.push((named(b'W', 1, 10, "vm"), bytes(&vm_ok)));
    }
    for (key, value) in records {
        tree.insert(key, value).expect("insert");
    }
    db.flush().expect("flush");
    (dir, path)
}

#[test]
fn schema_1_store_is_migrated_with_nothing_lost() {
    let (dir, path) = schema_1_store(false);
    let store = Store::open(&path).expect("migrated");
    assert_eq!(SCHEMA_VERSION, 3);
    let dl = store.get(1, 10).expect("1-10");
    let names: Vec<_> = dl.workloads.iter().map(|wl| (wl.name.as_str(), wl.result.state)).collect();
    assert_eq!(names, vec![("vm", ResultState::Ok), ("net", ResultState::Init)]);
    assert_eq!((dl.version, dl.metadata.as_str(), dl.description.as_str()), (1, "some metadata", "description"));
    assert_eq!(store.current(1, 10, "vm").expect("vm").result.created, Timestamp(2));
    let log: Vec<_> = store.changes(1, 10).expect("log").into_iter().map(|wl| (wl.name, wl.result.state)).collect();
    assert_eq!(
        log,
        vec![("vm".into(), ResultState::Init), ("net".into(), ResultState::Init), ("vm".into(), ResultState::Ok)]
    );
    let mut reserved: Vec<WorkloadId> =
        store.reservations().expect("reservations").into_iter().map(|(id, _)| id).collect();
    reserved.sort_by_key(|id| id.to_string());
    let expected = vec![WorkloadId::new(1, 10, "net"), WorkloadId::new(1, 10, "vm"), WorkloadId::new(2, 20, "disk")];
    assert_eq!(reserved, expected);
    assert_eq!(
        store.reservation(2, 20, "disk").expect("read").map(|r| r.capacity),
        Some(workload("disk", "volume", ResultState::Init, 3).capacity())
    );
    assert_eq!(store.jobs().expect("jobs").len(), 1);
    assert_eq!(store.generation().expect("generation"), 5);
    assert_eq!(store.check_consistency().expect("check"), vec![]);
    // The log goes on where schema 1 left it, the sharable name is still held, and it all survives a
    // reopen of the migrated store.
    let mut txn = store.begin();
    txn.record(1, 10, &workload("net", "network", ResultState::Ok, 4)).expect("record");
    txn.commit().expect("commit");
    let mut txn = store.begin();
    let taken = txn.create(&zos_types::Deployment {
        twin_id: 1,
        contract_id: 11,
        workloads: vec![workload("net", "network", ResultState::Init, 5)],
        ..zos_types::Deployment::default()
    });
    assert!(matches!(taken, Err(StoreError::DeploymentConflict(_))), "{taken:?}");
    drop(txn);
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.changes(1, 10).expect("log").len(), 4);
    assert_eq!(store.current(1, 10, "net").expect("net").result.state, ResultState::Ok);
    assert!(!dir.path().join("state.compact").exists() && !dir.path().join("state.old").exists());
}

#[test]
fn schema_1_store_that_cannot_be_migrated_is_left_as_it_was() {
    let (dir, path) = schema_1_store(true);
    let err = Store::open(&path).expect_err("a deployment names a missing workload");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!dir.path().join("state.compact").exists(), "the half copy is removed");
    let db = sled::open(&path).expect("still there");
    let tree = db.open_tree("zos").expect("tree");
    assert_eq!(tree.get(b"Mschema").expect("read").as_deref(), Some(b"1".as_slice()));
    assert!(tree.get(named(b'W', 2, 20, "disk")).expect("read").is_some());
}

/// A store written by schema 2 (every record's first log step under `H`) opens as schema 3 with no
/// record rewritten: its log reads whole, goes on where it was, and the store says schema 3 after.
#[test]
fn schema_2_store_opens_as_schema_3_with_its_log_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    let vm = workload("vm", "zmount", ResultState::Init, 1);
    {
        let db = sled::open(&path).expect("sled");
        let tree = db.open_tree("zos").expect("tree");
        let record = json!({
            "version": 0,
            "metadata": "",
            "description": "",
            "signature_requirement": SignatureRequirement::default(),
            "workloads": [vm],
            "next_seq": 2,
        });
        let records: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"Mschema".to_vec(), b"2".to_vec()),
            (b"Mgeneration".to_vec(), b"1".to_vec()),
            (scoped(b'D', 1, 10), bytes(&record)),
            (seq(b'H', 1, 10, 1), bytes(&[&vm])),
            (scoped(b'R', 1, 10), bytes(&json!({"vm": reservation(&vm)}))),
        ];
        for (key, value) in records {
            tree.insert(key, value).expect("insert");
        }
        db.flush().expect("flush");
    }
    let store = Store::open(&path).expect("schema 2 opens");
    let log = |store: &Store| -> Vec<_> {
        store.changes(1, 10).expect("log").into_iter().map(|wl| (wl.name, wl.result.state)).collect()
    };
    assert_eq!(log(&store), vec![("vm".to_string(), ResultState::Init)]);
    let mut txn = store.begin();
    txn.record(1, 10, &workload("vm", "zmount", ResultState::Ok, 2)).expect("record");
    txn.commit().expect("commit");
    let expected = vec![("vm".to_string(), ResultState::Init), ("vm".to_string(), ResultState::Ok)];
    assert_eq!(log(&store), expected);
    assert_eq!(store.check_consistency().expect("check"), vec![]);
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert_eq!(log(&store), expected);
    drop(store);
    // sled releases its lock from a background thread a moment after the handle is dropped.
    let db = (0..50)
        .find_map(|_| {
            let db = sled::open(&path).ok();
            if db.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            db
        })
        .expect("sled");
    let schema = db.open_tree("zos").expect("tree").get(b"Mschema").expect("read");
    assert_eq!(schema.as_deref(), Some(b"3".as_slice()));
}
