//! The upstream bolt-store scenarios (reference section 7.1, `pkg/provision/storage/storage_test.go`),
//! against the real on-disk store. Upstream's test types map to real ones: `type1` is `zmount`,
//! `type2` is `volume`, and the sharable `sharable1` is `network`.

use serde_json::json;
use zos_cache::{Store, StoreError};
use zos_types::{Deployment, ResultState, Timestamp, Workload, WorkloadResult};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state")).expect("open");
    (dir, store)
}

fn init() -> WorkloadResult {
    WorkloadResult { created: Timestamp(1), state: ResultState::Init, ..WorkloadResult::default() }
}

fn workload(name: &str, kind: &str) -> Workload {
    let mut wl: Workload =
        serde_json::from_value(json!({"name": name, "type": kind, "data": {"size": 10}})).expect("workload");
    wl.result = init();
    wl
}

fn deployment(twin: u32, contract: u64, workloads: Vec<Workload>) -> Deployment {
    Deployment {
        version: 1,
        twin_id: twin,
        contract_id: contract,
        description: "description".into(),
        metadata: "some metadata".into(),
        workloads,
        ..Deployment::default()
    }
}

fn create(store: &Store, dl: &Deployment) -> Result<(), StoreError> {
    let mut txn = store.begin();
    txn.create(dl)?;
    txn.commit()
}

#[test]
fn create_deployment() {
    let (_dir, store) = store();
    let dl = deployment(1, 10, vec![]);
    create(&store, &dl).expect("first create");
    assert!(matches!(create(&store, &dl), Err(StoreError::DeploymentExists)));
}

#[test]
fn create_deployment_with_workloads() {
    let (_dir, store) = store();
    let dl = deployment(1, 10, vec![workload("vm1", "zmount"), workload("vm2", "volume")]);
    create(&store, &dl).expect("create");
    assert!(matches!(create(&store, &dl), Err(StoreError::DeploymentExists)));
    assert_eq!(store.get(1, 10).expect("get").workloads.len(), 2);
}

#[test]
fn create_deployment_with_sharable_workloads_rolls_back_on_conflict() {
    let (_dir, store) = store();
    let first = deployment(1, 10, vec![workload("network", "network"), workload("vm1", "zmount")]);
    create(&store, &first).expect("create");
    let second = deployment(1, 11, first.workloads.clone());
    let err = create(&store, &second).expect_err("conflict");
    assert_eq!(err.to_string(), "global workload with the same name 'network' exists: conflict");
    let mut txn = store.begin();
    txn.remove_workload(1, 10, "networkd").expect("removing an unknown name is a no-op");
    txn.commit().expect("commit");
    assert!(matches!(create(&store, &second), Err(StoreError::DeploymentConflict(_))), "11 was not half-created");
    assert!(matches!(store.get(1, 11), Err(StoreError::DeploymentNotExists)));
    let structural: Vec<_> =
        store.check_consistency().expect("check").into_iter().filter(zos_cache::Drift::is_structural).collect();
    assert!(structural.is_empty(), "{structural:?}");
}

#[test]
fn add_workload() {
    let (_dir, store) = store();
    let mut txn = store.begin();
    assert!(matches!(txn.add_workload(1, 10, &workload("vm1", "zmount")), Err(StoreError::DeploymentNotExists)));
    drop(txn);
    create(&store, &deployment(1, 10, vec![])).expect("create");
    let mut txn = store.begin();
    txn.add_workload(1, 10, &workload("vm1", "zmount")).expect("add");
    txn.commit().expect("commit");
    let mut txn = store.begin();
    assert!(matches!(txn.add_workload(1, 10, &workload("vm1", "zmount")), Err(StoreError::WorkloadExists(_))));
}

#[test]
fn remove_workload_makes_the_name_reusable() {
    let (_dir, store) = store();
    create(&store, &deployment(1, 10, vec![])).expect("create");
    for step in ["add", "remove", "add again"] {
        let mut txn = store.begin();
        if step == "remove" {
            txn.remove_workload(1, 10, "vm1").expect(step);
        } else {
            txn.add_workload(1, 10, &workload("vm1", "zmount")).expect(step);
        }
        txn.commit().expect("commit");
    }
    assert_eq!(store.get(1, 10).expect("get").workloads.len(), 1);
}

#[test]
fn transactions() {
    let (_dir, store) = store();
    create(&store, &deployment(1, 10, vec![])).expect("create");
    assert!(matches!(store.current(1, 10, "vm1"), Err(StoreError::WorkloadNotExist)));
    let mut txn = store.begin();
    txn.add_workload(1, 10, &workload("vm1", "zmount")).expect("add");
    txn.commit().expect("commit");
    assert_eq!(store.current(1, 10, "vm1").expect("current").result.state, ResultState::Init);

    let mut txn = store.begin();
    assert!(matches!(txn.record(1, 10, &workload("unknown", "zmount")), Err(StoreError::WorkloadNotExist)));
    assert!(matches!(txn.record(1, 10, &workload("vm1", "volume")), Err(StoreError::InvalidWorkloadType { .. })));
    let mut ok = workload("vm1", "zmount");
    ok.result.state = ResultState::Ok;
    txn.record(1, 10, &ok).expect("record");
    txn.commit().expect("commit");
    let current = store.current(1, 10, "vm1").expect("current");
    assert_eq!(
        (current.name.as_str(), current.kind().as_str(), current.result.state),
        ("vm1", "zmount", ResultState::Ok)
    );
}

