//! PostgreSQL as the whole harness talks to it — backends, failover managers, probes and the
//! final-state reader alike: connection strings, connecting with a deadline, the settings a
//! drill's clusters share, the commit mode of a posture, promotion, and the logical
//! replication of the active-active postures. Nothing here starts a server: that is the
//! backends' business (`stack::native`, `stack::docker`).

use std::time::Duration;

/// The superuser every node and client uses (trust auth: it is a test stack).
pub const SUPERUSER: &str = "postgres";

/// Why talking to PostgreSQL failed. The kinds differ in what a caller can do: a connection
/// that failed may work on retry (a node still starting, a link cut), a query that failed
/// names the statement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgError {
    /// The connection string does not parse.
    #[error("bad DSN {dsn}: {error}")]
    BadDsn {
        /// The connection string.
        dsn: String,
        /// The parser's message.
        error: String,
    },
    /// Connecting failed or took longer than allowed.
    #[error("connect: {0}")]
    Connect(String),
    /// A statement failed.
    #[error("{sql}: {error}")]
    Query {
        /// The statement.
        sql: String,
        /// The server's or the driver's message.
        error: String,
    },
    /// A condition did not come true in time.
    #[error("{0}")]
    Timeout(String),
}

/// The cluster-wide settings a drill needs, appended to `postgresql.conf` of every cluster
/// (natively by the template cache, in containers by the start script). The posture's commit
/// mode is not among them: it is set on the primary once the replica streams
/// ([`require_standby`]), so that neither the schema set-up before nor a promoted replica
/// after waits for a standby that is not there.
pub fn cluster_conf() -> Vec<(String, String)> {
    [
        // Nodes die by SIGKILL, never by power loss: the OS page cache keeps every write a
        // process made, so fsync changes nothing measured here and costs a lot.
        ("fsync", "off".to_string()),
        // Logical, so active-active postures can replicate tables both ways.
        ("wal_level", "logical".into()),
        ("max_replication_slots", "10".into()),
        ("max_wal_senders", "10".into()),
        ("wal_keep_size", "'1GB'".into()),
        ("hot_standby", "on".into()),
        // Notice a dead peer in seconds, and reconnect fast once a link heals.
        ("wal_sender_timeout", "'3s'".into()),
        ("wal_receiver_timeout", "'3s'".into()),
        ("wal_retrieve_retry_interval", "'100ms'".into()),
        ("wal_receiver_status_interval", "'1s'".into()),
        ("max_connections", "200".into()),
        ("shared_buffers", "'64MB'".into()),
        // Parallel queries' shared memory as files in the data directory, not POSIX segments
        // in /dev/shm: a SIGKILLed server never removes its segments, so every killed node
        // leaked about a megabyte of memory on the host until reboot.
        ("dynamic_shared_memory_type", "mmap".into()),
        ("log_min_messages", "warning".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `initdb`'s flags besides the data directory. WAL segments of 1 MB rather than 16: every
/// node's data directory is a copy of an empty cluster, and the copy is 28 MB instead of 39.
/// (`stacks/images/build.sh` makes the image's cluster with the same flags.)
pub const INITDB_FLAGS: [&str; 7] = [
    "-U",
    SUPERUSER,
    "--auth=trust",
    "--no-sync",
    "--encoding=UTF8",
    "--locale=C",
    "--wal-segsize=1",
];

/// The `postgresql.auto.conf` line that makes a cluster stream from `host:port` (with
/// `standby.signal` beside it). The standby's `cluster_name` is its `application_name` in
/// the primary's `pg_stat_replication`, which `synchronous_standby_names` matches.
pub fn primary_conninfo(host: &str, port: u16) -> String {
    format!("primary_conninfo = 'host={host} port={port} user={SUPERUSER} connect_timeout=2'\n")
}

/// A libpq connection string for `127.0.0.1:port`.
pub fn dsn(port: u16) -> String {
    dsn_at("127.0.0.1", port)
}

/// A libpq connection string for `host:port`.
pub fn dsn_at(host: &str, port: u16) -> String {
    format!("host={host} port={port} user={SUPERUSER} dbname=postgres connect_timeout=2")
}

/// Connects to `127.0.0.1:port`; the connection's driver task ends with the client.
pub async fn connect(port: u16, timeout: Duration) -> Result<tokio_postgres::Client, PgError> {
    connect_dsn(&dsn(port), timeout).await
}

/// Connects with a DSN, giving up after `timeout` (a black-holed link never answers).
pub async fn connect_dsn(dsn: &str, timeout: Duration) -> Result<tokio_postgres::Client, PgError> {
    let mut config: tokio_postgres::Config = dsn.parse().map_err(|e| PgError::BadDsn {
        dsn: dsn.to_string(),
        error: format!("{e}"),
    })?;
    config.connect_timeout(timeout);
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(PgError::Connect(e.to_string())),
        Err(_) => return Err(PgError::Connect(format!("timed out after {timeout:?}"))),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs one statement (simple protocol), naming it in the error.
pub async fn execute(c: &tokio_postgres::Client, sql: &str) -> Result<(), PgError> {
    c.simple_query(sql)
        .await
        .map(drop)
        .map_err(|e| PgError::Query {
            sql: sql.to_string(),
            error: e.to_string(),
        })
}

/// Sets the primary's commit mode (`synchronous_commit`, `synchronous_standby_names`) and
/// waits until the standby `standby` streams — and, when commits wait for it, is the
/// synchronous standby.
pub async fn require_standby(
    port: u16,
    synchronous_commit: &str,
    standby_names: &str,
    standby: &str,
) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    for sql in [
        format!("ALTER SYSTEM SET synchronous_commit = '{synchronous_commit}'"),
        format!("ALTER SYSTEM SET synchronous_standby_names = '{standby_names}'"),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        execute(&c, &sql).await?;
    }
    await_standby(port, standby, !standby_names.is_empty()).await
}

/// Waits until the standby `standby` streams from the primary on `port` (and, with
/// `want_sync`, is its synchronous standby), for 15 s at most.
pub async fn await_standby(port: u16, standby: &str, want_sync: bool) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    let sql = "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = c
            .query(sql, &[&standby])
            .await
            .map_err(|e| PgError::Query {
                sql: sql.into(),
                error: e.to_string(),
            })?;
        let ready = rows.iter().any(|r| {
            r.get::<_, Option<String>>(0).as_deref() == Some("streaming")
                && (!want_sync || r.get::<_, Option<String>>(1).as_deref() == Some("sync"))
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let how = if want_sync {
                " as the synchronous standby"
            } else {
                ""
            };
            return Err(PgError::Timeout(format!(
                "standby {standby} not streaming{how} after 15s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The harness's own table (the heartbeat probe's), created on every primary before any
/// replication is set up, so it is replicated like the app's tables.
pub const HARNESS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS regiondrill_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL)";

/// The app's tables a region writes in active-active postures (see stacks/app/README.md).
pub fn region_tables(region: &str) -> Vec<String> {
    ["kv", "writes", "counter"]
        .iter()
        .map(|t| format!("{t}_{region}"))
        .collect()
}

/// Name of the subscription through which another region's database receives `from`'s
/// tables (also its walsender's `application_name` on `from`).
pub fn subscription_name(from: &str) -> String {
    format!("rd_from_{from}")
}

/// Active-active replication, one direction: `from`'s database (harness port `from_port`)
/// publishes its own tables (and, from the primary region, the heartbeat table); the
/// database at harness port `to_port` subscribes, connecting with `from_dsn_inside` — the
/// replication link as that database reaches it.
pub async fn replicate(
    from: &str,
    from_port: u16,
    to_port: u16,
    from_dsn_inside: &str,
    with_heartbeat: bool,
) -> Result<(), PgError> {
    let publisher = connect(from_port, Duration::from_secs(3)).await?;
    let mut tables = region_tables(from);
    if with_heartbeat {
        tables.push("regiondrill_heartbeat".into());
    }
    let create = format!(
        "CREATE PUBLICATION rd_pub_{from} FOR TABLE {}",
        tables.join(", ")
    );
    execute(&publisher, &create).await?;
    let subscriber = connect(to_port, Duration::from_secs(3)).await?;
    // No initial copy: every table is empty when replication starts.
    let sub = subscription_name(from);
    let create = format!(
        "CREATE SUBSCRIPTION {sub} CONNECTION '{from_dsn_inside}' PUBLICATION rd_pub_{from} WITH (copy_data = false)"
    );
    execute(&subscriber, &create).await
}

/// Promotes the replica on `port` and waits until it accepts writes.
pub async fn promote(port: u16) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    let sql = "SELECT pg_promote(true, 30)";
    let row = c.query_one(sql, &[]).await.map_err(|e| PgError::Query {
        sql: sql.into(),
        error: e.to_string(),
    })?;
    if row.get::<_, bool>(0) {
        Ok(())
    } else {
        Err(PgError::Timeout("pg_promote returned false".into()))
    }
}

/// Whether the server on `127.0.0.1:port` answers `SELECT 1` within `timeout`.
pub async fn answers(port: u16, timeout: Duration) -> bool {
    let probe = async {
        let c = connect(port, timeout).await.ok()?;
        c.simple_query("SELECT 1").await.ok()
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
}
