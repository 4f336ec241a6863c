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

fn fixture(name: &str) -> String {
    let path = format!("{}/../tests/fixtures/hardware/{name}", env!("CARGO_MANIFEST_DIR"));
    assert!(std::path::Path::new(&path).is_dir(), "hardware snapshot {path} is missing");
    path
}

fn json_of(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn discover_h100_snapshot() {
    let node = json_of(&zos_plan(&["discover", "--root", &fixture("h100-node"), "--json"]));
    assert_eq!(node["cru"], 16);
    assert_eq!(node["mru"], 131_981_020u64 * 1024);
    assert_eq!(node["os_used_mru"], (131_981_020u64 - 131_483_464) * 1024);
    let pools = node["pools"].as_array().expect("pools");
    let names: Vec<&str> = pools.iter().map(|p| p["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["vda", "vdb"], "zram and empty loop devices are left out");
    assert_eq!(pools[0]["size"], 536_870_912u64 * 512);
    assert_eq!(pools[1]["size"], 621_744u64 * 512);
    assert_eq!(pools[0]["kind"], "hdd", "rotational=1 reads as HDD by default");
    assert_eq!(node["gpus"], serde_json::json!([{"id": "0000:00:06.0", "vendor": "10de", "device": "2330"}]));
}

#[test]
fn discover_overrides_and_dev_vm() {
    let node = json_of(&zos_plan(&["discover", "--root", &fixture("h100-node"), "--ssd", "vda", "--json"]));
    assert_eq!(node["pools"][0]["kind"], "ssd");
    let node = json_of(&zos_plan(&["discover", "--root", &fixture("dev-vm"), "--json"]));
    assert_eq!(node["cru"], 2);
    assert_eq!(node["pools"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["gpus"], serde_json::json!([]));
    let text = zos_plan(&["discover", "--root", &fixture("h100-node")]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("0000:00:06.0/10de/2330"));
}

#[test]
fn discover_feeds_check() {
    let node = json_of(&zos_plan(&["discover", "--root", &fixture("h100-node"), "--ssd", "vda", "--json"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.json");
    let scenario = serde_json::json!({"node": node, "requests": [{"twin_id": 1, "contract_id": 1, "workloads": [
        {"name": "vm", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}]},
            "compute_capacity": {"cpu": 4, "memory": 8u64 << 30}, "gpu": ["0000:00:06.0/10de/2330"]}}]}]});
    std::fs::write(&path, scenario.to_string()).expect("write");
    let report = json_of(&zos_plan(&["check", "--scenario", path.to_str().expect("path"), "--json"]));
    assert_eq!(report["requests"][0]["workloads"][0]["verdict"], "admit");
}

#[test]
fn headroom_on_a_scenario() {
    let report = json_of(&zos_plan(&[
        "headroom",
        "--scenario",
        &example("memory-16g-zos.json"),
        "--type",
        "zmachine",
        "--cpu",
        "1",
        "--memory",
        "1GiB",
        "--json",
    ]));
    assert_eq!(report["count"], 0, "the 16 GiB example is full after its requests");
    assert_eq!(report["binding"][0]["resource"], "mru");
    let report =
        json_of(&zos_plan(&["headroom", "--root", &fixture("h100-node"), "--ssd", "vda", "--type", "ip", "--json"]));
    assert_eq!(report["count"], 0, "strict: a node without public addresses gives none");
    let out = zos_plan(&["headroom", "--scenario", &example("h100-node.json"), "--memory", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn place_json_and_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("utilization.svg");
    let report = json_of(&zos_plan(&[
        "place",
        "--farm",
        &example("farm.json"),
        "--requests",
        &example("requests.json"),
        "--objective",
        "max-placed",
        "--plot",
        plot.to_str().expect("path"),
        "--json",
    ]));
    for key in [
        "assignments",
        "nodes_used",
        "objective",
        "lower_bound",
        "optimal",
        "objective_value",
        "gap",
        "unplaced",
        "nodes",
    ] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    assert_eq!(report["objective"], "max-placed");
    let assignments = report["assignments"].as_array().expect("assignments");
    assert_eq!(assignments.len(), 10);
    assert!(assignments.iter().all(|a| a["twin_id"].is_u64() && a["contract_id"].is_u64()));
    assert!(assignments.iter().any(|a| a["node"].is_null()), "the 64-vCPU request fits nowhere");
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(bars >= 4 * 4, "four bars per node, got {bars}");
}

#[test]
fn place_refuses_unknown_objective() {
    let out = zos_plan(&[
        "place",
        "--farm",
        &example("farm.json"),
        "--requests",
        &example("requests.json"),
        "--objective",
        "cheapest",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown objective 'cheapest'"));
}

#[test]
fn bench_quick_reports_machine_and_figures() {
    let report = json_of(&zos_plan(&["bench", "--quick", "--json"]));
    assert!(report["machine"]["threads"].as_u64().is_some_and(|n| n >= 1));
    let figures = report["figures"].as_array().expect("figures");
    assert!(figures.len() >= 5);
    assert!(figures.iter().all(|f| f["value"].as_f64().is_some_and(|v| v > 0.0)), "{figures:?}");
}

/// `discover` prints, for both snapshots, byte for byte what it printed before discovery moved into
/// `zos-hardware` (tables, `--json`, and with kind overrides).
#[test]
fn discover_output_unchanged_by_the_hardware_crate() {
    for snapshot in ["h100-node", "dev-vm"] {
        let root = fixture(snapshot);
        for (suffix, extra) in
            [("", &[][..]), (".json", &["--json"][..]), (".overrides", &["--ssd", "vda", "--hdd", "vdb"][..])]
        {
            let mut args = vec!["discover", "--root", &root];
            args.extend_from_slice(extra);
            let out = zos_plan(&args);
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            let printed = String::from_utf8_lossy(&out.stdout).replace(&root, "<root>");
            let golden = format!("{}/tests/golden/discover-{snapshot}{suffix}.txt", env!("CARGO_MANIFEST_DIR"));
            let expected = std::fs::read_to_string(&golden).expect("golden file");
            assert_eq!(printed, expected, "{snapshot} {extra:?} differs from {golden}");
        }
    }
}
