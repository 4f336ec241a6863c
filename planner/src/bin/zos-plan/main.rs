//! `zos-plan`: the offline what-if planner. It reads files, runs the same ledger code that admits on
//! the node, and prints tables or JSON.
//!
//! Exit codes: 0 the work was done (whatever the verdicts), 1 an internal failure, 2 bad input
//! (unreadable file, malformed JSON, a field of the wrong shape), with the file, line and field.

mod input;
mod table;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zos_types::scenario::Scenario;

#[derive(Parser)]
#[command(name = "zos-plan", version, about = "What-if capacity planning for ZOS nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a scenario (a node, a policy, existing deployments, requests) without side effects.
    Check {
        /// The scenario file (JSON).
        #[arg(long)]
        scenario: PathBuf,
        /// Print one JSON object instead of tables.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("zos-plan: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check { scenario, json } => {
            let scenario: Scenario = input::read_json(&scenario).map_err(Failure::bad_input)?;
            let report = zos_planner::check::check(&scenario);
            let text = if json {
                serde_json::to_string_pretty(&report).context("encoding the report")?
            } else {
                table::check_report(&report)
            };
            print(&text)
        }
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::from(err).into()),
        _ => Ok(()),
    }
}
