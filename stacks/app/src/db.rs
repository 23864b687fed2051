//! PostgreSQL: the schema, the write and read pools (swapped as a whole by `/admin/db`), the
//! connection guard, and the two ways a request talks to the DB:
//!
//! - [`Conn::step`]: one autocommit exchange (a read, a health probe). Any failure is `fail`:
//!   nothing was changed.
//! - [`Conn::transact`]: a write. Step 1 is BEGIN and the statements, pipelined in one round
//!   trip; step 2 is COMMIT, alone. A failure in step 1 is `fail` (nothing can commit without
//!   our COMMIT, and the connection is then closed, which rolls back). Once COMMIT is sent, no
//!   answer within the deadline, or a broken connection, is `unknown`: the server may have
//!   committed (with synchronous replication it commits locally, then waits for the standby).
//!
//! Connections are handed out by deadpool with `RecyclingMethod::Fast` (no round trip on
//! checkout; a connection whose socket closed, e.g. cut by a fault proxy, is noticed by
//! `is_closed()` and discarded). A connection that was in use when a request failed or timed
//! out is never returned to the pool: [`Conn`] detaches and closes it, because it may still have
//! a query in flight or an open transaction. So the app recovers on its own once a fault heals.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::str::FromStr as _;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::{Severity, SqlState};

use crate::deadline::Deadline;
use crate::error::{ApiError, chain};
use crate::posture::{Region, regions};

