//! zbus against a real, private redis-server (one per test, on a unix socket, no persistence).

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use zos_zbus::local_redis::LocalRedis;
use zos_zbus::{Client, ObjectId, Publisher, RemoteError, Server, Subscription, ZbusError, code};

const MODULE: &str = "test";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    name: String,
    size: u64,
    tags: Vec<String>,
}

zos_zbus::interface! {
    /// A test service with several argument shapes.
    pub trait Calculator, client CalculatorClient, server CalculatorServer, object("calculator", "1.0") {
        "Add" => fn add(a: i64, b: i64) -> i64;
        "Divide" => fn divide(a: f64, b: f64) -> f64;
        "Describe" => fn describe(volume: Volume, note: Option<String>) -> String;
        "Sum" => fn sum(values: Vec<u64>) -> u64;
        "Pair" => fn pair() -> (String, u32);
        "Sleep" => fn sleep(millis: u64) -> u64;
        "Panic" => fn panic() -> ();
        "Lookup" => fn lookup(name: String) -> Volume;
    }
}

zos_zbus::interface! {
    /// Version 2 of the same object: `Add` multiplies, so that a test can tell them apart.
    pub trait CalculatorV2, client CalculatorV2Client, server CalculatorV2Server, object("calculator", "2.0") {
        "Add" => fn add(a: i64, b: i64) -> i64;
    }
}

struct Calc;

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> Result<i64, RemoteError> {
        a.checked_add(b).ok_or_else(|| RemoteError::new(code::INVALID, "overflow"))
    }
    async fn divide(&self, a: f64, b: f64) -> Result<f64, RemoteError> {
        if b == 0.0 { Err(RemoteError::new(code::INVALID, "division by zero")) } else { Ok(a / b) }
    }
    async fn describe(&self, volume: Volume, note: Option<String>) -> Result<String, RemoteError> {
        Ok(format!("{} {} [{}] {}", volume.name, volume.size, volume.tags.join(","), note.unwrap_or_default()))
    }
    async fn sum(&self, values: Vec<u64>) -> Result<u64, RemoteError> {
        Ok(values.iter().sum())
    }
    async fn pair(&self) -> Result<(String, u32), RemoteError> {
        Ok(("answer".into(), 42))
    }
    async fn sleep(&self, millis: u64) -> Result<u64, RemoteError> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(millis)
    }
    async fn panic(&self) -> Result<(), RemoteError> {
        panic!("the method blew up")
    }
    async fn lookup(&self, name: String) -> Result<Volume, RemoteError> {
        Err(RemoteError::new(code::NOT_FOUND, format!("volume '{name}' not found")))
    }
}

struct Calc2;

impl CalculatorV2 for Calc2 {
    async fn add(&self, a: i64, b: i64) -> Result<i64, RemoteError> {
        Ok(a * b)
    }
}

