//! Data-driven admission cases. Each case is named after the rule it checks; most are the derived
//! acceptance cases of reference/zos-behaviour.md section 7.8.

use serde_json::{Value, json};
use zos_planner::check::{CheckReport, check};
use zos_types::scenario::Scenario;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn vm(name: &str, cpu: u64, memory: u64) -> Value {
    json!({"name": name, "type": "zmachine", "data": {
        "network": {"interfaces": [{"network": "net", "ip": "10.1.1.2"}]},
        "compute_capacity": {"cpu": cpu, "memory": memory}}})
}

fn with_state(mut workload: Value, state: &str) -> Value {
    workload["result"] = json!({"created": 1, "state": state});
    workload
}

fn deployment(twin: u64, contract: u64, workloads: Vec<Value>) -> Value {
    json!({"twin_id": twin, "contract_id": contract, "workloads": workloads})
}

fn node(cru: u64, mru: u64, os_used: u64) -> Value {
    json!({"cru": cru, "mru": mru, "os_used_mru": os_used,
           "pools": [{"name": "ssd0", "kind": "ssd", "size": 4096 * GIB}, {"name": "hdd0", "kind": "hdd", "size": 4096 * GIB}]})
}

fn run(scenario: Value) -> CheckReport {
    let scenario: Scenario = serde_json::from_value(scenario).expect("scenario");
    check(&scenario)
}

/// `name:verdict` of every workload of every request, in walk order.
fn verdicts(report: &CheckReport) -> Vec<String> {
    report
        .requests
        .iter()
        .flat_map(|request| request.workloads.iter().map(|wl| format!("{}:{}", wl.name, wl.verdict)))
        .collect()
}

