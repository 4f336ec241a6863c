//! Deployments admitted per second through the API (admission + durable store) with 1, 8, 16 and 64 concurrent
//! clients, and the time provisiond's engine takes to open with 10 thousand active workloads.
//! Starts its own redis-server. Run: `cargo bench -p zos-provisiond --bench admission`
//! (`ZOS_BENCH_CREATES=6400` creates per client count instead of 1 600, `ZOS_BENCH_CLIENTS=16` only that
//! count, `ZOS_BENCH_RECOVERY=0` skips the open). The CPU per create and the cores busy are this
//! process's (provisiond's server and engine, and the clients), not redis-server's.

mod fixture;

use fixture::{deployment, open_engine};
use std::sync::Arc;
use std::time::Instant;
use zos_interfaces::provision::{ProvisionClient, ProvisionServer};
use zos_provisiond::modules::ModuleManagers;
use zos_provisiond::{Outcome, Service};
use zos_types::{Deployment, Timestamp};
use zos_zbus::local_redis::LocalRedis;
use zos_zbus::{Client, Server};

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
    println!("clients | deployments | admitted/s (3 workloads each, durable) | CPU per create | cores busy");
    let creates = fixture::setting("ZOS_BENCH_CREATES", 1_600);
    for clients in fixture::client_counts(&[1, 8, 16, 64]) {
        let per_client = creates / clients;
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
        let timing = fixture::Timing::start();
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
        let run = timing.finish(total as u64);
        println!("{clients} | {total} | {:.0} | {:.1?} | {:.2}", run.per_second, run.cpu_per_create, run.cores);
    }

    if std::env::var("ZOS_BENCH_RECOVERY").is_ok_and(|v| v == "0") {
        return;
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
