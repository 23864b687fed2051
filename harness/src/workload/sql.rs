//! Database-only mode: the simulated users write and read PostgreSQL directly, with the same
//! statements and the same `fail`/`unknown` split as the sample app's `single-writer`
//! posture (`stacks/app/README.md`), so lost writes, RPO and RTO of any PostgreSQL HA
//! endpoint — managed, Patroni, pg_auto_failover — are measured as for a stack with an app.
//!
//! Writes go to the routed primary's database, reads to the user's own region's database
//! (the primary's when the region has none). The tables are the app's (`kv`, `writes`,
//! `counters`), created on the primary if missing ([`ensure_schema`]).

use crate::history::{OpKind, Outcome, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The app's `single-writer` tables, as its README gives them.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (key text PRIMARY KEY, value text NOT NULL, version bigint NOT NULL,
    write_id bigint NOT NULL, user_id bigint, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS writes (write_id bigint PRIMARY KEY, key text NOT NULL, value text NOT NULL,
    version bigint NOT NULL, user_id bigint, region text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS counters (key text PRIMARY KEY, value bigint NOT NULL DEFAULT 0);";

/// The app's `single-writer` PUT: upsert the row, append to the log, in one statement;
/// returns the version, the committing server's name and the timeline it commits on.
/// `$1` key, `$2` value, `$3` write_id, `$4` user_id, `$5` region.
const PUT_SQL: &str = "
WITH up AS (
    INSERT INTO kv (key, value, version, write_id, user_id, updated_at)
    VALUES ($1, $2, 1, $3, $4, now())
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = kv.version + 1,
        write_id = EXCLUDED.write_id, user_id = EXCLUDED.user_id, updated_at = EXCLUDED.updated_at
    RETURNING version
)
INSERT INTO writes (write_id, key, value, version, user_id, region)
SELECT $3, $1, $2, up.version, $4, $5 FROM up
RETURNING version,
    coalesce(current_setting('regiondrill.node', true), current_setting('cluster_name')),
    ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int";

const GET_SQL: &str = "SELECT version, write_id FROM kv WHERE key = $1";

const INCR_SQL: &str = "INSERT INTO counters (key, value) VALUES ($1, 1)
    ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 RETURNING value";

/// Creates the app's tables on the database at `dsn` (the primary) if they are missing.
pub async fn ensure_schema(dsn: &str) -> Result<(), crate::postgres::PgError> {
    let c = crate::postgres::connect_dsn(dsn, Duration::from_secs(5)).await?;
    c.batch_execute(SCHEMA)
        .await
        .map_err(|e| crate::postgres::PgError::Query {
            sql: "CREATE TABLE IF NOT EXISTS kv, writes, counters".into(),
            error: e.to_string(),
        })
}

/// Connections by DSN, reused while they work (a connection that saw any error is dropped:
/// it may hold a transaction open).
#[derive(Clone, Default)]
pub struct SqlClient {
    idle: Arc<Mutex<HashMap<String, Vec<tokio_postgres::Client>>>>,
    timeout: Duration,
}

/// Where one operation goes: the region and DSN of the database it writes to, and the
/// DSN it reads from.
#[derive(Debug, Clone)]
pub struct SqlRoute {
    /// Region of the write database.
    pub write_region: String,
    /// The write database.
    pub write: String,
    /// Region of the read database.
    pub read_region: String,
    /// The read database.
    pub read: String,
}

impl SqlClient {
    /// A client giving up on each operation after `timeout`.
    pub fn new(timeout: Duration) -> SqlClient {
        SqlClient {
            idle: Arc::default(),
            timeout,
        }
    }

    /// One operation of the workload (a write of value `w{write_id}`, a read, an increment).
    pub async fn call(
        &self,
        route: &SqlRoute,
        kind: OpKind,
        key: &str,
        write_id: u64,
        user: u32,
        region: &str,
    ) -> Outcome {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (dsn, served_by) = match kind {
            OpKind::Read => (&route.read, &route.read_region),
            _ => (&route.write, &route.write_region),
        };
        let client = match self.take(dsn, deadline).await {
            Ok(c) => c,
            Err(error) => return Outcome::Fail { error },
        };
        let outcome = match kind {
            OpKind::Write => write(&client, key, write_id, user, region, served_by, deadline).await,
            OpKind::Read => read(&client, key, served_by, deadline).await,
            OpKind::Incr => incr(&client, key, served_by, deadline).await,
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase => Outcome::Fail {
                error: "personal-data operations need an app".into(),
            },
        };
        if outcome.is_ok() {
            self.idle
                .lock()
                .expect("pool lock")
                .entry(dsn.clone())
                .or_default()
                .push(client);
        }
        outcome
    }

    async fn take(
        &self,
        dsn: &str,
        deadline: tokio::time::Instant,
    ) -> Result<tokio_postgres::Client, String> {
        loop {
            let idle = self
                .idle
                .lock()
                .expect("pool lock")
                .get_mut(dsn)
                .and_then(Vec::pop);
            match idle {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        crate::postgres::connect_dsn(dsn, left.min(Duration::from_secs(1)))
            .await
            .map_err(|e| e.to_string())
    }
}

/// BEGIN and the statement, then COMMIT alone: an error or no answer before COMMIT is a
/// `fail` (nothing can commit without it, and the connection is dropped); COMMIT refused
/// with an ERROR is a `fail`; COMMIT unanswered or cut off (a FATAL after a local commit
/// included) is `unknown`.
async fn write(
    c: &tokio_postgres::Client,
    key: &str,
    write_id: u64,
    user: u32,
    region: &str,
    served_by: &str,
    deadline: tokio::time::Instant,
) -> Outcome {
    let value = format!("w{write_id}");
    let (id, user) = (write_id as i64, i64::from(user));
    let statement = async {
        c.batch_execute("BEGIN").await?;
        c.query_one(PUT_SQL, &[&key, &value, &id, &user, &region])
            .await
    };
    let row = match tokio::time::timeout_at(deadline, statement).await {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => {
            return Outcome::Fail {
                error: e.to_string(),
            };
        }
        Err(_) => {
            return Outcome::Fail {
                error: "no answer before COMMIT".into(),
            };
        }
    };
    match tokio::time::timeout_at(deadline, c.batch_execute("COMMIT")).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let refused = e.as_db_error().is_some_and(|d| d.severity() == "ERROR");
            let error = format!("COMMIT: {e}");
            return if refused {
                Outcome::Fail { error }
            } else {
                Outcome::Unknown { error }
            };
        }
        Err(_) => {
            return Outcome::Unknown {
                error: "COMMIT not answered".into(),
            };
        }
    }
    let name: Option<String> = row.get(1);
    let tl: i32 = row.get(2);
    Outcome::Ok {
        served_by: served_by.to_string(),
        version: Some(row.get(0)),
        write_id: Some(write_id),
        source: None,
        committed_by: Some(committer(name, served_by)),
        value: None,
        timeline: u32::try_from(tl).ok(),
    }
}

async fn read(
    c: &tokio_postgres::Client,
    key: &str,
    served_by: &str,
    deadline: tokio::time::Instant,
) -> Outcome {
    match tokio::time::timeout_at(deadline, c.query_opt(GET_SQL, &[&key])).await {
        Ok(Ok(row)) => Outcome::Ok {
            served_by: served_by.to_string(),
            version: row.as_ref().map(|r| r.get(0)),
            write_id: row.as_ref().map(|r| r.get::<_, i64>(1) as u64),
            source: Some(Source::Db),
            committed_by: None,
            value: None,
            timeline: None,
        },
        Ok(Err(e)) => Outcome::Fail {
            error: e.to_string(),
        },
        Err(_) => Outcome::Fail {
            error: "no answer".into(),
        },
    }
}

/// An increment is one statement in autocommit: no answer may mean it committed.
async fn incr(
    c: &tokio_postgres::Client,
    key: &str,
    served_by: &str,
    deadline: tokio::time::Instant,
) -> Outcome {
    match tokio::time::timeout_at(deadline, c.query_one(INCR_SQL, &[&key])).await {
        Ok(Ok(row)) => Outcome::Ok {
            served_by: served_by.to_string(),
            version: None,
            write_id: None,
            source: None,
            committed_by: Some(served_by.to_string()),
            value: Some(row.get(0)),
            timeline: None,
        },
        Ok(Err(e)) if e.as_db_error().is_some_and(|d| d.severity() == "ERROR") => Outcome::Fail {
            error: e.to_string(),
        },
        Ok(Err(e)) => Outcome::Unknown {
            error: e.to_string(),
        },
        Err(_) => Outcome::Unknown {
            error: "no answer".into(),
        },
    }
}

/// Which region committed: the server's name when it is a region's (regiondrill's own
/// stacks name their servers so), else the region whose database the harness wrote to.
fn committer(name: Option<String>, served_by: &str) -> String {
    match name {
        Some(n) if crate::stack::topology::REGIONS.contains(&n.as_str()) => n,
        _ => served_by.to_string(),
    }
}
