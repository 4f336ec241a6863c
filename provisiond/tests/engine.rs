//! The engine against the real store: admission at the door, atomic acceptance, the job loop with
//! partial failure, refusals, deletion, and a reopen that rebuilds the ledger exactly.

use serde_json::json;
use std::sync::Mutex;
use zos_cache::Store;
use zos_provisiond::{Engine, EngineError, Managers, Outcome, TwinRegistry};
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, ResultState, SigningKey, Timestamp, Workload, WorkloadId};

const GIB: u64 = 1 << 30;

/// Managers that succeed, except for workloads whose name starts with `fail`; they log every call.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Managers for Recorder {
    async fn provision(
        &self,
        id: &WorkloadId,
        workload: &Workload,
        _: Option<&zos_types::ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        self.calls.lock().expect("calls").push(format!("provision {id}"));
        if workload.name.starts_with("fail") { Err("simulated failure".into()) } else { Ok(json!({"id": id.as_str()})) }
    }
    async fn deprovision(&self, id: &WorkloadId, workload: &Workload) -> Result<(), String> {
        self.calls.lock().expect("calls").push(format!("deprovision {id}"));
        if workload.name.contains("stuck") { Err("simulated failed delete".into()) } else { Ok(()) }
    }
}

fn node() -> NodeSpec {
    serde_json::from_value(
        json!({"cru": 8, "mru": 16 * GIB, "pools": [{"name": "ssd0", "kind": "ssd", "size": 512 * GIB}]}),
    )
    .expect("node")
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn signed(contract: u64, workloads: serde_json::Value) -> Deployment {
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": 7, "contract_id": contract,
        "signature_requirement": {"requests": [{"twin_id": 7, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": workloads}))
    .expect("deployment");
    dl.sign(7, &key());
    dl
}

fn vm(name: &str, memory_gib: u64) -> serde_json::Value {
    json!({"name": name, "type": "zmachine", "data": {"network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
        "compute_capacity": {"cpu": 1, "memory": memory_gib * GIB}}})
}

/// The next version of stored deployment `contract`, its first workload (a zmount) resized to `gib`,
/// signed again; `edit` changes anything else before signing.
fn resized(engine: &Engine<TwinRegistry>, contract: u64, gib: u64, edit: impl FnOnce(&mut Deployment)) -> Deployment {
    let mut next = engine.store().get(7, contract).expect("stored");
    next.version += 1;
    next.workloads[0].version = next.version;
    next.workloads[0].data =
        zos_types::WorkloadData::ZMount(zos_types::workload::ZMount { size: zos_types::Unit::gib(gib) });
    edit(&mut next);
    next.signature_requirement.signatures.clear();
    next.sign(7, &key());
    next
}

fn engine(dir: &std::path::Path) -> Engine<TwinRegistry> {
    let store = Store::open(dir.join("state")).expect("store");
    Engine::open(store, &node(), Policy::default(), TwinRegistry::from_keys([(7, key().verifying_key())]))
        .expect("engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_at_the_door_then_provisioned_with_partial_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let dl = signed(
        1,
        json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}, vm("vm", 4), vm("fail_vm", 2)]),
    );
    let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(100)).expect("create") else { panic!("refused") };
    // Accepted means stored with its reservations and its job, all workloads in init.
    let stored = engine.store().get(7, 1).expect("stored");
    assert!(stored.workloads.iter().all(|wl| wl.result.state == ResultState::Init));
    assert_eq!(engine.store().reservations().expect("reservations").len(), 3);
    assert_eq!(engine.ledger_snapshot().usage().used.mru.bytes(), 6 * GIB);

    assert!(engine.run_one(&managers, Timestamp(101)).await.expect("run"));
    let changes = engine.take_changes();
    assert_eq!(changes.len(), 3, "one state change per workload, for the operators' stream");
    assert!(changes.iter().any(|c| c.id == "7-1-fail_vm" && c.state == "error" && c.message == "simulated failure"));
    assert!(engine.take_changes().is_empty());
    assert!(!engine.run_one(&managers, Timestamp(102)).await.expect("idle"), "the job was acknowledged");
    let calls = managers.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        ["provision 7-1-disk", "provision 7-1-vm", "provision 7-1-fail_vm", "deprovision 7-1-fail_vm"],
        "ZOS's install order; a failed workload is undone before its reservation is released"
    );
    let stored = engine.store().get(7, 1).expect("stored");
    let state = |name: &str| stored.workloads.iter().find(|wl| wl.name == name).map(|wl| wl.result.state);
    assert_eq!(
        (state("disk"), state("vm"), state("fail_vm")),
        (Some(ResultState::Ok), Some(ResultState::Ok), Some(ResultState::Error))
    );
    assert_eq!(
        engine.ledger_snapshot().usage().used.mru.bytes(),
        4 * GIB,
        "the failed workload released its reservation"
    );
    assert!(engine.store().check_consistency().expect("check").is_empty());

    // A reopen rebuilds the same ledger from the stored reservations.
    let before = engine.ledger_snapshot().usage();
    drop(engine);
    let engine = self::engine(dir.path());
    assert_eq!(engine.ledger_snapshot().usage(), before);

    // Delete: everything goes, reservations included.
    engine.deprovision(7, 1, "deleted by the test").expect("deprovision");
    assert!(engine.run_one(&managers, Timestamp(103)).await.expect("run"));
    assert!(engine.store().get(7, 1).is_err());
    assert_eq!(engine.ledger_snapshot().usage().used.mru.bytes(), 0);
    assert!(engine.store().reservations().expect("reservations").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_at_the_door_with_the_numbers_and_nothing_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let dl = signed(2, json!([vm("small", 1), vm("huge", 64)]));
    match engine.create(7, dl, Timestamp(100)).expect("create") {
        Outcome::Refused(verdicts) => {
            let huge = verdicts.iter().find(|v| v.name == "huge").expect("huge");
            assert!(
                matches!(&huge.verdict, zos_planner::Verdict::Reject(shortfalls) if shortfalls[0].requested == 64 * GIB)
            );
        }
        Outcome::Accepted(_) => panic!("a 64 GiB VM does not fit a 16 GiB node"),
    }
    assert!(engine.store().get(7, 2).is_err(), "nothing stored");
    assert!(engine.store().jobs().expect("jobs").is_empty());
    assert_eq!(engine.ledger_snapshot().usage().used.mru.bytes(), 0, "nothing held");
}