struct Case {
    name: &'static str,
    scenario: Value,
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "memory: 16 GiB node with 1 GiB OS used admits 14 GiB (reserved 2 GiB)",
            scenario: json!({"node": node(64, 16 * GIB, GIB), "policy": "zos",
                "requests": [deployment(1, 1, vec![vm("a", 1, 14 * GIB)])]}),
            expect: &["a:admit"],
        },
        Case {
            name: "memory: 14 GiB + 1 byte is one byte too many",
            scenario: json!({"node": node(64, 16 * GIB, GIB), "policy": "zos",
                "requests": [deployment(1, 1, vec![vm("a", 1, 14 * GIB + 1)])]}),
            expect: &["a:reject"],
        },
        Case {
            name: "memory: reserved is 10% on a 64 GiB node, so 57.6 GiB is usable",
            scenario: json!({"node": node(64, 64 * GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![vm("a", 1, 64 * GIB - 6_871_947_673)]),
                             deployment(1, 2, vec![vm("b", 1, 250 * MIB)])]}),
            expect: &["a:admit", "b:reject"],
        },
        Case {
            name: "memory: ok and paused count, error and init do not",
            scenario: json!({"node": node(64, 16 * GIB, 0), "policy": "zos",
                "deployments": [deployment(9, 9, vec![
                    with_state(vm("ok", 1, 8 * GIB), "ok"), with_state(vm("paused", 1, 2 * GIB), "paused"),
                    with_state(vm("error", 1, 4 * GIB), "error"), with_state(vm("init", 1, 4 * GIB), "init"),
                    with_state(vm("deleted", 1, 4 * GIB), "deleted")])],
                "requests": [deployment(1, 1, vec![vm("a", 1, 4 * GIB + 1)]), deployment(1, 2, vec![vm("b", 1, 4 * GIB)])]}),
            expect: &["a:reject", "b:admit"],
        },
        Case {
            name: "memory: the OS's actual use wins when it is larger than the theoretical use",
            scenario: json!({"node": node(64, 16 * GIB, 13 * GIB), "policy": "zos",
                "deployments": [deployment(9, 9, vec![with_state(vm("ok", 1, 8 * GIB), "ok")])],
                "requests": [deployment(1, 1, vec![vm("a", 1, 3 * GIB + 1)]), deployment(1, 2, vec![vm("b", 1, 3 * GIB)])]}),
            expect: &["a:reject", "b:admit"],
        },
        Case {
            name: "self-exclusion: re-admitting a running 8 GiB VM does not count it twice",
            scenario: json!({"node": node(64, 16 * GIB, 0), "policy": "zos",
                "deployments": [deployment(1, 1, vec![with_state(vm("vm", 1, 8 * GIB), "ok")]),
                                deployment(2, 2, vec![with_state(vm("other", 1, 4 * GIB), "ok")])],
                "requests": [deployment(1, 1, vec![vm("vm", 1, 8 * GIB)])]}),
            expect: &["vm:admit"],
        },
        Case {
            name: "memory: zero-memory workloads are admitted even when memory is exhausted; qsfs needs 1 GiB",
            scenario: json!({"node": node(64, 4 * GIB, 0), "policy": "zos",
            "deployments": [deployment(9, 9, vec![with_state(vm("full", 1, 2 * GIB), "ok")])],
            "requests": [deployment(1, 1, vec![
                json!({"name": "disk", "type": "zmount", "data": {"size": GIB}}),
                json!({"name": "vol", "type": "volume", "data": {"size": GIB}}),
                json!({"name": "db", "type": "zdb", "data": {"size": GIB, "mode": "user"}}),
                json!({"name": "ip6", "type": "ip", "data": {"v6": true}}),
                json!({"name": "fs", "type": "qsfs", "data": {"cache": GIB, "config": {"minimal_shards": 2, "expected_shards": 4}}}),
            ])]}),
            expect: &["disk:admit", "vol:admit", "fs:reject", "ip6:admit", "db:admit"],
        },
        Case {
            name: "underflow: a node under 2 GiB admits no memory at all (ZOS wraps and admits everything)",
            scenario: json!({"node": node(4, GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![vm("a", 1, 250 * MIB)])]}),
            expect: &["a:reject"],
        },
        Case {
            name: "cpu under zos: a 64-vCPU VM on 8 threads passes the planner",
            scenario: json!({"node": node(8, 512 * GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![vm("a", 64, GIB)])]}),
            expect: &["a:admit"],
        },
        Case {
            name: "cpu under zos: eight 8-vCPU VMs on 8 threads all pass (overcommit)",
            scenario: json!({"node": node(8, 512 * GIB, 0), "policy": "zos",
                "requests": (0..8).map(|i| deployment(1, i, vec![vm("v", 8, GIB)])).collect::<Vec<_>>()}),
            expect: &["v:admit"; 8],
        },
        Case {
            name: "cpu under strict: threads x overcommit is the limit, equality admits",
            scenario: json!({"node": node(8, 512 * GIB, 0), "policy": {"preset": "strict", "cpu_overcommit": 1.5},
                "requests": [deployment(1, 1, vec![vm("a", 8, GIB)]), deployment(1, 2, vec![vm("b", 4, GIB)]),
                             deployment(1, 3, vec![vm("c", 1, GIB)])]}),
            expect: &["a:admit", "b:admit", "c:reject"],
        },
        Case {
            name: "ipv4 under strict: a node without addresses refuses a v4 ip",
            scenario: json!({"node": node(8, 64 * GIB, 0), "policy": "strict",
                "requests": [deployment(1, 1, vec![json!({"name": "ip", "type": "ip", "data": {"v4": true}})])]}),
            expect: &["ip:reject"],
        },
        Case {
            name: "ipv4 under zos: a node without addresses admits (the contract carries them)",
            scenario: json!({"node": node(8, 64 * GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![json!({"name": "ip", "type": "ipv4", "data": {}})])]}),
            expect: &["ip:admit"],
        },
        Case {
            name: "ipv4: addresses are exclusive under both presets",
            scenario: json!({"node": {"cru": 8, "mru": 64 * GIB, "public_ips": ["203.0.113.10/24"]}, "policy": "zos",
                "requests": [deployment(1, 1, vec![json!({"name": "a", "type": "ip", "data": {"v4": true}})]),
                             deployment(1, 2, vec![json!({"name": "b", "type": "ip", "data": {"v4": true, "v6": true}})])]}),
            expect: &["a:admit", "b:reject"],
        },
        Case {
            name: "gpu under strict: exclusive, and an unknown one is refused",
            scenario: json!({"node": {"cru": 32, "mru": 256 * GIB, "pools": [{"name": "s", "kind": "ssd", "size": 1024 * GIB}],
                                  "gpus": [{"id": "0000:00:06.0", "vendor": "10de", "device": "2330"}]},
            "requests": [
                deployment(1, 1, vec![{ let mut v = vm("a", 1, GIB); v["data"]["gpu"] = json!(["0000:00:06.0/10de/2330"]); v }]),
                deployment(1, 2, vec![{ let mut v = vm("b", 1, GIB); v["data"]["gpu"] = json!(["0000:00:06.0/10de/2330"]); v }]),
                deployment(1, 3, vec![{ let mut v = vm("c", 1, GIB); v["data"]["gpu"] = json!(["0000:00:07.0/10de/2330"]); v }]),
            ]}),
            expect: &["a:admit", "b:reject", "c:reject"],
        },
        Case {
            name: "disks: a zmount goes to the pool with most free space after allocation; none fits, rejected",
            scenario: json!({"node": {"cru": 8, "mru": 64 * GIB, "pools": [
                    {"name": "A", "kind": "ssd", "size": 1000, "used": 900}, {"name": "B", "kind": "ssd", "size": 1000, "used": 100}]},
                "requests": [deployment(1, 1, vec![json!({"name": "a", "type": "zmount", "data": {"size": 950}})]),
                             deployment(1, 2, vec![json!({"name": "b", "type": "zmount", "data": {"size": 900}})]),
                             deployment(1, 3, vec![json!({"name": "c", "type": "zmount", "data": {"size": 100}})])]}),
            expect: &["a:reject", "b:admit", "c:admit"],
        },
        Case {
            name: "atomic: one rejection rolls the whole deployment back",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": {"preset": "strict", "atomic": true},
                "requests": [deployment(1, 1, vec![vm("small", 1, GIB), vm("huge", 1, 64 * GIB)]),
                             deployment(1, 2, vec![vm("all", 1, 14 * GIB)])]}),
            expect: &["small:reject", "huge:reject", "all:admit"],
        },
        Case {
            name: "per workload (default): what fits is admitted, what does not is rejected",
            scenario: json!({"node": node(8, 16 * GIB, 0),
                "requests": [deployment(1, 1, vec![vm("small", 1, GIB), vm("huge", 1, 64 * GIB)])]}),
            expect: &["small:admit", "huge:reject"],
        },
        Case {
            name: "validation: an invalid request takes nothing and carries ZOS's message",
            scenario: json!({"node": node(8, 16 * GIB, 0),
                "requests": [deployment(1, 1, vec![vm("ok", 1, GIB), vm("tiny", 1, 100 * MIB)]),
                             deployment(1, 2, vec![vm("after", 1, 14 * GIB)])]}),
            expect: &["ok:invalid", "tiny:invalid", "after:admit"],
        },
    ]
}

