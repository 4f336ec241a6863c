//! The `zos-plan` binary as a user runs it: exit codes, JSON shape, error messages.

use std::process::{Command, Output};

fn zos_plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zos-plan")).args(args).output().expect("run zos-plan")
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn r2_check_json_on_h100_example() {
    let out = zos_plan(&["check", "--scenario", &example("h100-node.json"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = &report["requests"][0];
    assert_eq!(first["twin_id"], 1);
    assert_eq!(first["contract_id"], 100);
    let trainer =
        first["workloads"].as_array().expect("workloads").iter().find(|wl| wl["name"] == "trainer").expect("trainer");
    assert_eq!(trainer["verdict"], "admit");
    assert_eq!(trainer["type"], "zmachine");
    assert_eq!(trainer["gpus"][0], "0000:00:06.0/10de/2330");
    let second = &report["requests"][1]["workloads"][1];
    assert_eq!(second["verdict"], "reject");
    assert_eq!(second["shortfalls"][0]["resource"], "gpu");
    for key in ["total", "reserved", "used", "free"] {
        for field in ["cru", "sru", "hru", "mru", "ipv4u"] {
            assert!(report["usage"][key][field].is_u64(), "usage.{key}.{field}");
        }
    }
}

#[test]
fn check_tables_on_every_example() {
    for name in ["h100-node.json", "memory-16g-zos.json", "fragmented-disks-atomic.json"] {
        let out = zos_plan(&["check", "--scenario", &example(name)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Node usage"), "{name}: {text}");
    }
}

#[test]
fn bad_input_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{\"node\": {\"cru\": 1,\n \"mru\": \"lots\"}}").expect("write");
    let out = zos_plan(&["check", "--scenario", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.json:2:"), "{stderr}");
    assert!(stderr.contains("node.mru"), "{stderr}");

    let out = zos_plan(&["check", "--scenario", "/nonexistent/scenario.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/scenario.json"));
}

#[test]
fn unknown_workload_type_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k8s.json");
    std::fs::write(
        &path,
        r#"{"node": {"cru": 1, "mru": 5}, "requests": [{"workloads": [{"name": "a", "type": "kubernetes"}]}]}"#,
    )
    .expect("write");
    let out = zos_plan(&["check", "--scenario", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown workload type 'kubernetes'"));
}