#[test]
fn identity_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let dl = signed(3, json!([vm("vm", 1)]));
    let err = engine.create(8, dl.clone(), Timestamp(1)).expect_err("another twin");
    assert_eq!(err.code(), "forbidden");
    assert_eq!(err.to_string(), "twin id mismatch (deployment: 7, message: 8)");
    let mut forged = dl.clone();
    forged.description = "changed after signing".into();
    assert!(
        matches!(engine.create(7, forged, Timestamp(1)), Err(EngineError::Forbidden(msg)) if msg == "failed to verify signature")
    );
    let mut versioned = dl;
    versioned.version = 1;
    versioned.workloads[0].version = 1;
    versioned.sign(7, &key());
    let err = engine.create(7, versioned, Timestamp(1)).expect_err("version");
    assert_eq!(err.to_string(), "expected version to be 0 on deployment creation: invalid version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_keeps_capacity_and_resume_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let Outcome::Accepted(_) = engine.create(7, signed(4, json!([vm("vm", 2)])), Timestamp(1)).expect("create") else {
        panic!("refused")
    };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    let counters = engine.counters();
    assert_eq!((counters.users.deployments, counters.users.workloads), (1, 1));
    assert_eq!(counters.system.mru.bytes(), 2 * GIB, "16 GiB node: 2 GiB reserved");
    assert_eq!(counters.used.mru.bytes(), 4 * GIB, "used includes the system's reservation");
    engine.pause(7, 4).expect("pause");
    engine.run_one(&managers, Timestamp(3)).await.expect("pause job");
    let vm = engine.store().current(7, 4, "vm").expect("vm");
    assert_eq!((vm.result.state, vm.result.error.as_str()), (ResultState::Paused, "paused"));
    assert_eq!(engine.counters().used.mru.bytes(), 4 * GIB, "paused workloads keep their capacity");
    engine.resume(7, 4).expect("resume");
    engine.run_one(&managers, Timestamp(4)).await.expect("resume job");
    assert_eq!(engine.store().current(7, 4, "vm").expect("vm").result.state, ResultState::Ok);
    assert!(engine.pause(7, 99).is_err(), "no such deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_recheck_growth_and_remove_what_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let v0 =
        signed(5, json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}, vm("vm", 2), vm("old", 2)]));
    let Outcome::Accepted(_) = engine.create(7, v0, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");

    // Grow the disk past the node: refused at the door, nothing changes.
    let too_big = resized(&engine, 5, 600, |_| {});
    assert!(matches!(engine.update(7, too_big, Timestamp(3)).expect("update"), Outcome::Refused(_)));
    assert_eq!(engine.store().get(7, 5).expect("stored").version, 0, "a refused update changes nothing");

    // Grow it within capacity and drop a VM: accepted, applied by the job.
    let v1 = resized(&engine, 5, 20, |dl| {
        dl.workloads.retain(|wl| wl.name != "old");
    });
    let Outcome::Accepted(_) = engine.update(7, v1, Timestamp(4)).expect("update") else { panic!("refused") };
    // The grown disk is held at once; the dropped VM until the job removes it.
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 20 * GIB + 2 * (500 << 20));
    engine.run_one(&managers, Timestamp(5)).await.expect("update job");
    let stored = engine.store().get(7, 5).expect("stored");
    assert_eq!(stored.version, 1);
    assert!(stored.workloads.iter().all(|wl| wl.name != "old"), "the dropped VM is gone");
    assert_eq!(engine.store().current(7, 5, "disk").expect("disk").result.state, ResultState::Ok);
    assert_eq!(engine.ledger_snapshot().usage().used.mru.bytes(), 2 * GIB, "the dropped VM released its memory");
    assert!(engine.store().check_consistency().expect("check").is_empty());

    // A zmachine cannot be updated in place (ZOS).
    let mut v2 = engine.store().get(7, 5).expect("stored");
    v2.version = 2;
    let vm = v2.workloads.iter_mut().find(|wl| wl.name == "vm").expect("vm");
    vm.version = 2;
    v2.signature_requirement.signatures.clear();
    v2.sign(7, &key());
    let err = engine.update(7, v2, Timestamp(6)).expect_err("not updatable");
    assert_eq!(err.to_string(), "workload 'zmachine' does not support upgrade: upgrade validation error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_provisions_again_without_counting_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let managers = Recorder::default();
    {
        let engine = engine(dir.path());
        let dl = signed(6, json!([vm("vm", 2), vm("fail_vm", 1)]));
        let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(1)).expect("create") else { panic!("refused") };
        engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    }
    // The node reboots: a fresh process, the tmpfs marker gone.
    let engine = engine(dir.path());
    let before = engine.ledger_snapshot().usage();
    let marker = dir.path().join("run/provisiond");
    assert_eq!(engine.boot(&marker).expect("boot"), 1);
    assert_eq!(engine.boot(&marker).expect("boot again"), 0, "only the first start after a boot");
    managers.calls.lock().expect("calls").clear();
    engine.run_one(&managers, Timestamp(3)).await.expect("re-provision");
    let calls = managers.calls.lock().expect("calls").clone();
    assert_eq!(calls, ["provision 7-6-vm"], "the failed workload is never retried");
    assert_eq!(engine.ledger_snapshot().usage(), before, "nothing counted twice");
    assert_eq!(engine.store().current(7, 6, "vm").expect("vm").result.state, ResultState::Ok);
}

