//! `zosctl`: talks to provisiond over zbus. Signs deployments with a twin's key file (hex ed25519 seed).
//!
//! Exit codes: 0 done; 1 the node refused or failed (the message says why, with its code); 2 bad input.

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zos_interfaces::provision::{ProvisionClient, StatisticsClient};
use zos_types::{Deployment, SigningKey};
use zos_zbus::Client;

#[derive(Parser)]
#[command(name = "zosctl", version, about = "Deploy to and inspect a ZOS node")]
struct Cli {
    /// The node's zbus Redis.
    #[arg(long, env = "ZOS_REDIS", default_value = "unix:///var/run/redis.sock")]
    redis: String,
    /// Your twin id.
    #[arg(long, env = "ZOS_TWIN")]
    twin: u32,
    /// Your ed25519 key (a file holding the 32-byte seed in hex), to sign deployments.
    #[arg(long, env = "ZOS_KEY")]
    key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy a deployment (JSON, ZOS shape); it is signed with --key.
    Deploy { file: PathBuf },
    /// Update a deployment (the next version).
    Update { file: PathBuf },
    /// Delete a deployment.
    Delete { contract: u64 },
    /// Pause a deployment.
    Pause { contract: u64 },
    /// Resume a deployment.
    Resume { contract: u64 },
    /// Show a deployment.
    Get { contract: u64 },
    /// List your deployments.
    List,
    /// A deployment's result log.
    Changes { contract: u64 },
    /// The node's counters.
    Counters,
    /// What the node holds against what the modules report (the reconciler).
    Drift,
    /// Print the public key (hex) of --key, for a node's twin registry; needs no node.
    Pubkey,
    /// Follow workload state changes as they happen.
    Watch {
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<usize>,
    },
}

fn print(json: bool, value: &impl serde::Serialize, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// A signed request of this twin for `operation` on `contract`, timestamped now.
fn sign(cli: &Cli, operation: &str, contract: u64) -> anyhow::Result<zos_types::TwinRequest> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let nonce = u64::try_from(now.as_nanos() & u128::from(u64::MAX))?;
    let stamp = (i64::try_from(now.as_secs())?, nonce);
    Ok(zos_types::TwinRequest::sign(operation, cli.twin, contract, stamp, &signing_key(cli)?))
}