#[test]
fn admission_rules() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = verdicts(&run(case.scenario));
        if got != case.expect {
            failures.push(format!("{}\n  expected {:?}\n  got      {:?}", case.name, case.expect, got));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn rejection_lists_every_shortfall_with_numbers() {
    let report = run(json!({"node": {"cru": 4, "mru": 8 * GIB, "pools": [
            {"name": "s0", "kind": "ssd", "size": 400 * GIB}, {"name": "s1", "kind": "ssd", "size": 400 * GIB},
            {"name": "s2", "kind": "ssd", "size": 400 * GIB}]},
        "requests": [deployment(1, 1, vec![{ let mut v = vm("big", 8, 16 * GIB); v["data"]["size"] = json!(600 * GIB); v }])]}));
    let workload = &report.requests[0].workloads[0];
    let resources: Vec<&str> = workload.shortfalls.iter().map(|s| s.resource.as_str()).collect();
    assert_eq!(resources, ["mru", "cru", "sru"]);
    let memory = &workload.shortfalls[0];
    assert_eq!(
        (memory.requested, memory.available, memory.reserved, memory.total),
        (16 * GIB, 6 * GIB, 2 * GIB, 8 * GIB)
    );
    assert_eq!(
        memory.message,
        format!(
            "failed to satisfy required capacity: cannot fulfil required memory size {} bytes out of usable {} bytes",
            16 * GIB,
            6 * GIB
        )
    );
    let disk = &workload.shortfalls[2];
    assert_eq!((disk.requested, disk.available, disk.total), (600 * GIB, 400 * GIB, 1200 * GIB));
    assert_eq!(disk.pools.len(), 3);
    assert!(disk.message.contains("600 GiB requested"), "{}", disk.message);
    assert!(disk.message.contains("1.1 TiB free in total across 3 pools"), "{}", disk.message);
}

#[test]
fn invalid_request_reports_zos_message_per_workload() {
    let report = run(json!({"node": node(8, 16 * GIB, 0),
        "requests": [deployment(1, 1, vec![vm("ok", 1, GIB), vm("tiny", 1, 100 * MIB)])]}));
    let request = &report.requests[0];
    assert_eq!(request.verdict, "invalid");
    assert_eq!(request.message.as_deref(), Some("mem capacity can't be less that 250M"));
    assert_eq!(request.workloads[1].message.as_deref(), Some("mem capacity can't be less that 250M"));
    assert_eq!(report.usage.used.mru.bytes(), 0, "an invalid request takes nothing");
}

#[test]
fn usage_counts_reserved_and_held() {
    let report = run(json!({"node": node(16, 64 * GIB, 0),
        "deployments": [deployment(1, 1, vec![with_state(vm("a", 4, 8 * GIB), "ok")])]}));
    let usage = report.usage;
    assert_eq!(usage.total.cru, 16);
    assert_eq!(usage.reserved.mru.bytes(), 64 * GIB / 10);
    assert_eq!(usage.used.mru.bytes(), 8 * GIB);
    assert_eq!(usage.used.cru, 4);
    assert_eq!(usage.free.mru.bytes(), 64 * GIB - 8 * GIB - 64 * GIB / 10);
    assert_eq!(usage.free.cru, 12);
}