#[test]
fn unchanged_results_are_logged_but_not_current() {
    let (_dir, store) = store();
    create(&store, &deployment(1, 10, vec![workload("vm1", "zmount")])).expect("create");
    let mut unchanged = workload("vm1", "zmount");
    unchanged.result.state = ResultState::Unchanged;
    unchanged.result.error = "failed to update".into();
    let mut txn = store.begin();
    txn.record(1, 10, &unchanged).expect("record");
    txn.commit().expect("commit");
    assert_eq!(store.current(1, 10, "vm1").expect("current").result.state, ResultState::Init);
    assert_eq!(store.changes(1, 10).expect("changes").len(), 2);
}

#[test]
fn invalid_results_are_refused() {
    let (_dir, store) = store();
    let mut bad = workload("vm1", "zmount");
    bad.result.created = Timestamp(0);
    assert!(matches!(create(&store, &deployment(1, 10, vec![bad])), Err(StoreError::Invalid(_))));
}

#[test]
fn twins() {
    let (_dir, store) = store();
    create(&store, &deployment(2, 10, vec![])).expect("create");
    create(&store, &deployment(1, 10, vec![])).expect("create");
    create(&store, &deployment(1, 11, vec![])).expect("create");
    assert_eq!(store.twins().expect("twins"), vec![1, 2]);
    assert_eq!(store.by_twin(1).expect("by twin"), vec![10, 11]);
}

#[test]
fn get_round_trips_fields() {
    let (_dir, store) = store();
    let dl = deployment(1, 10, vec![workload("vm1", "zmount"), workload("vm2", "volume")]);
    create(&store, &dl).expect("create");
    let got = store.get(1, 10).expect("get");
    assert_eq!((got.version, got.twin_id, got.contract_id), (1, 1, 10));
    assert_eq!((got.description.as_str(), got.metadata.as_str()), ("description", "some metadata"));
    assert_eq!(got.workloads, dl.workloads);
}

#[test]
fn error_marks_every_workload() {
    let (_dir, store) = store();
    let mut txn = store.begin();
    assert!(matches!(txn.error(1, 10, "something is wrong", Timestamp(5)), Err(StoreError::DeploymentNotExists)));
    drop(txn);
    create(&store, &deployment(1, 10, vec![workload("vm1", "zmount"), workload("vm2", "volume")])).expect("create");
    let mut txn = store.begin();
    txn.error(1, 10, "something is wrong", Timestamp(5)).expect("error");
    txn.commit().expect("commit");
    for wl in store.get(1, 10).expect("get").workloads {
        assert_eq!((wl.result.state, wl.result.error.as_str()), (ResultState::Error, "something is wrong"));
    }
}

// Upstream `TestMigrate` moved a legacy store; here: mixed results and data survive a round trip.
#[test]
fn mixed_results_round_trip() {
    let (_dir, store) = store();
    let mut vm1 = workload("vm1", "zmount");
    vm1.result =
        WorkloadResult { created: Timestamp(7), state: ResultState::Ok, error: String::new(), data: json!("hello") };
    let mut vm2 = workload("vm2", "volume");
    vm2.result = WorkloadResult {
        created: Timestamp(7),
        state: ResultState::Error,
        error: "some error".into(),
        data: json!(null),
    };
    let dl = deployment(1, 10, vec![vm1, vm2]);
    create(&store, &dl).expect("create");
    drop(store);
    let store = Store::open(_dir.path().join("state")).expect("reopen");
    assert_eq!(store.get(1, 10).expect("get"), dl);
}

#[test]
fn delete_deployment() {
    let (_dir, store) = store();
    create(&store, &deployment(1, 10, vec![workload("network", "network")])).expect("create");
    let mut txn = store.begin();
    txn.delete(1, 10).expect("delete");
    txn.commit().expect("commit");
    assert!(matches!(store.get(1, 10), Err(StoreError::DeploymentNotExists)));
    assert!(store.by_twin(1).expect("by twin").is_empty());
    assert!(store.twins().expect("twins").is_empty());
    create(&store, &deployment(1, 11, vec![workload("network", "network")])).expect("the sharable name is free again");
}

#[test]
fn delete_one_of_several_deployments() {
    let (_dir, store) = store();
    create(&store, &deployment(1, 10, vec![workload("vm1", "zmount")])).expect("create");
    create(&store, &deployment(1, 20, vec![workload("vm1", "zmount")])).expect("create");
    let mut txn = store.begin();
    txn.delete(1, 10).expect("delete");
    txn.commit().expect("commit");
    assert_eq!(store.by_twin(1).expect("by twin"), vec![20]);
    assert_eq!(store.get(1, 20).expect("get").workloads.len(), 1);
}

