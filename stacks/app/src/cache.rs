//! This region's Redis, used as a read-through cache of `kv` rows, and the ways a write keeps
//! the other region's cache coherent (`--cache-mode`).
//!
//! - Key `kv:{key}` holds the JSON `{"value","version","write_id"}` of a row read from the DB
//!   (plus `"hlc"` in the active-active postures), set with a lifetime of `--cache-ttl-ms`
//!   (`PX`), changed by up to `--cache-ttl-jitter-ms` either way. Absence is not cached.
//! - After a write's COMMIT, by cache mode:
//!   - `ttl`: delete the key in this region's Redis only. Another region's cache keeps
//!     serving the old value until its entry expires.
//!   - `invalidate`: delete the key and `PUBLISH` it on [`INVALIDATION_CHANNEL`], both in this
//!     region's Redis (one round trip). The other region's app is subscribed to that channel
//!     across the link and deletes its own entry when the message arrives (see
//!     [`crate::invalidation`]). Redis pub/sub does not queue: a message published while the
//!     subscriber is cut off is lost, and the other region's entry lives out its TTL.
//!   - `write-through`: put the new entry into this region's Redis and, in a spawned task,
//!     into the other region's Redis (`--remote-redis`). A failed remote SET is ignored, so a
//!     partition leaves the remote entry stale until it expires.
//! - A read that missed, read the old row and fills the cache after a concurrent write's
//!   delete also leaves a stale entry until it expires. All of these are the stale reads the
//!   harness measures, on purpose.
//! - The cache is best effort: every command is bounded by `--cache-timeout-ms`, and a cache
//!   failure never fails a request (reads fall back to the DB, writes skip the cache step).
//!
//! One multiplexed [`ConnectionManager`] per Redis serves every request; it connects lazily
//! (the app starts even when Redis is down) and reconnects by itself after a connection breaks.

use std::fmt;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, FromRedisValue};
use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;
use crate::invalidation::Subscription;
use crate::posture::CacheMode;

/// The pub/sub channel on which a region announces the keys it wrote (`invalidate` mode).
pub const INVALIDATION_CHANNEL: &str = "regiondrill:invalidate";

/// The pub/sub channel on which a region announces the users whose profile it changed or
/// erased (`invalidate` mode); each message is a user id.
pub const PROFILE_INVALIDATION_CHANNEL: &str = "regiondrill:invalidate-profile";

/// What the cache holds for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: String,
    /// The row's version when it was read.
    pub version: i64,
    /// The write that produced that version.
    pub write_id: i64,
    /// The row's hybrid logical clock timestamp (active-active postures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<i64>,
}

/// A failed cache command: a Redis error, or no answer within the time allowed.
#[derive(Debug)]
pub struct CacheError(String);

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the cache is set up (from the command line).
pub struct CacheConfig {
    /// This region's Redis.
    pub local: ConnectionInfo,
    /// The other region's Redis (`invalidate`, `write-through`).
    pub remote: Option<ConnectionInfo>,
    /// How writes reach the other region's cache.
    pub mode: CacheMode,
    /// Entry lifetime.
    pub ttl: Duration,
    /// Largest random change of the lifetime, either way.
    pub ttl_jitter: Duration,
    /// Longest wait for one command.
    pub timeout: Duration,
}

/// The cache of one region.
pub struct Cache {
    /// Shared, multiplexed, self-reconnecting connection to this region's Redis; cloning it
    /// is cheap.
    manager: ConnectionManager,
    /// The same, to the other region's Redis (`write-through` only).
    remote: Option<ConnectionManager>,
    /// How writes reach the other region's cache.
    mode: CacheMode,
    /// Entry lifetime in milliseconds (`PX`).
    ttl_ms: u64,
    /// Largest random change of the lifetime, in milliseconds.
    jitter_ms: u64,
    /// Longest wait for one command.
    timeout: Duration,
    /// The subscription to the other region's invalidations (`invalidate` only).
    subscription: Option<Arc<Subscription>>,
}

