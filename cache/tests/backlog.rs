//! Property test of the store's backlog: a commit is seen by every read at once (point reads and
//! scans), while its fsync is pending, after it, and after the store is closed (with commits never
//! waited for) and opened again; what a later commit removed stays removed, over whatever sled holds.

mod common;

use proptest::prelude::*;
use std::collections::BTreeMap;
use zos_cache::{Pending, Store};

#[derive(Debug, Clone)]
enum Op {
    Create(u64),
    Delete(u64),
    AskDelete(u64),
    /// Waits for every commit made so far.
    Sync,
    /// Closes the store (commits not waited for included) and opens it again.
    Reopen,
}

#[derive(Debug, Clone, Copy)]
enum Commit {
    /// `commit`: durable when it returns.
    Wait,
    /// `commit_deferred`, waited for once the reads after it are checked.
    Defer,
    /// `commit_deferred`, never waited for.
    Forget,
}

fn op() -> impl Strategy<Value = Op> {
    let contract = 1..6u64;
    prop_oneof![
        4 => contract.clone().prop_map(Op::Create),
        2 => contract.clone().prop_map(Op::Delete),
        2 => contract.prop_map(Op::AskDelete),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn commit_mode() -> impl Strategy<Value = Commit> {
    prop_oneof![Just(Commit::Wait), Just(Commit::Defer), Just(Commit::Forget)]
}

/// What the store should hold: each deployment, with the reason its delete was asked for, if it was.
type Model = BTreeMap<u64, Option<String>>;

fn check(store: &Store, model: &Model, generation: u64, step: &str) -> Result<(), TestCaseError> {
    let contracts: Vec<u64> = model.keys().copied().collect();
    prop_assert_eq!(store.by_twin(1).expect("scan"), contracts, "contracts after {}", step);
    for &contract in model.keys() {
        prop_assert!(store.get(1, contract).is_ok(), "deployment {} unreadable after {}", contract, step);
    }
    let asked: Vec<(u32, u64, String)> =
        model.iter().filter_map(|(&contract, reason)| reason.clone().map(|reason| (1, contract, reason))).collect();
    prop_assert_eq!(store.deletes_asked().expect("scan"), asked, "deletes asked after {}", step);
    prop_assert_eq!(store.generation().expect("generation"), generation, "generation after {}", step);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_read_sees_each_commit_at_once_and_after_reopening(
        ops in prop::collection::vec((op(), commit_mode()), 1..40),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        let mut store = Store::open(&path).expect("open");
        let mut model = Model::new();
        let mut generation = 0u64;
        for (step, (op, mode)) in ops.into_iter().enumerate() {
            let step = format!("step {step}: {op:?} ({mode:?})");
            {
                let mut deferred: Vec<Pending<'_>> = Vec::new();
                let mut txn = store.begin();
                let staged = match &op {
                    Op::Create(contract) if !model.contains_key(contract) => {
                        txn.create(&common::deployment(*contract, 64)).expect("create");
                        model.insert(*contract, None);
                        true
                    }
                    Op::Delete(contract) if model.contains_key(contract) => {
                        txn.delete(1, *contract).expect("delete");
                        model.remove(contract);
                        true
                    }
                    Op::AskDelete(contract) if model.contains_key(contract) => {
                        let reason = format!("asked at {step}");
                        txn.ask_delete(1, *contract, &reason);
                        model.insert(*contract, Some(reason));
                        true
                    }
                    _ => false,
                };
                if staged {
                    generation += 1;
                    match mode {
                        Commit::Wait => txn.commit().expect("commit"),
                        Commit::Defer => deferred.push(txn.commit_deferred().expect("commit")),
                        Commit::Forget => drop(txn.commit_deferred().expect("commit")),
                    }
                } else {
                    drop(txn);
                }
                check(&store, &model, generation, &step)?;
                for pending in deferred {
                    pending.wait().expect("durable");
                }
            }
            match op {
                Op::Sync => store.sync_applied().expect("sync"),
                Op::Reopen => {
                    drop(store);
                    store = Store::open(&path).expect("reopen");
                }
                _ => {}
            }
            check(&store, &model, generation, &step)?;
        }
        drop(store);
        let store = Store::open(&path).expect("reopen");
        check(&store, &model, generation, "the last reopen")?;
        let structural: Vec<_> =
            store.check_consistency().expect("check").into_iter().filter(zos_cache::Drift::is_structural).collect();
        prop_assert!(structural.is_empty(), "{:?}", structural);
    }
}
