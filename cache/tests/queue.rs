//! Property tests of the job queue: FIFO order, at-least-once delivery (a job stays until
//! acknowledged), nothing lost across reopening.

use proptest::prelude::*;
use std::collections::VecDeque;
use zos_cache::{Job, JobOp, Store};
use zos_types::Deployment;

#[derive(Debug, Clone)]
enum Op {
    Enqueue(u8),
    PeekWithoutAck,
    AckHead,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Enqueue),
        1 => Just(Op::PeekWithoutAck),
        3 => Just(Op::AckHead),
        1 => Just(Op::Reopen),
    ]
}

fn job(n: u8) -> Job {
    let op = [JobOp::Provision, JobOp::Update, JobOp::Deprovision, JobOp::Pause, JobOp::Resume][usize::from(n % 5)];
    Job { op, twin: 1, contract: u64::from(n), reason: format!("job {n}"), remove: Vec::new() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn queue_is_fifo_at_least_once_and_durable(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        let mut store = Store::open(&path).expect("open");
        {
            // Jobs name deployments; keep them existing so the consistency check stays meaningful.
            let mut txn = store.begin();
            for contract in 0..=255u64 {
                txn.create(&Deployment { twin_id: 1, contract_id: contract, ..Deployment::default() }).expect("create");
            }
            txn.commit().expect("commit");
        }
        let mut model: VecDeque<Job> = VecDeque::new();
        for op in ops {
            match op {
                Op::Enqueue(n) => {
                    let mut txn = store.begin();
                    txn.enqueue(&job(n)).expect("enqueue");
                    txn.commit().expect("commit");
                    model.push_back(job(n));
                }
                Op::PeekWithoutAck => {
                    // A consumer that dies before acknowledging: the job is delivered again.
                    let first = store.peek_job().expect("peek").map(|(_, job)| job);
                    let again = store.peek_job().expect("peek").map(|(_, job)| job);
                    prop_assert_eq!(&first, &again);
                }
                Op::AckHead => {
                    if let Some((id, got)) = store.peek_job().expect("peek") {
                        prop_assert_eq!(Some(&got), model.front(), "FIFO");
                        let mut txn = store.begin();
                        txn.ack(id).expect("ack");
                        txn.commit().expect("commit");
                        model.pop_front();
                    } else {
                        prop_assert!(model.is_empty());
                    }
                }
                Op::Reopen => {
                    drop(store);
                    store = Store::open(&path).expect("reopen");
                }
            }
            let stored: Vec<Job> = store.jobs().expect("jobs").into_iter().map(|(_, job)| job).collect();
            prop_assert_eq!(stored, model.iter().cloned().collect::<Vec<_>>());
        }
        prop_assert!(store.check_consistency().expect("check").is_empty());
    }
}

#[test]
fn ack_of_unknown_job_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state")).expect("open");
    let mut txn = store.begin();
    assert!(matches!(txn.ack(zos_cache::JobId(42)), Err(zos_cache::StoreError::JobNotExists(42))));
}

/// Group commit: commits from many threads at once are each durable when they return, and all of
/// them are there after a reopen, the store consistent.
#[test]
fn concurrent_commits_are_all_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    {
        let store = Store::open(&path).expect("open");
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..25u64 {
                        let mut txn = store.begin();
                        txn.enqueue(&Job {
                            op: JobOp::Provision,
                            twin: 1,
                            contract: thread * 100 + i,
                            reason: String::new(),
                            remove: Vec::new(),
                        })
                        .expect("enqueue");
                        txn.commit().expect("commit");
                    }
                });
            }
        });
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.jobs().expect("jobs").len(), 200, "every acknowledged commit survived");
}