impl Cache {
    /// A cache as configured; connects on first use. In `invalidate` mode this also starts
    /// the background subscription to the other region's Redis (so call it inside the
    /// runtime).
    pub fn new(config: CacheConfig) -> anyhow::Result<Self> {
        let manager = connect(&config.local, config.timeout).context("--redis")?;
        let remote = match (config.mode, &config.remote) {
            (CacheMode::WriteThrough, Some(info)) => {
                Some(connect(info, config.timeout).context("--remote-redis")?)
            }
            _ => None,
        };
        let subscription = match (config.mode, &config.remote) {
            (CacheMode::Invalidate, Some(info)) => {
                let client = redis::Client::open(info.clone()).context("--remote-redis")?;
                Some(Subscription::start(client, manager.clone(), config.timeout))
            }
            _ => None,
        };
        Ok(Self {
            manager,
            remote,
            mode: config.mode,
            ttl_ms: u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX),
            jitter_ms: u64::try_from(config.ttl_jitter.as_millis()).unwrap_or(u64::MAX / 4),
            timeout: config.timeout,
            subscription,
        })
    }

    /// How writes reach the other region's cache.
    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The subscription to the other region's invalidations, in `invalidate` mode.
    pub fn subscription(&self) -> Option<&Subscription> {
        self.subscription.as_deref()
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

    /// Caches `entry` for `key` for the configured lifetime (jittered).
    pub async fn set(
        &self,
        key: &str,
        entry: &Entry,
        deadline: Deadline,
    ) -> Result<(), CacheError> {
        self.run(&self.set_cmd(key, entry), deadline).await
    }

    /// What a committed write of `key` does to the caches, by cache mode (see the module
    /// docs). `entry` is the row a read would now return, or `None` when the write is not it
    /// (an LWW write that lost to a newer row of the other region): then `write-through`
    /// deletes instead of setting. Bounded by the cache timeout alone, not by the request
    /// deadline: the answer is already decided, and skipping this would leave a stale entry.
    /// The remote part of `write-through` runs in a spawned task and is not waited for.
    pub async fn after_write(&self, key: &str, entry: Option<&Entry>) -> Result<(), CacheError> {
        let deadline = Deadline::after(self.timeout);
        match (self.mode, entry) {
            (CacheMode::Ttl, _) => self.delete([key], deadline).await,
            (CacheMode::Invalidate, _) => self.delete_and_publish([key], deadline).await,
            (CacheMode::WriteThrough, Some(entry)) => {
                self.to_remote(self.set_cmd(key, entry));
                self.run(&self.set_cmd(key, entry), deadline).await
            }
            (CacheMode::WriteThrough, None) => {
                self.to_remote(del_cmd([key]));
                self.delete([key], deadline).await
            }
        }
    }

    /// What an erasure of `keys` does to the caches: delete them here and, by cache mode,
    /// publish them (`invalidate`) or delete them remotely too (`write-through`, spawned).
    /// Bounded by the cache timeout alone, like [`Cache::after_write`].
    pub async fn after_erase<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), CacheError> {
        if keys.clone().into_iter().next().is_none() {
            return Ok(());
        }
        let deadline = Deadline::after(self.timeout);
        match self.mode {
            CacheMode::Ttl => self.delete(keys, deadline).await,
            CacheMode::Invalidate => self.delete_and_publish(keys, deadline).await,
            CacheMode::WriteThrough => {
                self.to_remote(del_cmd(keys.clone()));
                self.delete(keys, deadline).await
            }
        }
    }

    /// The cached profile of `user` (the JSON the app answers with), if any.
    pub async fn get_profile(
        &self,
        user: i64,
        deadline: Deadline,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let key = profile_redis_key(&user.to_string());
        self.run(redis::cmd("GET").arg(key), deadline).await
    }

    /// Caches the profile of `user` (`json`) for the configured lifetime (jittered).
    pub async fn set_profile(
        &self,
        user: i64,
        json: &[u8],
        deadline: Deadline,
    ) -> Result<(), CacheError> {
        let cmd = redis::cmd("SET")
            .arg(profile_redis_key(&user.to_string()))
            .arg(json)
            .arg("PX")
            .arg(jittered_ttl_ms(self.ttl_ms, self.jitter_ms, random_u64()))
            .to_owned();
        self.run(&cmd, deadline).await
    }

    /// What a committed profile write or an erasure of `user` does to the caches: delete
    /// `profile:{user}` here and, by cache mode, nothing more (`ttl`: the other region's copy
    /// lives out its TTL), publish the user on [`PROFILE_INVALIDATION_CHANNEL`]
    /// (`invalidate`), or delete it remotely too (`write-through`, spawned: a profile is never
    /// pushed to the other region, only removed there). Bounded by the cache timeout alone.
    pub async fn after_profile_change(&self, user: i64) -> Result<(), CacheError> {
        let deadline = Deadline::after(self.timeout);
        let id = user.to_string();
        let key = profile_redis_key(&id);
        match self.mode {
            CacheMode::Ttl => {
                let _n: i64 = self.run(redis::cmd("DEL").arg(&key), deadline).await?;
                Ok(())
            }
            CacheMode::Invalidate => {
                let mut pipe = redis::pipe();
                pipe.cmd("DEL").arg(&key).ignore();
                pipe.cmd("PUBLISH")
                    .arg(PROFILE_INVALIDATION_CHANNEL)
                    .arg(&id)
                    .ignore();
                let mut conn = self.manager.clone();
                match deadline.run(pipe.query_async::<()>(&mut conn)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(CacheError(format!("redis: {e}"))),
                    Err(_) => Err(CacheError("redis: no answer in time".to_owned())),
                }
            }
            CacheMode::WriteThrough => {
                self.to_remote(redis::cmd("DEL").arg(&key).to_owned());
                let _n: i64 = self.run(redis::cmd("DEL").arg(&key), deadline).await?;
                Ok(())
            }
        }
    }

    /// One `PING`, for `/health`.
    pub async fn ping(&self, deadline: Deadline) -> Result<(), CacheError> {
        let _pong: String = self.run(&redis::cmd("PING"), deadline).await?;
        Ok(())
    }

    /// `SET kv:{key} <json> PX <jittered ttl>`.
    fn set_cmd(&self, key: &str, entry: &Entry) -> redis::Cmd {
        let json = serde_json::to_vec(entry).expect("an Entry always serializes");
        redis::cmd("SET")
            .arg(redis_key(key))
            .arg(json)
            .arg("PX")
            .arg(jittered_ttl_ms(self.ttl_ms, self.jitter_ms, random_u64()))
            .to_owned()
    }

    /// Deletes the entries of `keys` in this region's Redis.
    async fn delete<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
        deadline: Deadline,
    ) -> Result<(), CacheError> {
        let _deleted: i64 = self.run(&del_cmd(keys), deadline).await?;
        Ok(())
    }

    /// Deletes the entries of `keys` and publishes each key on [`INVALIDATION_CHANNEL`], in
    /// this region's Redis, in one round trip.
    async fn delete_and_publish<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str> + Clone,
        deadline: Deadline,
    ) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        pipe.add_command(del_cmd(keys.clone())).ignore();
        for key in keys {
            pipe.cmd("PUBLISH")
                .arg(INVALIDATION_CHANNEL)
                .arg(key)
                .ignore();
        }
        let mut conn = self.manager.clone();
        match deadline
            .capped(self.timeout)
            .run(pipe.query_async::<()>(&mut conn))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CacheError(format!("redis: {e}"))),
            Err(_) => Err(CacheError("redis: no answer in time".to_owned())),
        }
    }

    /// Sends `cmd` to the other region's Redis in a spawned task, bounded by the cache
    /// timeout; the outcome is only logged (at debug). No-op without a remote Redis.
    fn to_remote(&self, cmd: redis::Cmd) {
        let Some(remote) = &self.remote else {
            return;
        };
        let mut conn = remote.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, cmd.query_async::<redis::Value>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "remote cache update failed"),
                Err(_) => tracing::debug!("remote cache update: no answer in time"),
            }
        });
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