/// The schema of `single-writer` that `migrate` creates; every statement is idempotent.
///
/// `writes` is an append-only log of every committed write: the harness reads it from the
/// final primary to find lost writes (acknowledged, yet absent). `profiles` holds each user's
/// personal data (`PUT /users/{id}/profile`); only erasure deletes from it.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key text PRIMARY KEY,
    value text NOT NULL,
    version bigint NOT NULL,
    write_id bigint NOT NULL,
    user_id bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS writes (
    write_id bigint PRIMARY KEY,
    key text NOT NULL,
    value text NOT NULL,
    version bigint NOT NULL,
    user_id bigint,
    region text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS counters (
    key text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id bigint PRIMARY KEY,
    home text NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
";

/// The tables of one region for the active-active postures (`kv_{r}`, `writes_{r}`,
/// `counter_{r}`, `profiles_{r}`); idempotent. Each is written by one database only, its region's primary,
/// and replicated to the other region's database by logical replication (set up by the
/// harness). The primary keys are the replica identity logical replication needs to apply
/// updates and deletes.
///
/// - `kv_{r}.region` is always `r`: it breaks last-write-wins ties between equal `hlc`s.
/// - `writes_{r}.region` is the region of the app that served the write (in `partitioned` a
///   traveller's write to a remote home says where it came from).
/// - `counter_{r}`: `p`/`n` are this region's PN-counter components (`crdt`, `partitioned`);
///   `value`/`hlc` the last-write-wins register (`lww`; in `crdt` `value` is `p - n`).
pub fn region_schema(r: Region) -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS kv_{r} (
    key text PRIMARY KEY,
    value text NOT NULL,
    version bigint NOT NULL,
    write_id bigint NOT NULL,
    user_id bigint,
    hlc bigint NOT NULL,
    region text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS writes_{r} (
    write_id bigint PRIMARY KEY,
    key text NOT NULL,
    value text NOT NULL,
    version bigint NOT NULL,
    user_id bigint,
    region text NOT NULL,
    hlc bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS counter_{r} (
    key text PRIMARY KEY,
    p bigint NOT NULL DEFAULT 0,
    n bigint NOT NULL DEFAULT 0,
    value bigint NOT NULL DEFAULT 0,
    hlc bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS profiles_{r} (
    user_id bigint PRIMARY KEY,
    home text NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"
    )
}

/// Everything `migrate` creates: [`SCHEMA`] and the tables of every region.
fn full_schema() -> String {
    let mut schema = SCHEMA.to_owned();
    for r in regions() {
        schema.push_str(&region_schema(r));
    }
    schema
}

/// Connections per pool (the write pool and the read pool each).
const POOL_MAX_SIZE: usize = 16;
/// Longest wait to open one connection (TCP connect and PostgreSQL start-up).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for `migrate` as a whole.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection string (URL or `key=value` form), parsed, keeping its text to echo
/// back in `/admin/db`.
#[derive(Clone)]
pub struct Dsn {
    /// As given.
    text: String,
    /// As tokio-postgres understands it.
    config: tokio_postgres::Config,
}

impl Dsn {
    /// Parses a DSN.
    pub fn parse(text: &str) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            text: text.to_owned(),
            config: tokio_postgres::Config::from_str(text)?,
        })
    }

    /// The DSN as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Creates the schema on `dsn` (idempotent).
pub async fn migrate(dsn: &Dsn) -> anyhow::Result<()> {
    let work = async {
        let mut config = dsn.config.clone();
        config.connect_timeout(CONNECT_TIMEOUT);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to {}", dsn.as_str()))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&full_schema())
            .await
            .context("creating the schema")?;
        drop(client);
        let _ = connection.await;
        anyhow::Ok(())
    };
    tokio::time::timeout(MIGRATE_TIMEOUT, work)
        .await
        .with_context(|| format!("migrate took over {MIGRATE_TIMEOUT:?}"))?
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    println!("schema ready");
    Ok(())
}

/// The pools requests use right now. Never changed in place: `/admin/db` builds a new one.
pub struct Pools {
    /// Where writes go.
    pub write: Pool,
    /// Where reads go.
    pub read: Pool,
    /// DSN of `write`.
    pub write_dsn: Dsn,
    /// DSN of `read`.
    pub read_dsn: Dsn,
}

/// The current [`Pools`], swappable atomically.
pub struct Db {
    /// Read on every request (a cheap `Arc` clone), written by `/admin/db`.
    current: RwLock<Arc<Pools>>,
}

impl Db {
    /// Pools for the two DSNs. Nothing connects until the first request.
    pub fn new(write_dsn: &Dsn, read_dsn: &Dsn) -> Self {
        let pools = Pools {
            write: pool(write_dsn),
            read: pool(read_dsn),
            write_dsn: write_dsn.clone(),
            read_dsn: read_dsn.clone(),
        };
        Self {
            current: RwLock::new(Arc::new(pools)),
        }
    }

    /// The pools to use for one request.
    pub fn current(&self) -> Arc<Pools> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the pool of each DSN given (even if it is the same DSN: after a failover the
    /// same proxy address may lead elsewhere, so every connection is opened afresh) and closes
    /// the replaced pools. Requests that already hold a connection finish on it; new requests
    /// use the new pools. Returns the new current pools.
    pub fn replace(&self, write_dsn: Option<Dsn>, read_dsn: Option<Dsn>) -> Arc<Pools> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old = Arc::clone(&current);
        let (replace_write, replace_read) = (write_dsn.is_some(), read_dsn.is_some());
        let (write, write_dsn) = match write_dsn {
            Some(dsn) => (pool(&dsn), dsn),
            None => (old.write.clone(), old.write_dsn.clone()),
        };
        let (read, read_dsn) = match read_dsn {
            Some(dsn) => (pool(&dsn), dsn),
            None => (old.read.clone(), old.read_dsn.clone()),
        };
        let new = Arc::new(Pools {
            write,
            read,
            write_dsn,
            read_dsn,
        });
        *current = Arc::clone(&new);
        drop(current);
        // Closing drops the idle connections now; those in use are dropped when released.
        if replace_write {
            old.write.close();
        }
        if replace_read {
            old.read.close();
        }
        new
    }
}

/// The primary of one home region (`--home-db`, `partitioned`). Fixed at start-up:
/// `/admin/db` does not change it.
pub struct HomeDb {
    /// The home region.
    pub region: Region,
    /// Its pool.
    pub pool: Pool,
    /// "home db {region}", for messages.
    pub what: &'static str,
}

/// The home databases, one per region given.
pub struct Homes(Vec<HomeDb>);

impl Homes {
    /// Lazy pools for `dsns`; nothing connects until the first request.
    pub fn new(dsns: &[(Region, Dsn)]) -> Self {
        Homes(
            dsns.iter()
                .map(|(region, dsn)| HomeDb {
                    region,
                    pool: pool(dsn),
                    // Two regions at most, made once at start-up.
                    what: Box::leak(format!("home db {region}").into_boxed_str()),
                })
                .collect(),
        )
    }

    /// The home database of `region`, if one was given.
    pub fn get(&self, region: &str) -> Option<&HomeDb> {
        self.0.iter().find(|h| h.region == region)
    }

    /// Every home database, in the order given.
    pub fn all(&self) -> &[HomeDb] {
        &self.0
    }
}

/// A lazy pool for `dsn`.
fn pool(dsn: &Dsn) -> Pool {
    let mut config = dsn.config.clone();
    config.connect_timeout(CONNECT_TIMEOUT);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_MAX_SIZE)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .expect("a pool with a runtime accepts create_timeout")
}

/// A connection checked out for one request. Dropped without [`Conn::release`] (an error, a
/// timeout, a cancelled request), it is taken out of the pool and closed instead of being
/// reused: it may have a query in flight or a transaction open, and closing it makes the
/// server roll back anything uncommitted.
pub struct Conn {
    /// `None` only during drop.
    object: Option<Object>,
    /// Set by [`Conn::release`]: the last exchange completed, the session is idle.
    reusable: bool,
    /// "write db" or "read db", for messages.
    what: &'static str,
}

impl Conn {
    /// Checks a connection out of `pool` within the deadline; `what` names the pool in errors.
    pub async fn get(
        pool: &Pool,
        deadline: Deadline,
        what: &'static str,
    ) -> Result<Self, ApiError> {
        match deadline.run(pool.get()).await {
            Ok(Ok(object)) => Ok(Self {
                object: Some(object),
                reusable: false,
                what,
            }),
            Ok(Err(e)) => Err(ApiError::Unavailable(format!(
                "{what}: no connection: {}",
                chain(&e)
            ))),
            Err(_) => Err(ApiError::Unavailable(format!(
                "{what}: no connection within the deadline"
            ))),
        }
    }

    /// Returns the connection to the pool: call it only once every exchange has completed.
    pub fn release(mut self) {
        self.reusable = true;
    }

    /// A prepared statement for `sql`, from this connection's cache when it was prepared before
    /// (one round trip otherwise).
    pub async fn prepare(
        &self,
        deadline: Deadline,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, ApiError> {
        self.step(deadline, self.prepare_cached(sql)).await
    }

    /// Runs one exchange that changes nothing (a read, a prepare, a probe) within the deadline.
    /// Every failure is `fail`. Not for writes: a write statement that times out may have
    /// applied; use [`Conn::transact`].
    pub async fn step<T>(
        &self,
        deadline: Deadline,
        exchange: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ApiError> {
        let what = self.what;
        match deadline.run(exchange).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ApiError::Unavailable(format!("{what}: {}", describe(&e)))),
            Err(_) => Err(ApiError::Unavailable(format!(
                "{what}: no answer within the deadline"
            ))),
        }
    }

    /// Runs `statements` in a transaction and commits it, classifying a failure by the step it
    /// happened in (see the module docs). `statements` must only use this connection; it is
    /// not polled until BEGIN has been sent, so both go out in one round trip.
    pub async fn transact<T>(
        &self,
        deadline: Deadline,
        statements: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ApiError> {
        let what = self.what;

        // Step 1: BEGIN and the statements, pipelined. Nothing commits without our COMMIT.
        let step1 = futures::future::join(self.batch_execute("BEGIN"), statements);
        let value = match deadline.run(step1).await {
            Ok((Ok(()), Ok(value))) => value,
            // A pooled session is always idle, so BEGIN cannot fail on its own; if it did, the
            // statements ran in autocommit mode and may have committed.
            Ok((Err(e), Ok(_))) => {
                return Err(ApiError::Unknown(format!(
                    "{what}: BEGIN failed but the statements ran without it: {}",
                    describe(&e)
                )));
            }
            Ok((_, Err(e))) => return Err(statement_error(what, &e)),
            Err(_) => {
                return Err(ApiError::Unavailable(format!(
                    "{what}: no answer before COMMIT within the deadline (not committed)"
                )));
            }
        };

        // Step 2: COMMIT, alone. From here on a missing answer means "may have committed".
        if self.is_closed() {
            return Err(ApiError::Unavailable(format!(
                "{what}: connection closed before COMMIT (not committed)"
            )));
        }
        match deadline.run(self.batch_execute("COMMIT")).await {
            Ok(Ok(())) => Ok(value),
            // A plain ERROR answering COMMIT means the server rolled back.
            Ok(Err(e)) if severity(&e) == Some(Severity::Error) => Err(ApiError::Unavailable(
                format!("{what}: COMMIT refused (rolled back): {}", describe(&e)),
            )),
            // A broken connection or a FATAL (e.g. the backend terminated while waiting for a
            // synchronous standby, after committing locally): the outcome is unknown.
            Ok(Err(e)) => Err(ApiError::Unknown(format!(
                "{what}: connection lost during COMMIT, it may have committed: {}",
                describe(&e)
            ))),
            Err(_) => Err(ApiError::Unknown(format!(
                "{what}: no answer to COMMIT within the deadline, it may have committed"
            ))),
        }
    }
}

impl Deref for Conn {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.object
            .as_ref()
            .expect("a Conn holds its object until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.reusable
            && let Some(object) = self.object.take()
        {
            // Detach from the pool; dropping the client aborts its connection task, which
            // closes the socket.
            drop(Object::take(object));
        }
    }
}

/// The error of a statement before COMMIT: a replayed `write_id` (the primary key of
/// `writes` or `writes_{r}`) is a 409, the rest a 503; both `fail`.
fn statement_error(what: &str, e: &tokio_postgres::Error) -> ApiError {
    let duplicate_write = e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION
            && db.constraint().is_some_and(|c| {
                c == "writes_pkey" || regions().iter().any(|r| c == format!("writes_{r}_pkey"))
            })
    });
    if duplicate_write {
        ApiError::DuplicateWrite(format!(
            "{what}: this write_id is already in the writes log: {}",
            describe(e)
        ))
    } else {
        ApiError::Unavailable(format!("{what}: {}", describe(e)))
    }
}

/// The server-reported severity of `e`, if the server reported it.
fn severity(e: &tokio_postgres::Error) -> Option<Severity> {
    e.as_db_error().and_then(|db| db.parsed_severity())
}

/// One line for a tokio-postgres error: the server's message and SQLSTATE when it is a server
/// error, else the error chain.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => chain(e),
    }
}
