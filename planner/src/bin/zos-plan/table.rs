//! Tables a node operator reads at a glance.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use zos_planner::check::{CheckReport, WorkloadReport};
use zos_planner::{Resource, Shortfall};
use zos_types::{Capacity, Unit};

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
        Resource::Mru => format!(
            "mru: {} requested, {} available (used {} incl. {} reserved, of {})",
            Unit(short.requested),
            Unit(short.available),
            Unit(short.used),
            Unit(short.reserved),
            Unit(short.total)
        ),
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
        ("mru (memory)", |cap| cap.mru.to_string()),
        ("sru (ssd)", |cap| cap.sru.to_string()),
        ("hru (hdd)", |cap| cap.hru.to_string()),
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
