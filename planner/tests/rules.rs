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

fn network(name: &str) -> Value {
    json!({"name": name, "type": "network", "data": {
        "ip_range": "10.1.0.0/16", "subnet": "10.1.1.0/24", "wireguard_private_key": "key"}})
}

fn zmount(name: &str, size: u64) -> Value {
    json!({"name": name, "type": "zmount", "data": {"size": size}})
}

/// `vm` with `mounts` (zmount, volume or qsfs names) and an optional public IP workload name.
fn vm_using(name: &str, memory: u64, mounts: &[&str], public_ip: Option<&str>) -> Value {
    let mut v = vm(name, 1, memory);
    v["data"]["mounts"] = mounts.iter().map(|m| json!({"name": m, "mountpoint": format!("/{m}")})).collect();
    if let Some(ip) = public_ip {
        v["data"]["network"]["public_ip"] = json!(ip);
    }
    v
}

fn with_gpus(mut workload: Value, gpus: &[&str]) -> Value {
    workload["data"]["gpu"] = json!(gpus);
    workload
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
            name: "ipv4 under strict: addresses are exclusive",
            scenario: json!({"node": {"cru": 8, "mru": 64 * GIB, "public_ips": ["203.0.113.10/24"]}, "policy": "strict",
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
        // Rule: a workload whose dependency in the same deployment was refused is refused too (ZOS installs in
        // order and a VM whose disk or IP failed fails: reference section 2.4).
        Case {
            name: "dependent_zmachine_refused_with_its_zmount",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![network("net"), zmount("disk", 8192 * GIB),
                    vm_using("vm", GIB, &["disk"], None)])]}),
            expect: &["disk:reject", "net:admit", "vm:reject"],
        },
        Case {
            name: "dependent_zmachine_refused_with_its_volume",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
                "requests": [deployment(1, 1, vec![network("net"),
                    json!({"name": "vol", "type": "volume", "data": {"size": 8192 * GIB}}),
                    vm_using("vm", GIB, &["vol"], None)])]}),
            expect: &["vol:reject", "net:admit", "vm:reject"],
        },
        Case {
            name: "dependent_zmachine_refused_with_its_public_ip",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": "strict",
                "requests": [deployment(1, 1, vec![network("net"),
                    json!({"name": "pub", "type": "ip", "data": {"v4": true}}),
                    vm_using("vm", GIB, &[], Some("pub"))])]}),
            expect: &["net:admit", "pub:reject", "vm:reject"],
        },
        Case {
            name: "dependent_zlogs_refused_with_its_zmachine_transitively",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
            "requests": [
                deployment(1, 1, vec![network("net"), zmount("disk", 8192 * GIB), vm_using("vm", GIB, &["disk"], None),
                    json!({"name": "logs", "type": "zlogs", "data": {"zmachine": "vm", "output": "redis://10.1.1.9"}})]),
                deployment(1, 2, vec![network("net"), vm("big", 1, 64 * GIB),
                    json!({"name": "logs", "type": "zlogs", "data": {"zmachine": "big", "output": "ws://10.1.1.9"}})]),
            ]}),
            expect: &["disk:reject", "net:admit", "vm:reject", "logs:reject", "net:admit", "big:reject", "logs:reject"],
        },
        // Rule: checking a stored deployment again (the very same deployment as one already on the node, as ZOS
        // re-runs it at boot) excludes its own usage, disks included: they are inside the pools' `used` already.
        Case {
            name: "reprovisioning_is_idempotent",
            scenario: json!({"node": {"cru": 8, "mru": 16 * GIB,
                    "pools": [{"name": "ssd0", "kind": "ssd", "size": 100 * GIB, "used": 95 * GIB}]},
                "policy": "zos",
                "deployments": [deployment(1, 1, vec![with_state(network("net"), "ok"),
                    with_state(zmount("disk", 80 * GIB), "ok"), with_state(vm_using("vm", 2 * GIB, &["disk"], None), "ok")])],
                "requests": [deployment(1, 1, vec![network("net"), zmount("disk", 80 * GIB),
                    vm_using("vm", 2 * GIB, &["disk"], None)])]}),
            expect: &["disk:admit", "net:admit", "vm:admit"],
        },
        // Rule: a twin's contract is one deployment; creating it again is refused with ZOS's "exists" (section 2.2),
        // whether it is on the node already or an earlier valid request of the scenario took it.
        Case {
            name: "same_twin_contract_refused_exists",
            scenario: json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
            "deployments": [deployment(1, 1, vec![with_state(vm("a", 1, GIB), "ok")])],
            "requests": [
                deployment(1, 1, vec![vm("b", 1, GIB)]),
                deployment(2, 5, vec![vm("c", 1, GIB)]),
                deployment(2, 5, vec![vm("d", 1, GIB)]),
                deployment(2, 5, vec![vm("c", 1, GIB)]),
                deployment(3, 7, vec![vm("tiny", 1, 100 * MIB)]),
                deployment(3, 7, vec![vm("e", 1, GIB)]),
            ]}),
            expect: &["b:invalid", "c:admit", "d:invalid", "c:invalid", "tiny:invalid", "e:admit"],
        },
        // Rule: the same GPU named twice in one zmachine is refused (ZOS is silent), under both presets.
        Case {
            name: "same_gpu_twice_refused",
            scenario: json!({"node": {"cru": 32, "mru": 256 * GIB, "pools": [{"name": "s", "kind": "ssd", "size": 1024 * GIB}],
                "gpus": [{"id": "0000:00:06.0", "vendor": "10de", "device": "2330"}]},
            "policy": "zos",
            "requests": [
                deployment(1, 1, vec![with_gpus(vm("twice", 1, GIB), &["0000:00:06.0/10de/2330", "0000:00:06.0/10de/2330"])]),
                deployment(1, 2, vec![with_gpus(vm("once", 1, GIB), &["0000:00:06.0/10de/2330"])]),
            ]}),
            expect: &["twice:invalid", "once:admit"],
        },
        // Rule (a deliberate difference): a zdb namespace goes to the HDD whose zdb container has the most room
        // left; ZOS takes the first container with room in Go map (random) order.
        Case {
            name: "zdb_placement_takes_the_container_with_most_room",
            scenario: json!({"node": {"cru": 8, "mru": 16 * GIB, "pools": [
                    {"name": "h1", "kind": "hdd", "size": 1000 * GIB, "used": 800 * GIB, "zdb": true},
                    {"name": "h2", "kind": "hdd", "size": 1000 * GIB, "used": 100 * GIB, "zdb": true},
                    {"name": "h3", "kind": "hdd", "size": 1000 * GIB, "used": 500 * GIB, "zdb": true}]},
                "policy": "zos",
                "requests": [deployment(1, 1, vec![json!({"name": "db", "type": "zdb", "data": {"size": 50 * GIB, "mode": "seq"}})]),
                             deployment(1, 2, vec![json!({"name": "big", "type": "zdb", "data": {"size": 850 * GIB, "mode": "seq"}})]),
                             deployment(1, 3, vec![json!({"name": "next", "type": "zdb", "data": {"size": 400 * GIB, "mode": "seq"}})])]}),
            expect: &["db:admit@h2", "big:admit@h2", "next:admit@h3"],
        },
        // Rule: `zos` does not check public IPv4 at admission (ZOS takes addresses from the contract; the ip
        // workload fails at run time when none is free): more ip workloads than the node's list are admitted.
        Case {
            name: "zos_policy_does_not_check_ipv4",
            scenario: json!({"node": {"cru": 8, "mru": 64 * GIB, "public_ips": ["203.0.113.10/24"]}, "policy": "zos",
                "requests": [deployment(1, 1, vec![json!({"name": "a", "type": "ip", "data": {"v4": true}})]),
                             deployment(1, 2, vec![json!({"name": "b", "type": "ip", "data": {"v4": true, "v6": true}})]),
                             deployment(1, 3, vec![json!({"name": "c", "type": "ipv4", "data": {}})])]}),
            expect: &["a:admit", "b:admit", "c:admit"],
        },
    ]
}

