//! Deployments admitted per second through the API (admission + durable store) with 1, 8, 16 and 64 concurrent
//! clients, and the time provisiond's engine takes to open with 10 thousand active workloads.
//! Starts its own redis-server. Run: `cargo bench -p zos-provisiond --bench admission`.

use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use zos_cache::Store;
use zos_interfaces::provision::{ProvisionClient, ProvisionServer};
use zos_provisiond::modules::ModuleManagers;
use zos_provisiond::{Engine, Outcome, Service, TwinRegistry};
use zos_types::scenario::{NodeSpec, Policy};
use zos_types::{Deployment, SigningKey, Timestamp};
use zos_zbus::local_redis::LocalRedis;
use zos_zbus::{Client, Server};

const GIB: u64 = 1 << 30;

fn node() -> NodeSpec {
    serde_json::from_value(json!({"cru": 1u64 << 20, "mru": 1u64 << 60,
        "pools": [{"name": "ssd0", "kind": "ssd", "size": 1u64 << 60}]}))
    .expect("node")
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn deployment(contract: u64) -> Deployment {
    let mut dl: Deployment = serde_json::from_value(json!({"twin_id": 1, "contract_id": contract,
    "signature_requirement": {"requests": [{"twin_id": 1, "required": true, "weight": 1}], "weight_required": 1},
    "workloads": [
        {"name": "disk", "type": "zmount", "data": {"size": GIB}},
        {"name": "vol", "type": "volume", "data": {"size": GIB}},
        {"name": "vm", "type": "zmachine", "data": {"network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}]},
            "compute_capacity": {"cpu": 1, "memory": GIB}}}
    ]}))
    .expect("deployment");
    dl.sign(1, &key());
    dl
}

fn open_engine(dir: &std::path::Path) -> Engine<TwinRegistry> {
    Engine::open(
        Store::open(dir.join("store")).expect("store"),
        &node(),
        Policy::default(),
        TwinRegistry::from_keys([(1, key().verifying_key().to_bytes())]),
    )
    .expect("engine")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).expect("redis-server");
    let client = Client::connect(&redis.url()).await.expect("client");
    let engine = Arc::new(open_engine(dir.path()));
    let mut server = Server::new("provision", redis.url(), 64);
    server.register(ProvisionServer(Arc::new(Service {
        engine: engine.clone(),
        modules: ModuleManagers::new(client.clone()),
    })));
    tokio::spawn(server.run(std::future::pending()));
    let provision = ProvisionClient::new(client, "provision");
    let mut next = 1u64;
    println!("clients | deployments | admitted/s (3 workloads each, durable)");
    for clients in [1usize, 8, 16, 64] {
        let per_client = 1_600 / clients;
        let batches: Vec<Vec<Deployment>> = (0..clients)
            .map(|_| {
                (0..per_client)
                    .map(|_| {
                        next += 1;
                        deployment(next)
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let provision = provision.clone();
                tokio::spawn(async move {
                    for dl in batch {
                        assert!(provision.create_or_update(1, dl, false).await.expect("create").accepted);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join");
        }
        let total = clients * per_client;
        println!("{clients} | {total} | {:.0}", total as f64 / started.elapsed().as_secs_f64());
    }

    // Recovery: open with 10 000 active workloads (3 334 deployments of 3).
    let recovery = tempfile::tempdir().expect("tempdir");
    {
        let engine = open_engine(recovery.path());
        for contract in 1..=3_334 {
            let Outcome::Accepted(_) = engine.create(1, deployment(contract), Timestamp(1)).expect("create") else {
                panic!("refused")
            };
        }
    }
    let started = Instant::now();
    let engine = open_engine(recovery.path());
    println!("open with {} active workloads: {:?}", engine.ledger_snapshot().len(), started.elapsed());
}