struct Bus {
    redis: LocalRedis,
    stop: Option<oneshot::Sender<()>>,
    stats: Arc<zos_zbus::ServerStats>,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn bus(deadline: Duration) -> (Bus, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let mut server = Server::new(MODULE, redis.url(), 4).with_deadline(Duration::from_secs(5));
    server.register(CalculatorServer(Arc::new(Calc)));
    server.register(CalculatorV2Server(Arc::new(Calc2)));
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = Client::with_deadline(&redis.url(), deadline).await.expect("client");
    (Bus { redis, stop: Some(stop), stats, _dir: dir }, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_several_argument_shapes() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    let calc = CalculatorClient::new(client, MODULE);
    assert_eq!(calc.add(40, 2).await.expect("add"), 42);
    assert_eq!(calc.divide(1.0, 4.0).await.expect("divide"), 0.25);
    let volume = Volume { name: "v".into(), size: 10, tags: vec!["a".into(), "b".into()] };
    assert_eq!(calc.describe(volume.clone(), Some("hi".into())).await.expect("describe"), "v 10 [a,b] hi");
    assert_eq!(calc.describe(volume, None).await.expect("describe"), "v 10 [a,b] ");
    assert_eq!(calc.sum(vec![1, 2, 3, u64::from(u32::MAX)]).await.expect("sum"), 6 + u64::from(u32::MAX));
    assert_eq!(calc.pair().await.expect("pair"), ("answer".to_string(), 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_code() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    let calc = CalculatorClient::new(client, MODULE);
    let err = calc.divide(1.0, 0.0).await.expect_err("division by zero");
    assert_eq!(err.code(), Some(code::INVALID));
    assert_eq!(err.to_string(), "division by zero");
    let err = calc.lookup("missing".into()).await.expect_err("not found");
    assert!(matches!(&err, ZbusError::Remote(remote) if remote.code == code::NOT_FOUND), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_fail_the_call_not_the_server() {
    let (_bus, client) = bus(Duration::from_millis(300)).await;
    let calc = CalculatorClient::new(client, MODULE);
    let started = Instant::now();
    let err = calc.sleep(3_000).await.expect_err("deadline");
    assert!(matches!(err, ZbusError::Deadline { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "the caller waited {:?}", started.elapsed());
    assert_eq!(calc.add(1, 1).await.expect("the server still serves"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_method_gets_an_error_reply() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    let calc = CalculatorClient::new(client, MODULE);
    let err = calc.panic().await.expect_err("panic");
    assert!(
        matches!(&err, ZbusError::Protocol(text) if text.contains("paniced") && text.contains("the method blew up")),
        "{err:?}"
    );
    assert_eq!(calc.add(2, 3).await.expect("the server still serves"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_do_not_stop_the_server() {
    let (bus, client) = bus(Duration::from_secs(5)).await;
    let redis = redis::Client::open(bus.redis.url()).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("conn");
    let queue = ObjectId::new("calculator", "1.0").queue(MODULE);
    let _: i64 =
        redis::cmd("RPUSH").arg(&queue).arg(b"\xc1\xff garbage".as_slice()).query_async(&mut conn).await.expect("push");
    let _: i64 = redis::cmd("RPUSH").arg(&queue).arg(b"".as_slice()).query_async(&mut conn).await.expect("push");
    let calc = CalculatorClient::new(client.clone(), MODULE);
    assert_eq!(calc.add(20, 22).await.expect("served after garbage"), 42);
    assert!(bus.stats.malformed.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // Wrong argument count and types, an unknown method: protocol errors, not silence.
    let object = ObjectId::new("calculator", "1.0");
    let err = client
        .call::<i64>(MODULE, &object, "Add", vec![zos_zbus::encode(&1i64).expect("enc")])
        .await
        .expect_err("arity");
    assert!(matches!(&err, ZbusError::Protocol(text) if text.contains("takes 2 arguments")), "{err:?}");
    let wrong = vec![zos_zbus::encode("one").expect("enc"), zos_zbus::encode("two").expect("enc")];
    let err = client.call::<i64>(MODULE, &object, "Add", wrong).await.expect_err("types");
    assert!(matches!(&err, ZbusError::Protocol(text) if text.contains("invalid argument 'a'")), "{err:?}");
    let err = client.call::<i64>(MODULE, &object, "Multiply", vec![]).await.expect_err("unknown");
    assert!(matches!(&err, ZbusError::Protocol(text) if text.contains("unknown method")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_side_by_side() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    let v1 = CalculatorClient::new(client.clone(), MODULE);
    let v2 = CalculatorV2Client::new(client, MODULE);
    assert_eq!(v1.add(6, 7).await.expect("v1"), 13);
    assert_eq!(v2.add(6, 7).await.expect("v2"), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_object_lists_what_is_served() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    #[derive(Deserialize)]
    struct Status {
        #[serde(rename = "Objects")]
        objects: Vec<ObjectId>,
        #[serde(rename = "Workers")]
        workers: Vec<serde::de::IgnoredAny>,
    }
    let status: Status = client.call(MODULE, &ObjectId::new("zbus", "1.0"), "", vec![]).await.expect("status");
    assert!(status.objects.contains(&ObjectId::new("calculator", "1.0")));
    assert!(status.objects.contains(&ObjectId::new("calculator", "2.0")));
    assert_eq!(status.workers.len(), 4);
    // Each worker's start time travels as Go's `StartTime`, a Go time value, and is recent.
    let typed: zos_zbus::Status = client.call(MODULE, &ObjectId::new("zbus", "1.0"), "", vec![]).await.expect("status");
    let now = zos_zbus::wire::GoTime::now();
    assert!(typed.workers.iter().all(|w| w.start_time.secs > now.secs - 600 && w.start_time <= now), "{typed:?}");
}

/// Pushes a hand-made reply for the next request on `queue`: what a Go server would send.
async fn answer_next_request(redis_url: String, queue: String, reply: impl Fn(&str) -> Vec<u8> + Send + 'static) {
    let redis = redis::Client::open(redis_url).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("conn");
    let (_, bytes): (String, Vec<u8>) =
        redis::cmd("BLPOP").arg(&queue).arg(5).query_async(&mut conn).await.expect("a request");
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "ID")]
        id: String,
    }
    let envelope: Envelope = zos_zbus::decode(&bytes).expect("request");
    let _: i64 =
        redis::cmd("RPUSH").arg(&envelope.id).arg(reply(&envelope.id)).query_async(&mut conn).await.expect("reply");
}

/// `{"ID": id, "Output": {"Data": nil, "Error": error}, "Error": nil}` as Go's msgpack writes it.
fn go_reply(id: &str, error: Option<&str>) -> Vec<u8> {
    let mut out = vec![0x83, 0xa2, b'I', b'D', 0xd9, id.len() as u8];
    out.extend_from_slice(id.as_bytes());
    out.extend([0xa6, b'O', b'u', b't', b'p', b'u', b't', 0x82, 0xa4, b'D', b'a', b't', b'a', 0xc0]);
    out.extend([0xa5, b'E', b'r', b'r', b'o', b'r']);
    match error {
        Some(message) => {
            out.extend([0x81, 0xa7, b'M', b'e', b's', b's', b'a', b'g', b'e', 0xa0 | message.len() as u8]);
            out.extend_from_slice(message.as_bytes());
        }
        None => out.push(0xc0),
    }
    out.extend([0xa5, b'E', b'r', b'r', b'o', b'r', 0xc0]);
    out
}

/// A Go server answers an error-only method with nil `Data`: the Rust client sees the Go error, and a
/// success decodes as "no data".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_replies_with_nil_data_reach_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(5)).await.expect("client");
    let object = ObjectId::new("storage", "0.0.1");
    let queue = object.queue("storage");
    let answer =
        tokio::spawn(answer_next_request(redis.url(), queue.clone(), |id| go_reply(id, Some("no such volume"))));
    let err = client.call::<()>("storage", &object, "VolumeDelete", vec![]).await.expect_err("Go's error");
    answer.await.expect("answered");
    assert!(matches!(&err, ZbusError::Remote(e) if e.message == "no such volume" && e.code.is_empty()), "{err:?}");
    let answer = tokio::spawn(answer_next_request(redis.url(), queue, |id| go_reply(id, None)));
    client.call::<()>("storage", &object, "VolumeDelete", vec![]).await.expect("nil data is no data");
    answer.await.expect("answered");
}

/// A wrong-typed key where an object's request list must be (`SET provision.provision@0.0.1 x`) is
/// left out of the pop: the other objects keep being served, the server does not spin reconnecting, and
/// the object is served again once the key is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_typed_request_key_does_not_stop_the_server() {
    let (bus, client) = bus(Duration::from_secs(5)).await;
    let redis = redis::Client::open(bus.redis.url()).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("conn");
    let v2_queue = ObjectId::new("calculator", "2.0").queue(MODULE);
    let _: () = redis::cmd("SET").arg(&v2_queue).arg("x").query_async(&mut conn).await.expect("set");
    let v1 = CalculatorClient::new(client.clone(), MODULE);
    for i in 0..20 {
        assert_eq!(v1.add(i, 1).await.expect("v1 still served"), i + 1);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(v1.add(1, 1).await.expect("v1 still served"), 2);
    assert_eq!(
        bus.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a wrong type is no lost connection"
    );
    let _: i64 = redis::cmd("DEL").arg(&v2_queue).query_async(&mut conn).await.expect("del");
    let v2 = CalculatorV2Client::new(client, MODULE);
    assert_eq!(v2.add(6, 7).await.expect("served again once fixed"), 42);
}

/// The first call after a Redis restart goes out on a fresh connection instead of failing with a
/// broken pipe on the pooled one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_after_redis_restart_succeeds() {
    let (mut bus, client) = bus(Duration::from_secs(10)).await;
    let calc = CalculatorClient::new(client, MODULE);
    assert_eq!(calc.add(1, 2).await.expect("before"), 3);
    bus.redis.kill();
    bus.redis.restart().expect("restart redis");
    assert_eq!(calc.add(2, 2).await.expect("the first call after the restart"), 4);
    assert_eq!(calc.add(3, 3).await.expect("and the next"), 6);
}

/// Requests and replies are bounded: a request over the server's limit is answered with `too_large`
/// without being decoded, and the client refuses to send one over its own limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused_with_a_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let mut server = Server::new(MODULE, redis.url(), 2).with_max_frame(4096);
    server.register(CalculatorServer(Arc::new(Calc)));
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(5)).await.expect("client");
    let calc = CalculatorClient::new(client.clone(), MODULE);
    let err = calc.sum(vec![u64::MAX; 1000]).await.expect_err("over the server's limit");
    assert_eq!(err.code(), Some(code::TOO_LARGE), "{err:?}");
    assert_eq!(stats.too_large.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(calc.sum(vec![1, 2]).await.expect("small calls still served"), 3);
    let small = CalculatorClient::new(client.with_max_frame(512), MODULE);
    let err = small.sum(vec![u64::MAX; 100]).await.expect_err("over the client's limit");
    assert!(matches!(err, ZbusError::TooLarge { what: "request", .. }), "{err:?}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_deliver_in_order_and_count_what_a_slow_subscriber_drops() {
    let (_bus, client) = bus(Duration::from_secs(5)).await;
    let object = ObjectId::new("statistics", "0.0.1");
    let publisher: Publisher<u64> = Publisher::new(client.clone(), MODULE, &object, "ReservedStream");
    let mut fast: Subscription<u64> =
        Subscription::new(&client, MODULE, &object, "ReservedStream", 64).await.expect("sub");
    let slow: Subscription<u64> = Subscription::new(&client, MODULE, &object, "ReservedStream", 2).await.expect("sub");
    let started = Instant::now();
    for n in 0..50 {
        assert_eq!(publisher.publish(&n).await.expect("publish"), 2, "both subscribers are attached");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "publishing never waits on subscribers");
    for n in 0..50 {
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), fast.next()).await.expect("in time"), Some(n));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slow.dropped(), 48, "the slow subscriber kept 2 and counted the rest");
    assert_eq!(fast.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_by_tcp_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let _redis = LocalRedis::start_with_port(dir.path(), port).unwrap_or_else(|err| panic!("{err}"));
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = Server::new(MODULE, url.clone(), 2);
    server.register(CalculatorServer(Arc::new(Calc)));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let calc = CalculatorClient::new(Client::connect(&url).await.expect("client"), MODULE);
    assert_eq!(calc.add(1, 41).await.expect("over tcp"), 42);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_fails_calls_in_flight_then_recovers() {
    let (mut bus, client) = bus(Duration::from_secs(2)).await;
    let object = ObjectId::new("statistics", "0.0.1");
    let mut events: Subscription<u64> = Subscription::new(&client, MODULE, &object, "Events", 16).await.expect("sub");
    let calc = CalculatorClient::new(client.clone(), MODULE);
    assert_eq!(calc.add(1, 2).await.expect("before"), 3);
    let in_flight = tokio::spawn({
        let calc = calc.clone();
        async move { calc.sleep(1_500).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    bus.redis.kill();
    let err = in_flight.await.expect("join").expect_err("the call in flight fails");
    assert!(matches!(err, ZbusError::Transport(_) | ZbusError::Deadline { .. }), "{err:?}");
    assert!(calc.add(1, 2).await.is_err(), "no redis, no call");
    bus.redis.restart().expect("restart redis");
    let started = Instant::now();
    let recovered = loop {
        match calc.add(2, 2).await {
            Ok(sum) => break sum,
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("no recovery after restarting redis: {err}"),
        }
    };
    assert_eq!(recovered, 4);
    assert!(bus.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // The subscription re-subscribed by itself: an event published now arrives.
    let publisher: Publisher<u64> = Publisher::new(client, MODULE, &object, "Events");
    let started = Instant::now();
    let received = loop {
        let _ = publisher.publish(&7).await;
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
            break event;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the subscription never came back");
    };
    assert_eq!(received, 7);
}

/// Requests queued while no server runs are all answered once one starts, each with its own answer
/// (the server takes a queue's waiting requests in one `BLMPOP`).
async fn queued_requests_are_all_answered(forbid_blmpop: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = LocalRedis::start(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    if forbid_blmpop {
        let mut conn =
            redis::Client::open(redis.url()).expect("url").get_multiplexed_async_connection().await.expect("redis");
        let _: () =
            redis::cmd("ACL").arg("SETUSER").arg("default").arg("-blmpop").query_async(&mut conn).await.expect("acl");
    }
    let client = Client::with_deadline(&redis.url(), Duration::from_secs(20)).await.expect("client");
    let calls: Vec<_> = (0..100i64)
        .map(|i| {
            let calc = CalculatorClient::new(client.clone(), MODULE);
            tokio::spawn(async move { (i, calc.add(i, 1).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = Server::new(MODULE, redis.url(), 16);
    server.register(CalculatorServer(Arc::new(Calc)));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for call in calls {
        let (i, answer) = call.await.expect("task");
        assert_eq!(answer.expect("answered"), i + 1);
    }
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_before_the_server_starts_are_all_answered() {
    queued_requests_are_all_answered(false).await;
}

/// A Redis that refuses `BLMPOP` (older than 7.0, or an ACL) is served with one `BLPOP` per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_blmpop_is_served_one_request_at_a_time() {
    queued_requests_are_all_answered(true).await;
}