/// A deployment carrying 50 MB of metadata is refused at the door, naming the field and the limit;
/// nothing is stored and nothing held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_refused_at_the_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": 7, "contract_id": 9,
        "metadata": "m".repeat(50 << 20),
        "signature_requirement": {"requests": [{"twin_id": 7, "required": true, "weight": 1}], "weight_required": 1},
        "workloads": [{"name": "disk", "type": "zmount", "data": {"size": GIB}}]}))
    .expect("deployment");
    dl.sign(7, &key());
    let err = engine.create(7, dl, Timestamp(100)).expect_err("refused");
    assert!(
        matches!(&err, EngineError::Invalid(text) if text.contains("deployment metadata is 52428800 bytes, more than the limit of 4096 bytes")),
        "{err}"
    );
    assert!(engine.store().get(7, 9).is_err(), "nothing stored");
    assert!(engine.store().reservations().expect("reservations").is_empty(), "nothing held");
}

/// Shrinking a zmount is refused at the door ("not safe to shrink a disk", as ZOS), instead of being
/// accepted while the vdisk keeps its size; the ledger keeps holding the old size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_a_zmount_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let v0 = signed(6, json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, v0, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    let smaller = resized(&engine, 6, 5, |_| {});
    let err = engine.update(7, smaller, Timestamp(3)).expect_err("shrink");
    assert_eq!(err.to_string(), "workload 'disk': not safe to shrink a disk");
    assert_eq!(engine.store().get(7, 6).expect("stored").version, 0, "nothing changed");
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "the ledger still holds 10 GiB");
}

