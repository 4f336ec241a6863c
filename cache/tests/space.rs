//! Deleting deployments gives their space back: rounds of large deployments created and deleted leave
//! the store's files about as large as one round needs, not growing with every round (sled reuses the
//! segments it frees; `Store::open` compacts a store whose files outgrew what it holds).

mod common;

use zos_cache::Store;
use zos_types::Deployment;

/// As large as a whole deployment may be (1 MiB), here in one field: the store does not validate.
fn deployment(contract: u64) -> Deployment {
    common::deployment(contract, 900 * 1024)
}

fn disk_usage(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry")) {
            let meta = entry.metadata().expect("meta");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                use std::os::unix::fs::MetadataExt;
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[test]
fn store_space_is_reclaimed_after_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let mut sizes = Vec::new();
    for round in 0..4u64 {
        let store = Store::open(&path).expect("open");
        for i in 0..20 {
            let mut txn = store.begin();
            txn.create(&deployment(round * 1000 + i)).expect("create");
            txn.commit().expect("commit");
        }
        for i in 0..20 {
            let mut txn = store.begin();
            txn.delete(1, round * 1000 + i).expect("delete");
            txn.commit().expect("commit");
        }
        drop(store);
        sizes.push(disk_usage(&path));
    }
    eprintln!("store size after each round of 20 x 900 KiB created and deleted: {sizes:?}");
    let first = sizes[0].max(1);
    let last = *sizes.last().expect("rounds");
    assert!(last <= first * 2, "the store keeps growing after deletes: {sizes:?}");
}

/// A compaction interrupted after the old store was moved aside and before the fresh copy took its
/// place is finished at the next open: the complete copy becomes the store.
#[test]
fn interrupted_compaction_is_finished_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    {
        let fresh = Store::open(dir.path().join("store.compact")).expect("fresh copy");
        let mut txn = fresh.begin();
        txn.create(&deployment(7)).expect("create");
        txn.commit().expect("commit");
    }
    drop(Store::open(dir.path().join("store.old")).expect("old store"));
    let store = Store::open(&path).expect("open recovers");
    assert_eq!(store.get(1, 7).expect("the copy's deployment").contract_id, 7);
    assert!(!dir.path().join("store.old").exists() && !dir.path().join("store.compact").exists());
}
