//! `zos-plan`: the offline what-if planner. It reads files and this machine's `/proc` and `/sys`, runs
//! the same ledger code that admits on the node, and prints tables or JSON.
//!
//! Exit codes: 0 the work was done (whatever the verdicts), 1 an internal failure, 2 bad input
//! (unreadable file, malformed JSON, a field of the wrong shape, a bad flag, an unwritable output
//! path), with the file, line and field; with `check --detailed-exitcode`, 3 when a request was refused.

mod bench;
mod counters;
mod discover;
mod input;
mod plot;
mod table;
mod validate;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zos_planner::Ledger;
use zos_planner::headroom::{Shape, headroom};
use zos_planner::placement::{Objective, PlacementOptions, place};
use zos_types::Unit;
use zos_types::scenario::{Farm, Policy, Preset, Requests, Scenario};

#[derive(Parser)]
#[command(name = "zos-plan", version, about = "What-if capacity planning for ZOS nodes and farms")]
struct Cli {
    /// What to do; with none, `discover` this machine.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
struct MachineArgs {
    /// Read the machine under this root (a snapshot such as fixtures/hardware/h100-node) instead of `/`.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Treat this disk as SSD whatever its rotational flag says (repeatable).
    #[arg(long)]
    ssd: Vec<String>,
    /// Treat this disk as HDD (repeatable).
    #[arg(long)]
    hdd: Vec<String>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum ShapeKind {
    Zmachine,
    Zmount,
    Volume,
    Zdb,
    Ip,
    Qsfs,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum PresetArg {
    Zos,
    Strict,
}

#[derive(Subcommand)]
enum Command {
    /// Describe this machine (or a snapshot) as a node: threads, memory, pools, GPUs, NICs, reserved and usable.
    Discover {
        #[command(flatten)]
        machine: MachineArgs,
        /// Print the `node` object of a scenario instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a scenario (a node, a policy, existing deployments, requests) without side effects.
    Check {
        /// The scenario file (JSON; `-` for stdin).
        #[arg(long)]
        scenario: PathBuf,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Exit 3 when any request is not fully admitted (reject, partial or invalid); 0 when all are.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// How many more of a shape fit, what binds first, and the largest single workload of each type.
    Headroom {
        /// A scenario (its state after the requests; `-` for stdin); without it, this machine (see --root).
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[command(flatten)]
        machine: MachineArgs,
        /// Policy for this machine (default strict); not with --scenario, which carries its own.
        #[arg(long, value_enum)]
        policy: Option<PresetArg>,
        /// The shape's type.
        #[arg(long = "type", value_enum, default_value = "zmachine")]
        kind: ShapeKind,
        /// zmachine vCPUs.
        #[arg(long, default_value_t = 1)]
        cpu: u8,
        /// zmachine memory (e.g. 4GiB).
        #[arg(long, default_value = "1GiB")]
        memory: Unit,
        /// zmachine root disk (0 for the minimum).
        #[arg(long, default_value = "0")]
        disk: Unit,
        /// zmount, volume or zdb size; qsfs cache size.
        #[arg(long, default_value = "10GiB")]
        size: Unit,
        /// Stop counting at this many.
        #[arg(long, default_value_t = 1_000_000)]
        limit: u64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Print CSV (a header and one row, sizes in bytes) instead of tables.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Assign deployments (whole) to the nodes of a farm.
    Place {
        /// The farm: {"nodes": [{"name", "node", "policy"?, "deployments"?}]} (`-` for stdin).
        #[arg(long)]
        farm: PathBuf,
        /// The deployments: {"requests": [...]} (`-` for stdin).
        #[arg(long)]
        requests: PathBuf,
        /// min-nodes, balance or max-placed.
        #[arg(long, default_value = "min-nodes")]
        objective: String,
        /// Time limit of the MILP improvement, in seconds (0: heuristic only).
        #[arg(long, default_value_t = 10.0)]
        time_limit: f64,
        /// Write an SVG chart of per-node utilization to this file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Print CSV (one row per deployment: twin_id, contract_id, node, why_not_placed) instead of tables.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Run the benchmark suite on this machine.
    Bench {
        /// Smaller sizes, for a first look.
        #[arg(long)]
        quick: bool,
        /// Print JSON (with the machine description) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn bad_input(error: anyhow::Error) -> Failure {
        Failure { code: 2, error }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 1, error }
    }
}

impl Cli {
    /// Whether the command asked for JSON (then errors are JSON too).
    fn json(&self) -> bool {
        match &self.command {
            Some(
                Command::Discover { json, .. }
                | Command::Check { json, .. }
                | Command::Headroom { json, .. }
                | Command::Place { json, .. }
                | Command::Bench { json, .. },
            ) => *json,
            None => false,
        }
    }
}

/// An error as JSON: `{"error": {"file", "line", "column", "path", "message"}}` (nulls where unknown).
fn error_json(error: &anyhow::Error) -> String {
    let located = error.chain().find_map(|cause| cause.downcast_ref::<input::InputError>());
    let body = match located {
        Some(at) => serde_json::json!({
            "file": at.file, "line": at.line, "column": at.column,
            "path": if at.path.is_empty() { None } else { Some(&at.path) }, "message": at.message,
        }),
        None => serde_json::json!({
            "file": null, "line": null, "column": null, "path": null, "message": format!("{error:#}"),
        }),
    };
    serde_json::json!({ "error": body }).to_string()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.code != 3 {
                if json {
                    println!("{}", error_json(&failure.error));
                }
                eprintln!("zos-plan: error: {:#}", failure.error);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn render<T: Serialize>(json: bool, value: &T, table: impl FnOnce(&T) -> String) -> Result<(), Failure> {
    let text = if json { serde_json::to_string_pretty(value).context("encoding the report")? } else { table(value) };
    print(&text)
}

fn discover_machine(machine: &MachineArgs) -> Result<discover::Discovery, Failure> {
    let overrides = discover::Overrides { ssd: &machine.ssd, hdd: &machine.hdd };
    let hardware = zos_hardware::Hardware::read(&machine.root).map_err(|err| Failure::bad_input(err.into()))?;
    for (flag, names) in [("--ssd", &machine.ssd), ("--hdd", &machine.hdd)] {
        for name in names {
            if !hardware.block.disks.iter().any(|disk| &disk.name == name) {
                let known: Vec<&str> = hardware.block.disks.iter().map(|disk| disk.name.as_str()).collect();
                return Err(Failure::bad_input(anyhow!(
                    "{flag} {name}: no such disk under {} (disks: {})",
                    machine.root.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
        }
    }
    Ok(discover::node(hardware, &overrides, machine.root == Path::new("/")))
}

fn run(cli: Cli) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Discover {
        machine: MachineArgs { root: PathBuf::from("/"), ssd: Vec::new(), hdd: Vec::new() },
        json: false,
    });
    match command {
        Command::Discover { machine, json } => {
            let found = discover_machine(&machine)?;
            if json {
                render(true, &found.node, |_| String::new())
            } else {
                print(&table::discovery(&found, &machine.root))
            }
        }
        Command::Check { scenario, json, detailed_exitcode } => {
            let scenario = read_scenario(&scenario)?;
            let report = zos_planner::check::check(&scenario);
            render(json, &report, table::check_report)?;
            if detailed_exitcode && report.requests.iter().any(|request| request.verdict != "admit") {
                return Err(Failure { code: 3, error: anyhow!("") });
            }
            Ok(())
        }
        Command::Headroom { scenario, machine, policy, kind, cpu, memory, disk, size, limit, json, csv } => {
            let ledger = match scenario {
                Some(_) if policy.is_some() => {
                    return Err(Failure::bad_input(anyhow!(
                        "--policy is for this machine; a --scenario carries its own policy (set it there)"
                    )));
                }
                Some(path) => ledger_after(&read_scenario(&path)?),
                None => {
                    let preset = if policy == Some(PresetArg::Zos) { Preset::Zos } else { Preset::Strict };
                    Ledger::new(&discover_machine(&machine)?.node, Policy::preset(preset))
                }
            };
            let shape = match kind {
                ShapeKind::Zmachine => Shape::Zmachine { cpu, memory, disk },
                ShapeKind::Zmount => Shape::Zmount { size },
                ShapeKind::Volume => Shape::Volume { size },
                ShapeKind::Zdb => Shape::Zdb { size },
                ShapeKind::Ip => Shape::Ip,
                ShapeKind::Qsfs => Shape::Qsfs { cache: size },
            };
            validate::shape(&shape).map_err(Failure::bad_input)?;
            let report = headroom(&ledger, shape, limit);
            if csv { print(&table::headroom_csv(&report)) } else { render(json, &report, table::headroom) }
        }
        Command::Place { farm, requests, objective, time_limit, plot, json, csv } => {
            let objective = Objective::parse(&objective).map_err(|err| Failure::bad_input(anyhow!(err)))?;
            if !time_limit.is_finite() || time_limit < 0.0 {
                return Err(Failure::bad_input(anyhow!("--time-limit must be a non-negative number of seconds")));
            }
            if farm == Path::new("-") && requests == Path::new("-") {
                return Err(Failure::bad_input(anyhow!("only one of --farm and --requests can be - (stdin)")));
            }
            let farm: Farm = input::read_json_warn(&farm).map_err(Failure::bad_input)?;
            validate::farm(&farm).map_err(Failure::bad_input)?;
            let requests: Requests = input::read_json_warn(&requests).map_err(Failure::bad_input)?;
            let options = PlacementOptions { objective, time_limit_secs: time_limit, ..PlacementOptions::default() };
            // A long placement shows that it is working on a terminal (indicatif draws nothing when
            // stderr is not one: pipes and files get no progress lines).
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message(format!(
                "placing {} deployments on {} nodes ({objective}, MILP time limit {time_limit} s)",
                requests.requests.len(),
                farm.nodes.len(),
            ));
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let report = place(&farm, &requests.requests, &options);
            spinner.finish_and_clear();
            if let Some(path) = plot {
                let picture = plot::render(&report, plot::Format::of(&path))?;
                write_file(&path, &picture).map_err(|err| Failure::bad_input(err.error))?;
            }
            if csv { print(&table::placement_csv(&report)) } else { render(json, &report, table::placement) }
        }
        Command::Bench { quick, json } => render(json, &bench::run(quick)?, table::bench),
    }
}

/// Reads a scenario and refuses one that cannot describe a real node.
fn read_scenario(path: &Path) -> Result<Scenario, Failure> {
    let text = input::read_text(path).map_err(Failure::bad_input)?;
    let scenario: Scenario = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(mut root) if counters::present(&root) => {
            let located = |err: anyhow::Error| Failure::bad_input(anyhow!("{}: {err:#}", path.display()));
            counters::expand(&mut root).map_err(located)?;
            serde_path_to_error::deserialize(root)
                .map_err(|err| located(anyhow!("at {}: {}", err.path(), err.inner())))?
        }
        _ => input::decode_warn(path, &text).map_err(Failure::bad_input)?,
    };
    validate::scenario(&scenario).map_err(|err| Failure::bad_input(anyhow!("{}: {err:#}", path.display())))?;
    Ok(scenario)
}

/// The ledger of a scenario after its existing deployments and requests.
/// The node's ledger once a scenario's requests are judged: the very rules `check` applies (one truth
/// per rule: a request for a contract already taken holds nothing, as `check` refuses it).
fn ledger_after(scenario: &Scenario) -> Ledger {
    zos_planner::check::check_with_ledger(scenario).1
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display())).map_err(Failure::from)
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::from(err).into()),
        _ => Ok(()),
    }
}
