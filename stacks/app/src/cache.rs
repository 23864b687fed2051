//! This region's Redis, used as a read-through cache of `kv` rows.
//!
//! - Key `kv:{key}` holds the JSON `{"value","version","write_id"}` of a row read from the DB,
//!   set with a lifetime of `--cache-ttl-ms` (`PX`). Absence is not cached.
//! - A write deletes the key after its COMMIT, in this region's Redis only: another region's
//!   cache keeps serving the old value until its entry expires. A read that missed, read the
//!   old row and sets it after a concurrent write's delete also leaves a stale entry until it
//!   expires. Both are the stale reads the harness measures, on purpose.
//! - The cache is best effort: every command is bounded by `--cache-timeout-ms`, and a cache
//!   failure never fails a request (reads fall back to the DB, writes skip the delete).
//!
//! One multiplexed [`ConnectionManager`] serves every request; it connects lazily (the app
//! starts even when Redis is down) and reconnects by itself after a connection breaks.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, FromRedisValue};
use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;

/// What the cache holds for one key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: String,
    /// The row's version when it was read.
    pub version: i64,
    /// The write that produced that version.
    pub write_id: i64,
}

/// A failed cache command: a Redis error, or no answer within the time allowed.
#[derive(Debug)]
pub struct CacheError(String);

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cache of one region.
pub struct Cache {
    /// Shared, multiplexed, self-reconnecting connection; cloning it is cheap.
    manager: ConnectionManager,
    /// Entry lifetime in milliseconds (`PX`).
    ttl_ms: u64,
    /// Longest wait for one command.
    timeout: Duration,
}

impl Cache {
    /// A cache on `redis`; connects on first use.
    pub fn new(redis: &ConnectionInfo, ttl: Duration, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis.clone()).context("--redis")?;
        // One connection attempt per command that needs it: no backoff loop for requests to
        // wait behind while Redis is down; the next command simply tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .context("creating the Redis connection manager")?;
        Ok(Self {
            manager,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            timeout,
        })
    }

    /// The cached row of `key`, if any. An unreadable entry counts as a miss.
    pub async fn get(&self, key: &str, deadline: Deadline) -> Result<Option<Entry>, CacheError> {
        let raw: Option<Vec<u8>> = self
            .run(redis::cmd("GET").arg(redis_key(key)), deadline)
            .await?;
        Ok(raw.and_then(|bytes| match serde_json::from_slice(&bytes) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::debug!(key, error = %e, "unreadable cache entry, treated as a miss");
                None
            }
        }))
    }

    /// Caches `entry` for `key` for the configured lifetime.
    pub async fn set(
        &self,
        key: &str,
        entry: &Entry,
        deadline: Deadline,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_vec(entry).expect("an Entry always serializes");
        let cmd = redis::cmd("SET")
            .arg(redis_key(key))
            .arg(json)
            .arg("PX")
            .arg(self.ttl_ms)
            .to_owned();
        self.run(&cmd, deadline).await
    }

    /// Deletes the entries of `keys` (none: no command). Bounded by the cache timeout alone,
    /// not by the request deadline: it runs after a COMMIT, when the answer is already decided,
    /// and skipping it would leave a stale entry.
    pub async fn invalidate<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CacheError> {
        let keys: Vec<String> = keys.into_iter().map(redis_key).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let deadline = Deadline::after(self.timeout);
        let _deleted: i64 = self.run(redis::cmd("DEL").arg(keys), deadline).await?;
        Ok(())
    }

    /// One `PING`, for `/health`.
    pub async fn ping(&self, deadline: Deadline) -> Result<(), CacheError> {
        let _pong: String = self.run(&redis::cmd("PING"), deadline).await?;
        Ok(())
    }

    /// Sends `cmd`, waiting until the deadline or the cache timeout, whichever comes first.
    async fn run<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        deadline: Deadline,
    ) -> Result<T, CacheError> {
        let mut conn = self.manager.clone();
        match deadline
            .capped(self.timeout)
            .run(cmd.query_async(&mut conn))
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CacheError(format!("redis: {e}"))),
            Err(_) => Err(CacheError("redis: no answer in time".to_owned())),
        }
    }
}

/// The Redis key of a `kv` key.
fn redis_key(key: &str) -> String {
    format!("kv:{key}")
}
