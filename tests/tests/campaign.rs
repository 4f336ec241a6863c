//! The reliability campaign's quick run, as CI makes it: concurrency with the invariant checker,
//! SIGKILLs of the engine with a check after each restart, and the bounded fuzz; zero violations.

use std::process::Command;

#[test]
fn quick_campaign_finds_no_violation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("RELIABILITY.md");
    let out = Command::new(env!("CARGO_BIN_EXE_zos-campaign"))
        .args(["--quick", "--out"])
        .arg(&report)
        .output()
        .expect("zos-campaign");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the campaign found violations or failed:\n{stderr}");
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(text.contains("**Invariant violations and findings: 0.**"), "{text}");
    for section in ["## Concurrency", "## Crashes", "## Bad input", "| 64 |"] {
        assert!(text.contains(section), "{section} in the report:\n{text}");
    }
}