fn signing_key(cli: &Cli) -> anyhow::Result<SigningKey> {
    let key_file = cli.key.as_ref().ok_or_else(|| anyhow!("--key is needed"))?;
    let seed = std::fs::read_to_string(key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
    let seed: [u8; 32] = hex::decode(seed.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| anyhow!("{}: expected a 32-byte seed in hex", key_file.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn signed(cli: &Cli, file: &PathBuf) -> anyhow::Result<Deployment> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut deployment: Deployment =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid deployment", file.display()))?;
    deployment.signature_requirement.signatures.retain(|s| s.twin_id != cli.twin);
    deployment.sign(cli.twin, &signing_key(cli)?);
    Ok(deployment)
}

async fn run(cli: Cli) -> Result<(), (u8, anyhow::Error)> {
    let bad = |err: anyhow::Error| (2u8, err);
    let failed =
        |err: zos_zbus::ZbusError| (1u8, anyhow!("{}{err}", err.code().map(|c| format!("[{c}] ")).unwrap_or_default()));
    if matches!(cli.command, Command::Pubkey) {
        let key = signing_key(&cli).map_err(bad)?;
        println!("{}", hex::encode(key.verifying_key().to_bytes()));
        return Ok(());
    }
    let client = Client::with_deadline(&cli.redis, Duration::from_secs(60)).await.map_err(failed)?;
    let provision = ProvisionClient::new(client.clone(), "provision");
    let twin = cli.twin;
    match &cli.command {
        Command::Deploy { file } | Command::Update { file } => {
            let update = matches!(cli.command, Command::Update { .. });
            let deployment = signed(&cli, file).map_err(bad)?;
            let admission = provision.create_or_update(twin, deployment, update).await.map_err(failed)?;
            print(cli.json, &admission, || {
                if admission.accepted {
                    format!("accepted (job {})", admission.job.unwrap_or_default())
                } else {
                    let mut lines = vec!["refused: it does not fit".to_string()];
                    for wl in &admission.workloads {
                        for short in &wl.shortfalls {
                            lines.push(format!("  {} ({}): {}", wl.name, wl.kind, short.message));
                        }
                    }
                    lines.join("\n")
                }
            })
            .map_err(bad)?;
            if admission.accepted { Ok(()) } else { Err((1, anyhow!("refused at the door"))) }
        }
        Command::Delete { contract } => {
            let request = sign(&cli, "Deprovision", *contract).map_err(bad)?;
            let job = provision.signed_deprovision(request, "deleted by zosctl".into()).await.map_err(failed)?;
            print(cli.json, &job, || format!("deletion queued (job {job})")).map_err(bad)
        }
        Command::Pause { contract } => {
            let job = provision.signed_pause(sign(&cli, "Pause", *contract).map_err(bad)?).await.map_err(failed)?;
            print(cli.json, &job, || format!("pause queued (job {job})")).map_err(bad)
        }
        Command::Resume { contract } => {
            let job = provision.signed_resume(sign(&cli, "Resume", *contract).map_err(bad)?).await.map_err(failed)?;
            print(cli.json, &job, || format!("resume queued (job {job})")).map_err(bad)
        }
        Command::Get { contract } => {
            let deployment = provision.signed_get(sign(&cli, "Get", *contract).map_err(bad)?).await.map_err(failed)?;
            print(cli.json, &deployment, || {
                let mut lines = vec![format!(
                    "twin {} contract {} version {}",
                    deployment.twin_id, deployment.contract_id, deployment.version
                )];
                for wl in &deployment.workloads {
                    lines.push(format!(
                        "  {:<20} {:<20} {:<8} {}",
                        wl.name,
                        wl.kind(),
                        wl.result.state,
                        wl.result.error
                    ));
                }
                lines.join("\n")
            })
            .map_err(bad)
        }
        Command::List => {
            let deployments = provision.signed_list(sign(&cli, "List", 0).map_err(bad)?).await.map_err(failed)?;
            print(cli.json, &deployments, || {
                deployments
                    .iter()
                    .map(|d| {
                        format!("contract {} version {} ({} workloads)", d.contract_id, d.version, d.workloads.len())
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .map_err(bad)
        }
        Command::Changes { contract } => {
            let changes =
                provision.signed_changes(sign(&cli, "Changes", *contract).map_err(bad)?).await.map_err(failed)?;
            print(cli.json, &changes, || {
                changes
                    .iter()
                    .map(|wl| format!("{} {} {} {}", wl.result.created.0, wl.name, wl.result.state, wl.result.error))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .map_err(bad)
        }
        Command::Pubkey => Ok(()),
        Command::Drift => {
            let drift = provision.reconcile().await.map_err(failed)?;
            print(cli.json, &drift, || {
                if drift.is_empty() {
                    "no drift".to_string()
                } else {
                    drift
                        .iter()
                        .map(|d| format!("{} {} {}", d.kind, d.module, d.resource))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            })
            .map_err(bad)
        }
        Command::Watch { count } => {
            let object = ProvisionClient::object();
            let mut changes: zos_zbus::Subscription<zos_provisiond::StateChange> =
                zos_zbus::Subscription::new(&client, "provision", &object, "WorkloadChanges", 1024)
                    .await
                    .map_err(failed)?;
            let mut seen = 0;
            while let Some(change) = changes.next().await {
                print(cli.json, &change, || format!("{} {} {}", change.id, change.state, change.message))
                    .map_err(bad)?;
                seen += 1;
                if count.is_some_and(|count| seen >= count) {
                    break;
                }
            }
            Ok(())
        }
        Command::Counters => {
            let counters = StatisticsClient::new(client, "provision").get_counters().await.map_err(failed)?;
            print(cli.json, &counters, || {
                let show = |c: &zos_types::Capacity| {
                    format!("cru {}, mru {}, sru {}, hru {}, ipv4u {}", c.cru, c.mru, c.sru, c.hru, c.ipv4u)
                };
                format!(
                    "total   {}\nused    {}\nsystem  {}\nusers   {} deployments, {} workloads",
                    show(&counters.total),
                    show(&counters.used),
                    show(&counters.system),
                    counters.users.deployments,
                    counters.users.workloads
                )
            })
            .map_err(bad)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, err)) => {
            eprintln!("zosctl: {err:#}");
            ExitCode::from(code)
        }
    }
}
