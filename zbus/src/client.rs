//! The calling side: push a request on the object's list, wait on the reply list until the deadline.
//!
//! Waiting connections are pooled. One that sat idle is checked with a `PING` before it carries a
//! request, so that the first call after a Redis restart goes out on a fresh connection instead of
//! failing on a dead one; a request that was pushed is never pushed again.

use crate::error::ZbusError;
use crate::wire::{self, ObjectId, Request, Response};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default deadline of a call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// A connection to the bus, cheap to clone and share. It reconnects by itself after Redis restarts:
/// calls in flight fail with a clear error, later calls succeed.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    redis: redis::Client,
    push: ConnectionManager,
    /// Connections for blocking pops: one per waiting call, reused, with when each was last used.
    waiting: Mutex<Vec<(MultiplexedConnection, Instant)>>,
    deadline: Duration,
    max_frame: usize,
}

/// A pooled connection idle for longer than this is checked with a `PING` before use. A Redis restart
/// takes far longer than this (a process start, a socket bound, a dataset loaded), so a connection used
/// more recently cannot have been cut by one; a busy caller pays no extra round trip.
const IDLE_CHECK: Duration = Duration::from_millis(10);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("deadline", &self.inner.deadline).finish()
    }
}

/// Encodes one argument or return value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ZbusError> {
    wire::encode(value).map_err(|err| ZbusError::Codec(err.to_string()))
}

/// Decodes a return value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ZbusError> {
    wire::decode(bytes).map_err(|err| ZbusError::Codec(err.to_string()))
}

pub(crate) fn blocking_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(None)
}

impl Client {
    /// Connects to Redis by URL: `unix:///path/redis.sock` or `redis://host:port`.
    pub async fn connect(url: &str) -> Result<Client, ZbusError> {
        Client::with_deadline(url, DEFAULT_DEADLINE).await
    }

    /// Connects, with a default deadline for every call.
    pub async fn with_deadline(url: &str, deadline: Duration) -> Result<Client, ZbusError> {
        let redis = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new().set_number_of_retries(2).set_max_delay(Duration::from_millis(500));
        let push = ConnectionManager::new_with_config(redis.clone(), config).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                redis,
                push,
                waiting: Mutex::new(Vec::new()),
                deadline,
                max_frame: crate::server::DEFAULT_MAX_FRAME,
            }),
        })
    }

    /// The same connection with another limit on requests and replies, in bytes (default
    /// [`DEFAULT_MAX_FRAME`](crate::server::DEFAULT_MAX_FRAME)).
    pub fn with_max_frame(self, bytes: usize) -> Client {
        let inner = Inner {
            redis: self.inner.redis.clone(),
            push: self.inner.push.clone(),
            waiting: Mutex::new(Vec::new()),
            deadline: self.inner.deadline,
            max_frame: bytes,
        };
        Client { inner: Arc::new(inner) }
    }

    /// The default deadline.
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// A connection for one call: a pooled one that is known to work, or a fresh one. Nothing has been
    /// pushed yet, so a dead pooled connection costs nothing but the check.
    async fn waiting_connection(&self) -> Result<MultiplexedConnection, ZbusError> {
        loop {
            let reused = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some((mut conn, used)) = reused else { break };
            if used.elapsed() < IDLE_CHECK {
                return Ok(conn);
            }
            match redis::cmd("PING").query_async::<String>(&mut conn).await {
                Ok(_) => return Ok(conn),
                Err(err) => tracing::debug!("dropping a dead pooled connection: {err}"),
            }
        }
        Ok(self.inner.redis.get_multiplexed_async_connection_with_config(&blocking_config()).await?)
    }

    fn give_back(&self, conn: MultiplexedConnection) {
        self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner()).push((conn, Instant::now()));
    }

    /// Calls `module.object.method` with already-encoded inputs and returns the encoded output.
    pub async fn request(
        &self,
        module: &str,
        object: &ObjectId,
        method: &str,
        inputs: Vec<Vec<u8>>,
        deadline: Duration,
    ) -> Result<Vec<u8>, ZbusError> {
        let id = uuid::Uuid::new_v4().to_string();
        let request = Request {
            id: id.clone(),
            inputs: inputs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
            object: object.clone(),
            reply_to: id.clone(),
            method: method.to_string(),
        };
        let bytes = encode(&request)?;
        if bytes.len() > self.inner.max_frame {
            return Err(ZbusError::TooLarge { what: "request", bytes: bytes.len(), limit: self.inner.max_frame });
        }
        let started = Instant::now();
        let mut conn = self.waiting_connection().await?;
        let target = format!("{}.{method}", object.queue(module));
        let mut first = true;
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                self.give_back(conn);
                return Err(ZbusError::Deadline { target, timeout: deadline });
            }
            let wait = left.min(Duration::from_secs(1)).as_secs_f64().max(0.01);
            // The first round trip pushes the request and starts waiting for the reply in one pipeline.
            let mut pipe = redis::pipe();
            if first {
                pipe.rpush(object.queue(module), &bytes).ignore();
                first = false;
            }
            pipe.cmd("BLPOP").arg(&id).arg(wait);
            let popped: Option<(String, Vec<u8>)> =
                match pipe.query_async::<(Option<(String, Vec<u8>)>,)>(&mut conn).await {
                    Ok((popped,)) => popped,
                    // A broken connection is dropped, not given back.
                    Err(err) => return Err(ZbusError::Transport(err)),
                };
            if let Some((_, reply)) = popped {
                self.give_back(conn);
                if reply.len() > self.inner.max_frame {
                    return Err(ZbusError::TooLarge { what: "reply", bytes: reply.len(), limit: self.inner.max_frame });
                }
                let response: Response = decode(&reply)?;
                if let Some(error) = response.error {
                    return Err(ZbusError::Protocol(error));
                }
                if let Some(error) = response.output.error {
                    return Err(ZbusError::Remote(error));
                }
                // Go sends nil `Data` for a method that returns only an error: that decodes as nil.
                return Ok(response.output.data.map_or_else(|| wire::NIL.to_vec(), serde_bytes::ByteBuf::into_vec));
            }
        }
    }

    /// A typed call: each argument encoded on its own, the return value decoded.
    pub async fn call<R: DeserializeOwned>(
        &self,
        module: &str,
        object: &ObjectId,
        method: &str,
        inputs: Vec<Vec<u8>>,
    ) -> Result<R, ZbusError> {
        let data = self.request(module, object, method, inputs, self.inner.deadline).await?;
        decode(&data)
    }

    pub(crate) fn redis(&self) -> &redis::Client {
        &self.inner.redis
    }

    pub(crate) fn push_connection(&self) -> ConnectionManager {
        self.inner.push.clone()
    }
}