/// A lazy, self-reconnecting connection to `info`.
fn connect(info: &ConnectionInfo, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(info.clone())?;
    // One connection attempt per command that needs it: no backoff loop for requests to
    // wait behind while Redis is down; the next command simply tries again.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, config)
        .context("creating the Redis connection manager")
}

/// `DEL kv:{key}…`.
fn del_cmd<'a>(keys: impl IntoIterator<Item = &'a str>) -> redis::Cmd {
    let keys: Vec<String> = keys.into_iter().map(redis_key).collect();
    redis::cmd("DEL").arg(keys).to_owned()
}

/// The Redis key of a `kv` key.
pub fn redis_key(key: &str) -> String {
    format!("kv:{key}")
}

/// The Redis key of a user's cached profile.
pub fn profile_redis_key(user: &str) -> String {
    format!("profile:{user}")
}

/// `ttl_ms` changed by a uniform amount in `[-jitter_ms, +jitter_ms]` drawn from `random`,
/// never below 1 ms.
fn jittered_ttl_ms(ttl_ms: u64, jitter_ms: u64, random: u64) -> u64 {
    if jitter_ms == 0 {
        return ttl_ms;
    }
    let span = u128::from(jitter_ms) * 2 + 1;
    let offset =
        i128::try_from(u128::from(random) % span).expect("below 2^66") - i128::from(jitter_ms);
    let ttl = (i128::from(ttl_ms) + offset).max(1);
    u64::try_from(ttl).unwrap_or(u64::MAX)
}

/// A random `u64` for TTL jitter. Not cryptographic: SipHash under the standard library's
/// randomly keyed `RandomState`, over a process-wide counter (no extra dependency).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_never_below_one_ms() {
        assert_eq!(jittered_ttl_ms(1_000, 0, 12345), 1_000);
        assert_eq!(jittered_ttl_ms(1_000, 100, 0), 900);
        assert_eq!(jittered_ttl_ms(1_000, 100, 200), 1_100);
        assert_eq!(jittered_ttl_ms(1_000, 100, 201), 900);
        assert_eq!(jittered_ttl_ms(100, 500, 0), 1);
        assert_eq!(jittered_ttl_ms(1, 1, 0), 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            let ttl = jittered_ttl_ms(1_000, 50, random_u64());
            assert!((950..=1_050).contains(&ttl), "{ttl}");
            seen.insert(ttl);
        }
        // Uniform over 101 values: 10 000 draws hit (nearly) all of them, both ends included.
        assert!(seen.len() > 90, "{}", seen.len());
    }

    #[test]
    fn entries_carry_hlc_only_when_there_is_one() {
        let entry = Entry {
            value: "v".into(),
            version: 1,
            write_id: 2,
            hlc: None,
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            r#"{"value":"v","version":1,"write_id":2}"#
        );
        let entry = Entry {
            hlc: Some(7),
            ..entry
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            r#"{"value":"v","version":1,"write_id":2,"hlc":7}"#
        );
    }
}
