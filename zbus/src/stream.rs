//! Streams: typed events published on `<module>.<object>@<version>.<Method>`. Publishing never waits
//! on subscribers; a slow subscriber loses the oldest undelivered events, and counts them.

use crate::client::{Client, decode, encode};
use crate::error::ZbusError;
use crate::wire::ObjectId;
use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Publishes one typed stream.
#[derive(Clone)]
pub struct Publisher<T> {
    client: Client,
    channel: String,
    _event: PhantomData<fn(T)>,
}

impl<T: Serialize> Publisher<T> {
    /// A publisher of `module.object.method`.
    pub fn new(client: Client, module: &str, object: &ObjectId, method: &str) -> Publisher<T> {
        Publisher { client, channel: object.stream(module, method), _event: PhantomData }
    }

    /// Publishes an event; returns how many subscribers Redis handed it to.
    pub async fn publish(&self, event: &T) -> Result<u64, ZbusError> {
        let bytes = encode(event)?;
        let mut conn = self.client.push_connection();
        Ok(conn.publish(&self.channel, bytes).await?)
    }
}

/// A typed subscription. Events arrive through a bounded buffer; when the consumer falls behind, newer
/// events are dropped (never the publisher blocked) and counted in [`Subscription::dropped`]. The
/// subscription re-subscribes by itself after Redis restarts (events published meanwhile are lost, as
/// with any Redis pub/sub).
pub struct Subscription<T> {
    events: mpsc::Receiver<T>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: DeserializeOwned + Send + 'static> Subscription<T> {
    /// Subscribes to `module.object.method`, buffering up to `buffer` events.
    pub async fn new(
        client: &Client,
        module: &str,
        object: &ObjectId,
        method: &str,
        buffer: usize,
    ) -> Result<Subscription<T>, ZbusError> {
        let channel = object.stream(module, method);
        let redis = client.redis().clone();
        let mut pubsub = redis.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        let (tx, events) = mpsc::channel(buffer.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let task = tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                let mut current = match pubsub.take() {
                    Some(current) => current,
                    None => {
                        let fresh = match redis.get_async_pubsub().await {
                            Ok(mut fresh) => fresh.subscribe(&channel).await.map(|()| fresh),
                            Err(err) => Err(err),
                        };
                        match fresh {
                            Ok(fresh) => fresh,
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        }
                    }
                };
                {
                    use futures_util::StreamExt;
                    let mut messages = current.on_message();
                    while let Some(message) = messages.next().await {
                        let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                        match decode::<T>(&payload) {
                            Ok(event) => {
                                if tx.is_closed() {
                                    return;
                                }
                                if tx.try_send(event).is_err() {
                                    counter.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(err) => tracing::warn!(channel, "undecodable stream event: {err}"),
                        }
                    }
                }
                tracing::warn!(channel, "stream subscription lost; re-subscribing");
            }
        });
        Ok(Subscription { events, dropped, task })
    }

    /// The next event; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<T> {
        self.events.recv().await
    }

    /// Events dropped because this subscriber was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