/// A failed delete keeps its reservation and what its result says of the resource, and the store's
/// consistency check agrees (it was reported as drift on every start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_delete_keeps_its_reservation_without_drift() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let dl = signed(8, json!([{"name": "stuck_disk", "type": "zmount", "data": {"size": 10 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    engine.deprovision(7, 8, "test").expect("queue the delete");
    engine.run_one(&managers, Timestamp(3)).await.expect("delete job");
    let stuck = engine.store().current(7, 8, "stuck_disk").expect("still there");
    assert_eq!(stuck.result.state, ResultState::Error);
    assert_eq!(stuck.result.data, json!({"id": "7-8-stuck_disk"}), "what the result said of the resource is kept");
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "the reservation is kept");
    assert_eq!(engine.store().check_consistency().expect("check"), vec![], "and that is no drift");
    drop(engine);
    let reopened = self::engine(dir.path());
    assert_eq!(reopened.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "still held after a restart");
}

/// A VM whose disk fails at run time fails too, without being tried, naming its dependency (ZOS
/// installs in order and fails a VM whose disk failed), and gives its capacity back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_vm_fails_when_its_disk_fails_at_run_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let mut machine = vm("vm", 2);
    machine["data"]["mounts"] = json!([{"name": "fail_disk", "mountpoint": "/data"}]);
    let dl = signed(11, json!([{"name": "fail_disk", "type": "zmount", "data": {"size": GIB}}, machine]));
    let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    let vm = engine.store().current(7, 11, "vm").expect("vm");
    assert_eq!(vm.result.state, ResultState::Error);
    assert_eq!(vm.result.error, "depends on zmount 'fail_disk', which failed");
    let calls = managers.calls.lock().expect("calls").clone();
    assert!(!calls.iter().any(|c| c.contains("7-11-vm")), "the VM was never tried: {calls:?}");
    assert_eq!(engine.ledger_snapshot().usage().used.mru.bytes(), 0, "its memory is free again");
}

/// What the OS uses of the memory is read when deciding, not once at start: `used = max(reserved +
/// workloads, OS used)` guards the node as the OS's use grows and shrinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_used_memory_is_read_when_deciding() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let os_used = Arc::new(AtomicU64::new(0));
    let probe = os_used.clone();
    let engine =
        engine(dir.path()).with_os_memory(Box::new(move || Some(zos_types::Unit(probe.load(Ordering::SeqCst)))));
    // 16 GiB node: the OS now uses 14 GiB, so a 4 GiB VM does not fit.
    os_used.store(14 * GIB, Ordering::SeqCst);
    let refused = engine.create(7, signed(21, json!([vm("vm", 4)])), Timestamp(1)).expect("answer");
    assert!(matches!(refused, Outcome::Refused(_)), "the OS's use now guards the node");
    // The OS gives memory back: the same VM fits.
    os_used.store(GIB, Ordering::SeqCst);
    let accepted = engine.create(7, signed(21, json!([vm("vm", 4)])), Timestamp(2)).expect("answer");
    assert!(matches!(accepted, Outcome::Accepted(_)));
}

/// A reservation that cannot be restored whole (its pool vanished) keeps what still exists: a running
/// VM's CPU and memory stay held after a restart, instead of being freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_restored_as_far_as_the_node_still_has_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let managers = Recorder::default();
    {
        let engine = engine(dir.path());
        let dl = signed(22, json!([vm("vm", 8)]));
        let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(1)).expect("create") else { panic!("refused") };
        engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    }
    // The node comes back with its pool renamed.
    let renamed: NodeSpec = serde_json::from_value(
        json!({"cru": 8, "mru": 16 * GIB, "pools": [{"name": "ssd1", "kind": "ssd", "size": 512 * GIB}]}),
    )
    .expect("node");
    let store = Store::open(dir.path().join("state")).expect("store");
    let engine =
        Engine::open(store, &renamed, Policy::default(), TwinRegistry::from_keys([(7, key().verifying_key())]))
            .expect("engine");
    let used = engine.ledger_snapshot().usage().used;
    assert_eq!((used.cru, used.mru.bytes()), (1, 8 * GIB), "the VM's CPU and memory stay held");
    assert_eq!(used.sru.bytes(), 0, "its root disk went with the pool");
}

