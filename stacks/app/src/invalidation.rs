//! `--cache-mode invalidate`: the background subscription to the other region's Redis.
//!
//! The other region's app publishes every key it writes on
//! [`INVALIDATION_CHANNEL`](crate::cache::INVALIDATION_CHANNEL) of its own Redis. This task
//! subscribes to that channel through the link (`--remote-redis`) and, for each message,
//! deletes `kv:{key}` from this region's Redis. Profiles go the same way on
//! [`PROFILE_INVALIDATION_CHANNEL`](crate::cache::PROFILE_INVALIDATION_CHANNEL): each message
//! is a user id, and `profile:{id}` is deleted (a profile write or an erasure elsewhere).
//!
//! It never blocks a request: requests only read its state (`/health`, check `invalidation`).
//! When the subscription cannot be made, or drops, it is made again after
//! [`RECONNECT_BACKOFF`]. A link that stalls without closing (a black-holing partition) is
//! noticed by a `PING` on the subscribed connection every [`PING_EVERY`] that gets no answer
//! within [`ANSWER_WITHIN`]; the connection is then dropped and remade. Redis pub/sub keeps
//! nothing for an absent subscriber: what is published while the subscription is down is
//! lost, and those keys stay stale here until their entries expire. That loss is what the
//! harness measures.
//!
//! The budgets are the subscriber's own, longer than `--cache-timeout-ms`: a slow link (added
//! latency) should delay invalidations, not make the subscriber give up on them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use redis::aio::ConnectionManager;

use crate::cache::{
    INVALIDATION_CHANNEL, PROFILE_INVALIDATION_CHANNEL, profile_redis_key, redis_key,
};

/// Wait between a failed or dropped subscription and the next attempt.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// How often the subscribed connection is checked with a `PING`.
pub const PING_EVERY: Duration = Duration::from_millis(500);
/// Longest wait to connect and subscribe, and for a `PING`'s answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The subscription's state, shared between its task and `/health`.
pub struct Subscription {
    /// Whether it is subscribed now, since when, and the last error.
    state: Mutex<State>,
    /// Invalidation messages received (and acted on) since start-up.
    received: AtomicU64,
}

/// See [`Subscription::state`].
struct State {
    /// Subscribed and answering pings.
    subscribed: bool,
    /// When `subscribed` last changed (or start-up).
    since: Instant,
    /// Why it is not subscribed, when it is not.
    error: Option<String>,
}

/// A snapshot of the subscription, for `/health`.
pub struct Status {
    /// Subscribed and answering pings.
    pub subscribed: bool,
    /// How long it has been in that state.
    pub for_time: Duration,
    /// Why it is not subscribed, when it is not.
    pub error: Option<String>,
    /// Invalidation messages received since start-up.
    pub received: u64,
}

impl Subscription {
    /// Starts the subscription task on the current runtime: messages from `remote` delete
    /// entries through `local`, each delete bounded by `cache_timeout`.
    pub fn start(
        remote: redis::Client,
        local: ConnectionManager,
        cache_timeout: Duration,
    ) -> Arc<Subscription> {
        let subscription = Arc::new(Subscription {
            state: Mutex::new(State {
                subscribed: false,
                since: Instant::now(),
                error: Some("not subscribed yet".to_owned()),
            }),
            received: AtomicU64::new(0),
        });
        // The task holds only a weak reference, so it ends with the app.
        let weak = Arc::downgrade(&subscription);
        tokio::spawn(async move {
            loop {
                let error = match subscribe(&remote).await {
                    Ok(pubsub) => {
                        let Some(this) = weak.upgrade() else { return };
                        this.set(true, None);
                        let error = this.listen(pubsub, &local, cache_timeout).await;
                        drop(this);
                        error
                    }
                    Err(e) => e,
                };
                let Some(this) = weak.upgrade() else { return };
                this.set(false, Some(error));
                drop(this);
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
        });
        subscription
    }

    /// Its state now.
    pub fn status(&self) -> Status {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Status {
            subscribed: state.subscribed,
            for_time: state.since.elapsed(),
            error: state.error.clone(),
            received: self.received.load(Ordering::Relaxed),
        }
    }

    /// Records a state change (logged when `subscribed` flips).
    fn set(&self, subscribed: bool, error: Option<String>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.subscribed != subscribed {
            state.since = Instant::now();
            if subscribed {
                tracing::info!("subscribed to the other region's invalidations");
            } else {
                tracing::warn!(
                    error = error.as_deref().unwrap_or(""),
                    "lost the subscription to the other region's invalidations; retrying"
                );
            }
        } else if let Some(e) = &error {
            tracing::debug!(error = e.as_str(), "invalidation subscription still down");
        }
        state.subscribed = subscribed;
        state.error = error;
    }

    /// Acts on messages until the connection drops or stops answering; returns why.
    async fn listen(
        &self,
        pubsub: redis::aio::PubSub,
        local: &ConnectionManager,
        cache_timeout: Duration,
    ) -> String {
        let (mut sink, mut messages) = pubsub.split();
        // Pings run in their own task, so a ping waiting on a slow link never holds up the
        // messages behind it.
        let mut pinger = tokio::spawn(async move {
            loop {
                tokio::time::sleep(PING_EVERY).await;
                match tokio::time::timeout(ANSWER_WITHIN, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING on the subscription: {e}"),
                    Err(_) => {
                        return format!(
                            "PING on the subscription: no answer within {ANSWER_WITHIN:?}"
                        );
                    }
                }
            }
        });
        let reason = loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        break "the subscribed connection closed".to_owned();
                    };
                    let key = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                    // A message on the profile channel names a user whose profile changed or
                    // was erased; on the key channel, a `kv` key.
                    let redis_key = if message.get_channel_name() == PROFILE_INVALIDATION_CHANNEL {
                        profile_redis_key(&key)
                    } else {
                        redis_key(&key)
                    };
                    self.received.fetch_add(1, Ordering::Relaxed);
                    // Spawned: a slow local Redis must not hold up the next messages. Deletes
                    // commute, so their order does not matter.
                    let mut conn = local.clone();
                    tokio::spawn(async move {
                        let del = redis::cmd("DEL").arg(&redis_key).to_owned();
                        match tokio::time::timeout(
                            cache_timeout,
                            del.query_async::<i64>(&mut conn),
                        )
                        .await
                        {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::debug!(%key, error = %e, "invalidation skipped"),
                            Err(_) => tracing::debug!(%key, "invalidation: no answer in time"),
                        }
                    });
                }
                reason = &mut pinger => {
                    break reason.unwrap_or_else(|e| format!("the ping task ended: {e}"));
                }
            }
        };
        pinger.abort();
        reason
    }
}

/// Connects to `remote` and subscribes to the invalidation channel, within [`ANSWER_WITHIN`].
async fn subscribe(remote: &redis::Client) -> Result<redis::aio::PubSub, String> {
    let work = async {
        let mut pubsub = remote.get_async_pubsub().await?;
        pubsub
            .subscribe(&[INVALIDATION_CHANNEL, PROFILE_INVALIDATION_CHANNEL])
            .await?;
        redis::RedisResult::Ok(pubsub)
    };
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(format!("subscribing to {INVALIDATION_CHANNEL}: {e}")),
        Err(_) => Err(format!(
            "subscribing to {INVALIDATION_CHANNEL}: no answer within {ANSWER_WITHIN:?}"
        )),
    }
}