#[test]
fn admission_rules() {
    let mut failures = Vec::new();
    for case in cases() {
        let report = run(case.scenario);
        // An expectation `name:admit@pool` also checks the pool the workload's disk went to.
        let pools = report.requests.iter().flat_map(|request| &request.workloads).map(|wl| wl.assignment.pool.clone());
        let got: Vec<String> = verdicts(&report)
            .into_iter()
            .zip(pools)
            .zip(case.expect.iter().map(|it| it.contains('@')).chain(std::iter::repeat(false)))
            .map(|((got, pool), with_pool)| match (with_pool, pool) {
                (true, Some(pool)) => format!("{got}@{pool}"),
                _ => got,
            })
            .collect();
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

#[test]
fn dependent_zmachine_names_its_refused_dependency_and_holds_nothing() {
    let report = run(json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
        "requests": [deployment(1, 1, vec![network("net"), zmount("disk", 8192 * GIB),
            vm_using("vm", 4 * GIB, &["disk"], None)])]}));
    let report = serde_json::to_value(&report).expect("json");
    let vm = &report["requests"][0]["workloads"][2];
    assert_eq!(vm["name"], "vm");
    assert_eq!(vm["verdict"], "reject");
    let reasons: Vec<&Value> = vm["shortfalls"].as_array().expect("shortfalls").iter().map(|s| &s["reason"]).collect();
    assert_eq!(reasons, [&json!({"kind": "dependency", "name": "disk", "type": "zmount"})]);
    let message = vm["shortfalls"][0]["message"].as_str().expect("message");
    assert!(message.contains("zmount 'disk'"), "{message}");
    assert_eq!(report["usage"]["used"]["mru"], 0, "the refused VM holds no memory");
    assert_eq!(report["usage"]["used"]["cru"], 0, "nor CPU");
}