/// Managers that hold the first provision call until the test lets it go.
#[derive(Default)]
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    held: std::sync::atomic::AtomicBool,
}

impl Managers for Gate {
    async fn provision(
        &self,
        id: &WorkloadId,
        _: &Workload,
        _: Option<&zos_types::ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        if !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(json!({"id": id.as_str()}))
    }
    async fn deprovision(&self, _: &WorkloadId, _: &Workload) -> Result<(), String> {
        Ok(())
    }
}

/// Lost update: an update accepted while the job of the previous version runs must not be overwritten
/// by that job's result (a zmount grown 10 → 20 GiB mid-job ended stored at version 0 with 10 GiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_accepted_mid_job_is_not_lost() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(engine(dir.path()));
    let gate = Arc::new(Gate::default());
    let v0 = signed(31, json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, v0, Timestamp(1)).expect("create") else { panic!("refused") };
    let job = tokio::spawn({
        let (engine, gate) = (engine.clone(), gate.clone());
        async move { engine.run_one(&*gate, Timestamp(2)).await }
    });
    gate.entered.notified().await;
    let v1 = resized(&engine, 31, 20, |_| {});
    let Outcome::Accepted(_) = engine.update(7, v1, Timestamp(3)).expect("update") else { panic!("refused") };
    gate.release.notify_one();
    job.await.expect("join").expect("first job");
    let disk = engine.store().current(7, 31, "disk").expect("disk");
    assert_eq!(disk.version, 1, "the update survived the job of version 0");
    assert_eq!(disk.capacity().sru.bytes(), 20 * GIB);
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 20 * GIB);
    engine.run_one(&*gate, Timestamp(4)).await.expect("update job");
    let disk = engine.store().current(7, 31, "disk").expect("disk");
    assert_eq!((disk.version, disk.result.state), (1, ResultState::Ok), "the update's own job ran it");
    assert!(engine.store().check_consistency().expect("check").is_empty());
}

/// A failed update frees nothing the old resource still uses: a refused grow of a 10 GiB disk leaves the
/// ledger at 10 GiB and the workload running its old version, recorded `unchanged` (ZOS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_update_keeps_the_old_reservation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let v0 = signed(41, json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, v0, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    let failing = FailUpdates;
    let v1 = resized(&engine, 41, 20, |_| {});
    let Outcome::Accepted(_) = engine.update(7, v1, Timestamp(3)).expect("update") else { panic!("refused") };
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 20 * GIB, "the grow is held while it runs");
    engine.run_one(&failing, Timestamp(4)).await.expect("update job");
    let disk = engine.store().current(7, 41, "disk").expect("disk");
    assert_eq!((disk.version, disk.result.state), (0, ResultState::Ok), "the old version still runs");
    assert_eq!(disk.capacity().sru.bytes(), 10 * GIB);
    let log = engine.store().changes(7, 41).expect("log");
    assert!(log.iter().any(|wl| wl.result.state == ResultState::Unchanged && wl.result.error == "no room to grow"));
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "the old disk's 10 GiB stay held");
    assert!(engine.store().check_consistency().expect("check").is_empty());
    drop(engine);
    assert_eq!(self::engine(dir.path()).ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "and after a restart");
}

/// Managers whose provision always fails, as a module refusing an update.
struct FailUpdates;

impl Managers for FailUpdates {
    async fn provision(
        &self,
        _: &WorkloadId,
        _: &Workload,
        _: Option<&zos_types::ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        Err("no room to grow".into())
    }
    async fn deprovision(&self, _: &WorkloadId, _: &Workload) -> Result<(), String> {
        Ok(())
    }
}