#[test]
fn unknown_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    {
        let db = sled::open(&path).expect("sled");
        db.open_tree("zos").expect("tree").insert(b"Mschema", b"99".as_slice()).expect("insert");
        db.flush().expect("flush");
    }
    let err = Store::open(&path).expect_err("refused");
    assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// A batch of user actions in one transaction: a unit that fails (here a second network of the same
/// name, a conflict found after the unit staged its deployment) leaves nothing of itself behind, while
/// the units before and after it are committed; nested units roll back only themselves.
#[test]
fn failed_unit_leaves_nothing_and_the_batch_goes_on() {
    let (_dir, store) = store();
    let mut txn = store.begin();
    txn.unit(|txn| txn.create(&deployment(1, 10, vec![workload("net", "network")]))).expect("first unit");
    let conflict =
        txn.unit(|txn| txn.create(&deployment(1, 11, vec![workload("vm", "zmount"), workload("net", "network")])));
    assert!(matches!(conflict, Err(StoreError::DeploymentConflict(_))), "{conflict:?}");
    txn.unit(|txn| {
        txn.create(&deployment(1, 12, vec![workload("disk", "zmount")]))?;
        let inner = txn.unit(|txn| txn.create(&deployment(1, 12, vec![])));
        assert!(matches!(inner, Err(StoreError::DeploymentExists)));
        Ok::<_, StoreError>(())
    })
    .expect("third unit, with a failed inner unit");
    txn.commit().expect("commit");
    assert_eq!(store.get(1, 10).expect("first").workloads.len(), 1);
    assert!(matches!(store.get(1, 11), Err(StoreError::DeploymentNotExists)), "nothing of the failed unit");
    assert_eq!(store.get(1, 12).expect("third").workloads.len(), 1);
    create(&store, &deployment(1, 11, vec![workload("vm", "zmount")])).expect("contract 11 was left free");
}

/// The log of a deployment as (name, state) pairs.
fn log(store: &Store, twin: u32, contract: u64) -> Vec<(String, ResultState)> {
    store.changes(twin, contract).expect("changes").into_iter().map(|wl| (wl.name, wl.result.state)).collect()
}

/// A new deployment's record holds its log's first step until the record first changes (so that a
/// create writes one key less): the log reads the same before and after, whichever change comes first,
/// and after a reopen.
#[test]
fn the_first_log_step_reads_the_same_before_and_after_the_record_first_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    let store = Store::open(&path).expect("open");
    let created = vec![("vm1".to_string(), ResultState::Init), ("net".to_string(), ResultState::Init)];
    type Change = fn(&mut zos_cache::Txn<'_>, u64) -> Result<(), StoreError>;
    let changes: [(Change, Vec<(String, ResultState)>); 5] = [
        (
            |txn, contract| {
                let mut ok = workload("vm1", "zmount");
                ok.result.state = ResultState::Ok;
                txn.record(1, contract, &ok)
            },
            vec![("vm1".into(), ResultState::Ok)],
        ),
        (
            |txn, contract| txn.error(1, contract, "failed", Timestamp(2)),
            vec![("vm1".into(), ResultState::Error), ("net".into(), ResultState::Error)],
        ),
        (
            |txn, contract| txn.add_workload(1, contract, &workload("vol", "volume")),
            vec![("vol".into(), ResultState::Init)],
        ),
        (|txn, contract| txn.remove_workload(1, contract, "vm1"), vec![]),
        (
            |txn, contract| {
                let mut header = deployment(1, contract, vec![]);
                header.version = 2;
                txn.update_header(&header)
            },
            vec![],
        ),
    ];
    let contracts = 10..10 + changes.len() as u64;
    for contract in contracts.clone() {
        let dl = deployment(1, contract, vec![workload("vm1", "zmount"), workload("net", "zmount")]);
        create(&store, &dl).expect("create");
        assert_eq!(log(&store, 1, contract), created, "deployment {contract} before any change");
    }
    for (contract, (change, added)) in contracts.clone().zip(&changes) {
        let mut txn = store.begin();
        change(&mut txn, contract).expect("change");
        txn.commit().expect("commit");
        let expected: Vec<_> = created.iter().cloned().chain(added.iter().cloned()).collect();
        assert_eq!(log(&store, 1, contract), expected, "deployment {contract} after its first change");
        // A second change appends after the first one's step, never over it.
        let mut txn = store.begin();
        txn.error(1, contract, "again", Timestamp(3)).expect("error");
        txn.commit().expect("commit");
        assert_eq!(log(&store, 1, contract)[..expected.len()], expected[..], "deployment {contract}");
    }
    let expected: Vec<Vec<_>> = contracts.clone().map(|contract| log(&store, 1, contract)).collect();
    drop(store);
    let store = Store::open(&path).expect("reopen");
    let reopened: Vec<Vec<_>> = contracts.map(|contract| log(&store, 1, contract)).collect();
    assert_eq!(reopened, expected);
    assert_eq!(store.check_consistency().expect("check"), vec![]);
}
