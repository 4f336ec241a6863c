//! Tables a node operator reads at a glance.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use zos_planner::check::{CheckReport, WorkloadReport};
use zos_planner::{Resource, Shortfall};
use zos_types::{Capacity, Unit};

/// A size in binary units as `zos_types::Unit` writes it (KiB to TiB, one truncated decimal), with
/// PiB and EiB above.
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SUFFIXES: [(&str, u32); 6] =
            [("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        for (suffix, shift) in SUFFIXES {
            let size = 1u64 << shift;
            if self.0 >= size {
                let whole = self.0 >> shift;
                let tenths = (self.0 & (size - 1)) / (size / 10);
                return if tenths == 0 {
                    write!(f, "{whole} {suffix}")
                } else {
                    write!(f, "{whole}.{tenths} {suffix}")
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// Two sizes side by side: in binary units, or in exact bytes (with the units after) when rounding
/// would make two different sizes read the same.
fn pair(a: u64, b: u64) -> (String, String) {
    let (ha, hb) = (Bytes(a).to_string(), Bytes(b).to_string());
    if a != b && ha == hb { (format!("{a} B ({ha})"), format!("{b} B ({hb})")) } else { (ha, hb) }
}

fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    table
}

/// Renders a `check` report.
pub fn check_report(report: &CheckReport) -> String {
    let mut out = String::new();
    if report.requests.is_empty() {
        out.push_str("No requests in the scenario.\n\n");
    }
    for request in &report.requests {
        let admitted = request.workloads.iter().filter(|wl| wl.verdict == "admit").count();
        out.push_str(&format!(
            "Request twin {} contract {}: {} ({admitted} of {} workloads admitted)\n",
            request.twin_id,
            request.contract_id,
            request.verdict.to_uppercase(),
            request.workloads.len()
        ));
        if let Some(message) = &request.message {
            out.push_str(&format!("  invalid: {message}\n"));
        }
        let mut table = new_table(&["workload", "type", "verdict", "details"]);
        for workload in &request.workloads {
            table.add_row(vec![
                workload.name.clone(),
                workload.kind.clone(),
                workload.verdict.to_string(),
                details(workload),
            ]);
        }
        out.push_str(&format!("{table}\n\n"));
    }
    out.push_str("Node usage after the requests\n");
    out.push_str(&usage_table(&report.usage).to_string());
    out
}

fn details(workload: &WorkloadReport) -> String {
    let mut lines = Vec::new();
    if let Some(pool) = &workload.assignment.pool {
        lines.push(format!("pool {pool}"));
    }
    if let Some(ip) = &workload.assignment.ip {
        lines.push(format!("ip {ip}"));
    }
    if !workload.assignment.gpus.is_empty() {
        lines.push(format!("gpu {}", workload.assignment.gpus.join(", ")));
    }
    lines.extend(workload.shortfalls.iter().map(describe));
    if let Some(message) = &workload.message {
        lines.push(message.clone());
    }
    lines.join("\n")
}

/// One shortfall in words, with sizes in binary units.
fn describe(short: &Shortfall) -> String {
    match short.resource {
        Resource::Mru => {
            let (requested, available) = pair(short.requested, short.available);
            format!(
                "mru: {requested} requested, {available} available (used {} incl. {} reserved, of {})",
                Bytes(short.used),
                Bytes(short.reserved),
                Bytes(short.total)
            )
        }
        Resource::Sru | Resource::Hru => format!("{}: {}", short.resource, short.message),
        Resource::Cru => {
            format!("cru: {} requested, {} of {} available", short.requested, short.available, short.total)
        }
        Resource::Ipv4u | Resource::Gpu => format!("{}: {}", short.resource, short.message),
    }
}

fn usage_table(usage: &zos_planner::Usage) -> Table {
    let mut table = new_table(&["resource", "total", "reserved", "used", "free"]);
    type Cell = fn(&Capacity) -> String;
    let rows: [(&str, Cell); 5] = [
        ("cru (threads)", |cap| cap.cru.to_string()),
        ("mru (memory)", |cap| Bytes(cap.mru.0).to_string()),
        ("sru (ssd)", |cap| Bytes(cap.sru.0).to_string()),
        ("hru (hdd)", |cap| Bytes(cap.hru.0).to_string()),
        ("ipv4u (public ips)", |cap| cap.ipv4u.to_string()),
    ];
    for (name, cell) in rows {
        table.add_row(vec![
            name.to_string(),
            cell(&usage.total),
            cell(&usage.reserved),
            cell(&usage.used),
            cell(&usage.free),
        ]);
    }
    table
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// Renders what discovery found.
pub fn discovery(found: &crate::discover::Discovery, root: &std::path::Path) -> String {
    let node = &found.node;
    let usage = zos_planner::Ledger::new(node, zos_types::scenario::Policy::default()).usage();
    let mut out = format!(
        "Node at {}: {} threads, {} memory ({} used by the OS now)\n\n",
        root.display(),
        node.cru,
        Bytes(node.mru.0),
        Bytes(node.os_used_mru.0)
    );
    out.push_str(&format!("{}\n\n", usage_table(&usage)));
    let mut pools = new_table(&["pool", "kind", "size", "kind decided by"]);
    for pool in &node.pools {
        let why = found.classified.iter().find(|(name, _)| *name == pool.name).map_or("", |(_, why)| why.as_str());
        pools.add_row(vec![
            pool.name.clone(),
            pool.kind.as_str().to_string(),
            Bytes(pool.size.0).to_string(),
            why.to_string(),
        ]);
    }
    out.push_str(&format!("Disks (one pool each; --ssd DISK or --hdd DISK overrides the kind)\n{pools}\n"));
    if !found.skipped_disks.is_empty() {
        let skipped: Vec<String> = found.skipped_disks.iter().map(|(name, why)| format!("{name} ({why})")).collect();
        out.push_str(&format!("Left out: {}\n", skipped.join(", ")));
    }
    let mut gpus = new_table(&["gpu", "vendor", "device", "id for a zmachine"]);
    for gpu in &node.gpus {
        gpus.add_row(vec![
            gpu.id.clone(),
            gpu.vendor.clone(),
            gpu.device.clone(),
            format!("{}/{}/{}", gpu.id, gpu.vendor, gpu.device),
        ]);
    }
    out.push_str(&format!("\nGPUs\n{gpus}\n"));
    let mut nics = new_table(&["nic", "mac", "state", "speed", "physical"]);
    for nic in &found.network.interfaces {
        nics.add_row(vec![
            nic.name.clone(),
            nic.mac.clone(),
            nic.state.clone(),
            nic.speed.filter(|&s| s > 0).map(|s| format!("{s} Mb/s")).unwrap_or_default(),
            if nic.physical { "yes" } else { "no" }.to_string(),
        ]);
    }
    out.push_str(&format!("\nNICs\n{nics}"));
    out
}

/// Renders a headroom report.
pub fn headroom(report: &zos_planner::headroom::Headroom) -> String {
    let more = if report.capped { format!("at least {}", report.count) } else { report.count.to_string() };
    let mut out = format!("{more} more of {} fit.\n", report.shape);
    if report.binding.is_empty() {
        out.push_str("Nothing refused the next one before the limit.\n");
    } else {
        out.push_str("The next one is refused by:\n");
        for short in &report.binding {
            out.push_str(&format!("  {}\n", describe(short)));
        }
        if report.binding.iter().any(|short| short.resource == zos_planner::Resource::Sru) {
            out.push_str(
                "SSD is what binds: a disk classified HDD that is an SSD can be declared one with --ssd DISK \
                 (see `zos-plan discover` for how each disk was classified).\n",
            );
        }
    }
    let largest = &report.largest;
    let unit = |value: Option<Unit>| value.map_or_else(|| "none fits".to_string(), |u| Bytes(u.0).to_string());
    let mut table = new_table(&["largest single workload that still fits", "size"]);
    table.add_row(vec!["zmachine memory (1 vCPU, minimum root)".to_string(), unit(largest.zmachine_memory)]);
    table.add_row(vec![
        "zmachine vCPUs (250 MiB, minimum root)".to_string(),
        largest.zmachine_cpu.map_or_else(|| "none fits".to_string(), |cpu| cpu.to_string()),
    ]);
    table.add_row(vec!["zmount".to_string(), unit(largest.zmount)]);
    table.add_row(vec!["volume".to_string(), unit(largest.volume)]);
    table.add_row(vec!["zdb".to_string(), unit(largest.zdb)]);
    table.add_row(vec!["public IPv4 addresses".to_string(), largest.ips.to_string()]);
    out.push_str(&format!("\n{table}"));
    out
}

/// A placed deployment's disks and their pools: `disk: ssd0, data: hdd1`.
fn pools(assignment: &zos_planner::placement::Assignment) -> String {
    assignment.pools.iter().map(|(workload, pool)| format!("{workload}: {pool}")).collect::<Vec<_>>().join(", ")
}

/// How many nodes refused an unplaced deployment for each resource: `mru: 3, sru: 1`.
fn refusals(unplaced: &zos_planner::placement::Unplaced) -> String {
    unplaced.refusals.iter().map(|(resource, n)| format!("{resource}: {n}")).collect::<Vec<_>>().join(", ")
}

/// The refused workloads of an unplaced deployment on its closest node, each with its shortfalls.
fn closest(unplaced: &zos_planner::placement::Unplaced) -> String {
    unplaced
        .workloads
        .iter()
        .map(|wl| format!("{} ({}):\n{}", wl.name, wl.kind, details(wl)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a placement.
pub fn placement(report: &zos_planner::placement::PlaceReport) -> String {
    let placed = report.assignments.iter().filter(|a| a.node.is_some()).count();
    let mut out = format!(
        "{placed} of {} deployments placed on {} nodes (objective {}: {:.3}, lower bound {:.3}, gap {:.3}, {}; kept the {} answer, heuristic gave {:.3})\n\n",
        report.assignments.len(),
        report.nodes_used,
        report.objective,
        report.objective_value,
        report.lower_bound,
        report.gap,
        if report.optimal { "optimal" } else { "not proven optimal" },
        report.solver,
        report.heuristic_value,
    );
    out.push_str(&format!("MILP: {}\n", report.milp));
    out.push_str(
        "(objective value: nodes used for min-nodes, the highest utilization of any node and resource for \
         balance, deployments left unplaced for max-placed; lower bound: no placement can do better; gap: \
         value - bound; fragmentation of a node: 1 - its largest free pool / all its free disk)\n\n",
    );
    let mut assignments = new_table(&["twin", "contract", "node", "pools"]);
    for a in &report.assignments {
        assignments.add_row(vec![
            a.twin_id.to_string(),
            a.contract_id.to_string(),
            a.node.clone().unwrap_or_else(|| "-".into()),
            pools(a),
        ]);
    }
    out.push_str(&format!("{assignments}\n"));
    if !report.unplaced.is_empty() {
        let mut unplaced =
            new_table(&["twin", "contract", "nodes refusing, per resource", "closest node", "its shortfalls there"]);
        for u in &report.unplaced {
            let mut why = refusals(u);
            if let Some(message) = &u.message {
                why = format!("{why} ({message})");
            }
            unplaced.add_row(vec![
                u.twin_id.to_string(),
                u.contract_id.to_string(),
                why,
                u.best_node.clone().unwrap_or_else(|| "-".into()),
                closest(u),
            ]);
        }
        out.push_str(&format!("\nNot placed\n{unplaced}\n"));
    }
    let mut nodes = new_table(&["node", "placed", "cpu", "memory", "ssd", "hdd", "fragmentation"]);
    for node in &report.nodes {
        nodes.add_row(vec![
            node.name.clone(),
            node.placed.to_string(),
            percent(node.utilization.cru),
            percent(node.utilization.mru),
            percent(node.utilization.sru),
            percent(node.utilization.hru),
            format!("{:.2}", node.fragmentation),
        ]);
    }
    out.push_str(&format!("\nNodes\n{nodes}"));
    out
}

/// Renders the benchmark suite.
pub fn bench(report: &crate::bench::BenchReport) -> String {
    let machine = &report.machine;
    let mut out = format!(
        "Machine: {} x {} threads, {} memory, kernel {}\n",
        machine.cpu_model,
        machine.threads,
        Bytes(machine.memory_bytes),
        machine.kernel
    );
    let mut table = new_table(&["benchmark", "value", "unit", "note"]);
    for figure in &report.figures {
        table.add_row(vec![
            figure.name.clone(),
            format!("{:.3}", figure.value),
            figure.unit.to_string(),
            figure.note.clone(),
        ]);
    }
    out.push_str(&table.to_string());
    out
}

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = header.join(",");
    for row in rows {
        out.push('\n');
        out.push_str(&row.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(","));
    }
    out
}

/// A headroom report as CSV: a header and one row, sizes in bytes (empty: none fits).
pub fn headroom_csv(report: &zos_planner::headroom::Headroom) -> String {
    let largest = &report.largest;
    let bytes = |value: Option<Unit>| value.map(|u| u.0.to_string()).unwrap_or_default();
    let binding: Vec<String> = report.binding.iter().map(|short| short.resource.to_string()).collect();
    csv(
        &[
            "shape",
            "count",
            "capped",
            "binding",
            "largest_zmachine_memory",
            "largest_zmachine_cpu",
            "largest_zmount",
            "largest_volume",
            "largest_zdb",
            "largest_ipv4u",
        ],
        &[vec![
            report.shape.to_string(),
            report.count.to_string(),
            report.capped.to_string(),
            binding.join(" "),
            bytes(largest.zmachine_memory),
            largest.zmachine_cpu.map(|cpu| cpu.to_string()).unwrap_or_default(),
            bytes(largest.zmount),
            bytes(largest.volume),
            bytes(largest.zdb),
            largest.ips.to_string(),
        ]],
    )
}

/// A placement as CSV: one row per deployment, its node (empty: not placed) and why not.
pub fn placement_csv(report: &zos_planner::placement::PlaceReport) -> String {
    let rows: Vec<Vec<String>> = report
        .assignments
        .iter()
        .map(|a| {
            let why = report
                .unplaced
                .iter()
                .find(|u| u.twin_id == a.twin_id && u.contract_id == a.contract_id)
                .map(|u| {
                    let mut why = vec![refusals(u)];
                    why.extend(u.message.clone());
                    why.extend(u.best_node.as_ref().map(|node| format!("closest node {node}")));
                    why.extend(
                        u.workloads.iter().map(|wl| format!("{}: {}", wl.name, details(wl).replace('\n', "; "))),
                    );
                    why.join("; ")
                })
                .unwrap_or_default();
            vec![a.twin_id.to_string(), a.contract_id.to_string(), a.node.clone().unwrap_or_default(), why, pools(a)]
        })
        .collect();
    csv(&["twin_id", "contract_id", "node", "why_not_placed", "pools"], &rows)
}