/// A first provision that fails and whose cleanup fails too (a deadline expired with the call in flight,
/// so the resource may exist) keeps its reservation, in `error`: nothing a resource may use is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_provision_keeps_its_reservation_until_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = Recorder::default();
    let dl = signed(51, json!([{"name": "fail_stuck", "type": "zmount", "data": {"size": 3 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(1)).expect("create") else { panic!("refused") };
    engine.run_one(&managers, Timestamp(2)).await.expect("provision");
    let disk = engine.store().current(7, 51, "fail_stuck").expect("disk");
    assert_eq!(disk.result.state, ResultState::Error);
    assert!(disk.result.error.contains("cleaning up failed"), "{}", disk.result.error);
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 3 * GIB, "still held");
    assert!(engine.store().check_consistency().expect("check").is_empty());
}

/// Twin operations trust no claimed twin id: a request signed with another twin's key, an unknown
/// twin, a replay and a stale request are refused as `forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_requests_are_verified_windowed_and_never_replayed() {
    use zos_types::TwinRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let other = SigningKey::from_bytes(&[4; 32]);
    let engine = Engine::open(
        Store::open(dir.path().join("state")).expect("store"),
        &node(),
        Policy::default(),
        TwinRegistry::from_keys([(7, key().verifying_key()), (8, other.verifying_key())]),
    )
    .expect("engine");
    let now = 1_000_000;
    let own = TwinRequest::sign("Deprovision", 7, 1, (now, 1), &key());
    engine.authenticate("Deprovision", &own, now).expect("the twin's own request");
    let refused = |request: &TwinRequest, operation: &str, at: i64| {
        let err = engine.authenticate(operation, request, at).expect_err("refused");
        assert_eq!(err.code(), "forbidden", "{err}");
        err.to_string()
    };
    assert!(refused(&own, "Deprovision", now).contains("replayed"));
    let cross = TwinRequest::sign("Deprovision", 7, 1, (now, 2), &other);
    assert!(refused(&cross, "Deprovision", now).contains("does not verify"), "twin 8 cannot speak for twin 7");
    let unknown = TwinRequest::sign("Get", 9, 1, (now, 3), &other);
    assert!(refused(&unknown, "Get", now).contains("unknown twin 9"));
    let stale = TwinRequest::sign("Get", 7, 1, (now - 301, 4), &key());
    assert!(refused(&stale, "Get", now).contains("from the node's clock"));
    let pause = TwinRequest::sign("Pause", 7, 1, (now, 5), &key());
    assert!(refused(&pause, "Deprovision", now).contains("does not verify"), "a Pause signature cannot delete");
}

/// The door under contention: 64 threads creating 1 GiB VMs at once (decided in shared batches, one
/// store change and one fsync per batch) on a node where fewer fit admit exactly as many as fit; eight
/// threads racing to create the same contract get one acceptance and seven `exists`; the ledger then
/// equals what is stored, and a reopen rebuilds it byte for byte.
#[test]
fn concurrent_creates_in_batches_admit_exactly_what_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let free = engine.ledger_snapshot().usage().free;
    let fit = (free.mru.bytes() / GIB).min(free.cru);
    assert!(fit < 64, "the node holds fewer than the requests: {fit}");
    let outcomes: Vec<Result<Outcome, EngineError>> = std::thread::scope(|scope| {
        let engine = &engine;
        let threads: Vec<_> = (0..64u64)
            .map(|i| scope.spawn(move || engine.create(7, signed(100 + i, json!([vm("vm", 1)])), Timestamp(1))))
            .chain((0..8).map(|_| scope.spawn(move || engine.create(7, signed(500, json!([])), Timestamp(1)))))
            .collect();
        threads.into_iter().map(|thread| thread.join().expect("thread")).collect()
    });
    let (vms, same) = outcomes.split_at(64);
    let accepted = vms.iter().filter(|it| matches!(it, Ok(Outcome::Accepted(_)))).count();
    let refused = vms.iter().filter(|it| matches!(it, Ok(Outcome::Refused(_)))).count();
    assert_eq!((accepted as u64, refused as u64), (fit, 64 - fit), "exactly what fits");
    let once = same.iter().filter(|it| matches!(it, Ok(Outcome::Accepted(_)))).count();
    let exists = same.iter().filter(|it| matches!(it, Err(err) if err.code() == "exists")).count();
    assert_eq!((once, exists), (1, 7));

    let usage = engine.ledger_snapshot().usage();
    assert_eq!(usage.used.mru.bytes(), fit * GIB);
    assert_eq!(engine.store().reservations().expect("reservations").len() as u64, fit);
    assert_eq!(engine.store().jobs().expect("jobs").len() as u64, fit + 1, "one job per accepted create");
    assert!(engine.store().check_consistency().expect("check").is_empty());
    drop(engine);
    let reopened = self::engine(dir.path());
    assert_eq!(reopened.ledger_snapshot().usage(), usage, "the reopened ledger is the same, byte for byte");
}

