//! The write-ahead journal: commits acknowledged only through it (sled never flushed) survive a
//! process that dies without closing the store; a torn or corrupt tail is dropped, never replayed and
//! never a reason to refuse the store; a clean close leaves the journal empty.

mod common;

use std::io::Write;
use std::path::Path;
use zos_cache::Store;

const CHILD_ENV: &str = "ZOS_CACHE_JOURNAL_DIR";
const TEXT_ENV: &str = "ZOS_CACHE_JOURNAL_TEXT";
const COMMITS: u64 = 200;

/// The writer: commits `COMMITS` deployments, one durable commit each, then dies without closing the
/// store (no checkpoint, no sled flush on drop), as a SIGKILL would leave it.
#[test]
fn journal_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let text = std::env::var(TEXT_ENV).ok().and_then(|text| text.parse().ok()).unwrap_or(2048);
    let store = Store::open(&dir).expect("open");
    for contract in 1..=COMMITS {
        let mut txn = store.begin();
        txn.create(&common::deployment(contract, text)).expect("create");
        txn.commit().expect("commit");
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// Runs the writer with `text` bytes of description per deployment.
fn run_child(path: &Path, text: usize) {
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["journal_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, path)
        .env(TEXT_ENV, text.to_string())
        .output()
        .expect("run the writer");
    assert!(output.status.success(), "writer failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn journal_len(path: &Path) -> u64 {
    std::fs::metadata(path.join("journal")).expect("journal").len()
}

fn assert_all_present(store: &Store) {
    for contract in 1..=COMMITS {
        let got = store.get(1, contract).unwrap_or_else(|err| panic!("acknowledged deployment {contract} lost: {err}"));
        assert_eq!(got.workloads.len(), 1);
    }
    assert_eq!(store.generation().expect("generation"), COMMITS);
    let structural: Vec<_> =
        store.check_consistency().expect("check").into_iter().filter(zos_cache::Drift::is_structural).collect();
    assert!(structural.is_empty(), "{structural:?}");
}

#[test]
fn commits_acknowledged_through_the_journal_survive_a_process_that_never_closed_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    run_child(&path, 2048);
    assert!(journal_len(&path) > 0, "the writer's commits are in its journal");
    let store = Store::open(&path).expect("reopen");
    assert!(journal_len(&path) <= 20, "replay empties the journal (but for its header) once sled holds its commits");
    assert_all_present(&store);
    drop(store);
    assert_eq!(journal_len(&path), 0, "a clean close leaves the journal empty");
}

#[test]
fn a_torn_or_corrupt_journal_tail_is_dropped_and_the_store_opens() {
    // A frame header announcing more bytes than follow (a write cut short), and bytes that fail the
    // checksum (a torn sector).
    let torn: &[u8] = &[100, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
    let corrupt: &[u8] = &[4, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
    for tail in [torn, corrupt] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        run_child(&path, 2048);
        let mut journal = std::fs::OpenOptions::new().append(true).open(path.join("journal")).expect("journal");
        journal.write_all(tail).expect("append the tail");
        drop(journal);
        let store = Store::open(&path).expect("a bad tail is not a reason to refuse the store");
        assert_all_present(&store);
        let mut txn = store.begin();
        txn.create(&common::deployment(COMMITS + 1, 16)).expect("create");
        txn.commit().expect("writes go on after the tail was dropped");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert!(store.get(1, COMMITS + 1).is_ok());
    }
}

#[test]
fn a_journal_past_its_checkpoint_size_is_emptied_into_sled_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    // 200 deployments of 256 KiB: 50 MiB through the journal, past its 32 MiB checkpoint.
    run_child(&path, 256 << 10);
    // Not checkpointed, the journal would hold all 50 MiB; checkpointed, the frames after the
    // checkpoint overwrite the file in place, which stays at about the checkpoint's size.
    assert!(journal_len(&path) < 40 << 20, "the journal was checkpointed ({} bytes)", journal_len(&path));
    assert!(journal_len(&path) > 0, "the commits after the checkpoint are in the journal");
    let store = Store::open(&path).expect("reopen");
    assert_all_present(&store);
}
