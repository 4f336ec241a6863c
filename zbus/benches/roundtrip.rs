//! Round-trip latency (p50, p99) and throughput over a unix socket, with 1, 4 and 16 concurrent callers.
//! Starts its own redis-server. Run: `cargo bench -p zos-zbus --bench roundtrip`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use zos_zbus::local_redis::LocalRedis;
use zos_zbus::{Client, RemoteError, Server};

zos_zbus::interface! {
    /// An echo service.
    pub trait Echo, client EchoClient, server EchoServer, object("echo", "1.0") {
        "Echo" => fn echo(value: u64) -> u64;
    }
}

struct Service;

impl Echo for Service {
    async fn echo(&self, value: u64) -> Result<u64, RemoteError> {
        Ok(value)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).expect("redis-server");
    let mut server = Server::new("bench", redis.url(), 16);
    server.register(EchoServer(Arc::new(Service)));
    tokio::spawn(server.run(std::future::pending()));
    let client = Client::connect(&redis.url()).await.expect("client");
    let echo = EchoClient::new(client, "bench");
    for i in 0..500 {
        echo.echo(i).await.expect("warm up");
    }
    println!("callers | calls | throughput (calls/s) | p50 | p99");
    for callers in [1usize, 4, 16] {
        let per_caller = 8_000 / callers;
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let echo = echo.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_caller);
                    for i in 0..per_caller {
                        let t = Instant::now();
                        echo.echo(i as u64).await.expect("echo");
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("join"));
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{callers} | {} | {:.0} | {:?} | {:?}",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
    }
}