/// Zdb devices as storaged keeps them: one per HDD pool, shared by every zdb namespace of that pool;
/// a zdb's result names its device, and removing it releases that device.
#[derive(Default)]
struct ZdbDevices {
    devices: Mutex<std::collections::BTreeSet<String>>,
}

impl Managers for ZdbDevices {
    async fn provision(
        &self,
        _: &WorkloadId,
        _: &Workload,
        reservation: Option<&zos_types::ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        let pool = reservation.and_then(|r| r.disk.as_ref()).map(|(pool, _)| pool.clone()).ok_or("no pool")?;
        self.devices.lock().expect("devices").insert(pool.clone());
        Ok(json!({"Namespace": "ns", "Device": pool}))
    }
    async fn deprovision(&self, _: &WorkloadId, workload: &Workload) -> Result<(), String> {
        if let Some(device) = workload.result.data.get("Device").and_then(|d| d.as_str()) {
            self.devices.lock().expect("devices").remove(device);
        }
        Ok(())
    }
}

/// Deleting one zdb wiped every zdb of its pool: the device (the pool's `zdb` subvolume) is shared by
/// all of them, and the delete of one released it (the campaign's node run saw the reconciler report
/// the other zdbs' storage missing). The device goes back only with the last zdb that uses it, also
/// when two of them leave in one delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_one_zdb_keeps_the_device_of_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node: NodeSpec = serde_json::from_value(json!({"cru": 8, "mru": 16 * GIB,
        "pools": [{"name": "ssd0", "kind": "ssd", "size": 512 * GIB}, {"name": "hdd0", "kind": "hdd", "size": 1024 * GIB}]}))
    .expect("node");
    let store = Store::open(dir.path().join("state")).expect("store");
    let engine = Engine::open(store, &node, Policy::default(), TwinRegistry::from_keys([(7, key().verifying_key())]))
        .expect("engine");
    let managers = ZdbDevices::default();
    let zdb = |name: &str| json!({"name": name, "type": "zdb", "data": {"size": 10 * GIB, "mode": "seq"}});
    for (contract, workloads) in [(1, json!([zdb("a")])), (2, json!([zdb("b")])), (3, json!([zdb("c"), zdb("d")]))] {
        let Outcome::Accepted(_) = engine.create(7, signed(contract, workloads), Timestamp(1)).expect("create") else {
            panic!("refused")
        };
        assert!(engine.run_one(&managers, Timestamp(2)).await.expect("run"));
    }
    let devices = || managers.devices.lock().expect("devices").clone();
    assert_eq!(devices(), ["hdd0".to_string()].into());
    engine.deprovision(7, 1, "gone").expect("delete 1");
    assert!(engine.run_one(&managers, Timestamp(3)).await.expect("run"));
    assert_eq!(devices(), ["hdd0".to_string()].into(), "the other zdbs still use the device");
    engine.deprovision(7, 3, "gone").expect("delete 3, two zdbs at once");
    assert!(engine.run_one(&managers, Timestamp(4)).await.expect("run"));
    assert_eq!(devices(), ["hdd0".to_string()].into(), "zdb b still uses the device");
    engine.deprovision(7, 2, "gone").expect("delete 2");
    assert!(engine.run_one(&managers, Timestamp(5)).await.expect("run"));
    assert!(devices().is_empty(), "the last zdb gave the device back");
    assert_eq!(engine.ledger_snapshot().usage().used.hru.bytes(), 0);
}

/// Modules whose first `fails` deletes fail (storaged or Redis down), then work; a workload named
/// `fail` is refused.
struct FlakyDeletes {
    fails: std::sync::atomic::AtomicU32,
}

impl Managers for FlakyDeletes {
    async fn provision(
        &self,
        id: &WorkloadId,
        _: &Workload,
        _: Option<&zos_types::ReservationRecord>,
    ) -> Result<serde_json::Value, String> {
        if id.as_str().ends_with("-fail") { Err("the module refused".into()) } else { Ok(json!({"id": id.as_str()})) }
    }
    async fn deprovision(&self, _: &WorkloadId, _: &Workload) -> Result<(), String> {
        let left = self.fails.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.fails.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err("storage unreachable".into());
        }
        Ok(())
    }
}