#[test]
fn reprovisioning_takes_nothing_twice() {
    let stored = deployment(
        1,
        1,
        vec![with_state(zmount("disk", 80 * GIB), "ok"), with_state(vm_using("vm", 2 * GIB, &["disk"], None), "ok")],
    );
    let report = run(json!({"node": {"cru": 8, "mru": 16 * GIB,
            "pools": [{"name": "ssd0", "kind": "ssd", "size": 100 * GIB, "used": 95 * GIB}]},
        "policy": "zos", "deployments": [stored.clone()], "requests": [stored.clone(), stored]}));
    assert_eq!(verdicts(&report), ["disk:admit", "vm:admit", "disk:admit", "vm:admit"]);
    assert_eq!(report.usage.used.sru.bytes(), 95 * GIB, "the disks stay inside the pool's used, once");
    assert_eq!(report.usage.used.mru.bytes(), 2 * GIB, "the VM's memory counts once");
}

#[test]
fn same_twin_contract_carries_zos_message() {
    let report = run(json!({"node": node(8, 16 * GIB, 0), "policy": "zos",
        "deployments": [deployment(1, 1, vec![with_state(vm("a", 1, GIB), "error")])],
        "requests": [deployment(1, 1, vec![vm("b", 1, GIB)])]}));
    let request = &report.requests[0];
    assert_eq!(request.verdict, "invalid");
    assert_eq!(request.message.as_deref(), Some("exists"));
    assert_eq!(request.workloads[0].message.as_deref(), Some("exists"));
    assert_eq!(report.usage.used.mru.bytes(), 0, "a refused request takes nothing");
}

#[test]
fn same_gpu_twice_names_the_gpu() {
    let report = run(json!({"node": {"cru": 32, "mru": 256 * GIB,
            "gpus": [{"id": "0000:00:06.0", "vendor": "10de", "device": "2330"}]},
        "policy": "strict",
        "requests": [deployment(1, 1, vec![with_gpus(vm("twice", 1, GIB), &["0000:00:06.0/10de/2330", "0000:00:06.0/10DE/2330"])])]}));
    let request = &report.requests[0];
    assert_eq!(request.verdict, "invalid");
    assert_eq!(request.message.as_deref(), Some("gpu '0000:00:06.0' is listed more than once"));
}

#[test]
fn zos_policy_admits_more_ips_than_the_list_without_underflow() {
    let report = run(json!({"node": {"cru": 8, "mru": 64 * GIB, "public_ips": ["203.0.113.10/24"]}, "policy": "zos",
        "requests": [deployment(1, 1, vec![json!({"name": "a", "type": "ip", "data": {"v4": true}}),
                                            json!({"name": "b", "type": "ip", "data": {"v4": true}}),
                                            json!({"name": "c", "type": "ipv4", "data": {}})])]}));
    let workloads = &report.requests[0].workloads;
    // ZOS's walk order puts the deprecated `ipv4` type before `ip`.
    assert_eq!(verdicts(&report), ["c:admit", "a:admit", "b:admit"]);
    assert_eq!(workloads[0].assignment.ip.as_deref(), Some("203.0.113.10/24"), "the list's address goes to the first");
    assert_eq!(workloads[1].assignment.ip, None, "no address left: none granted");
    assert_eq!(workloads[2].assignment.ip, None);
    let usage = report.usage;
    assert_eq!((usage.total.ipv4u, usage.used.ipv4u, usage.free.ipv4u), (1, 3, 0));
}