/// A delete a module failed (asked while storaged or Redis was down) was never done: the deployment
/// stayed, in `error`, holding its capacity for good (the campaign's node run saw deletes that never
/// finished after daemon kills). The delete is kept as asked, durably, and tried again with a back-off
/// until it is done, after a restart of provisiond too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_is_tried_again_until_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let managers = FlakyDeletes { fails: std::sync::atomic::AtomicU32::new(2) };
    {
        let engine = engine(dir.path());
        let dl = signed(41, json!([{"name": "disk", "type": "zmount", "data": {"size": 10 * GIB}}]));
        let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(100)).expect("create") else { panic!("refused") };
        assert!(engine.run_one(&managers, Timestamp(101)).await.expect("provision"));
        engine.deprovision(7, 41, "gone").expect("delete");
        assert!(engine.run_one(&managers, Timestamp(102)).await.expect("the delete fails"));
        assert_eq!(engine.store().current(7, 41, "disk").expect("still there").result.state, ResultState::Error);
        assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "it keeps its capacity");
        assert_eq!(engine.retry_failed(Timestamp(102)).expect("retry"), 0, "the first try waits out 5 s");
        assert_eq!(engine.retry_failed(Timestamp(108)).expect("retry"), 1);
        assert!(engine.run_one(&managers, Timestamp(108)).await.expect("fails once more"));
        assert_eq!(engine.retry_failed(Timestamp(110)).expect("retry"), 0, "backing off");
    }
    // provisiond restarts: the delete is still asked for.
    let engine = engine(dir.path());
    assert_eq!(engine.store().deletes_asked().expect("asked").len(), 1);
    assert_eq!(engine.retry_failed(Timestamp(200)).expect("retry"), 0);
    assert_eq!(engine.retry_failed(Timestamp(206)).expect("retry"), 1);
    assert!(engine.run_one(&managers, Timestamp(206)).await.expect("the delete works now"));
    assert!(matches!(engine.store().get(7, 41), Err(zos_cache::StoreError::DeploymentNotExists)));
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 0, "its capacity is free");
    assert!(engine.store().deletes_asked().expect("asked").is_empty());
    assert!(engine.store().check_consistency().expect("check").is_empty());
}

/// A failed workload whose cleanup failed too (the module was unreachable) kept its reservation for good:
/// the campaign's node run counted such workloads after Redis kills, never given back. Its cleanup is
/// tried again with a back-off; once the module confirms nothing is left, the reservation goes and the
/// workload stays in `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cleanup_is_tried_again_until_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let managers = FlakyDeletes { fails: std::sync::atomic::AtomicU32::new(1) };
    let dl = signed(43, json!([{"name": "fail", "type": "zmount", "data": {"size": 10 * GIB}}]));
    let Outcome::Accepted(_) = engine.create(7, dl, Timestamp(100)).expect("create") else { panic!("refused") };
    assert!(engine.run_one(&managers, Timestamp(101)).await.expect("provision fails, cleanup fails"));
    let failed = engine.store().current(7, 43, "fail").expect("workload");
    assert_eq!(failed.result.state, ResultState::Error);
    assert!(failed.result.error.contains("cleaning up failed"), "{}", failed.result.error);
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 10 * GIB, "held while it may exist");
    assert_eq!(engine.store().cleanups_asked().expect("asked").len(), 1);
    assert_eq!(engine.retry_failed(Timestamp(101)).expect("retry"), 0, "the first try waits out 5 s");
    assert_eq!(engine.retry_failed(Timestamp(107)).expect("retry"), 1);
    assert!(engine.run_one(&managers, Timestamp(107)).await.expect("cleaned up"));
    assert_eq!(engine.ledger_snapshot().usage().used.sru.bytes(), 0, "given back");
    assert_eq!(engine.store().current(7, 43, "fail").expect("workload").result.state, ResultState::Error);
    assert!(engine.store().cleanups_asked().expect("asked").is_empty());
    assert!(engine.store().check_consistency().expect("check").is_empty());
    assert_eq!(engine.retry_failed(Timestamp(500)).expect("retry"), 0, "nothing left to retry");
}
