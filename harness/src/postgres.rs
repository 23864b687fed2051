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
/// ([`require_standbys`]), so that neither the schema set-up before nor a promoted replica
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
    format!("primary_conninfo = {}\n", conninfo(host, port))
}

/// `primary_conninfo`'s value, quoted: stream from `host:port`.
fn conninfo(host: &str, port: u16) -> String {
    format!("'host={host} port={port} user={SUPERUSER} connect_timeout=2'")
}

/// Points the running standby at `dsn` at a new source, `host:port` (`ALTER SYSTEM` and a
/// reload: PostgreSQL 13 and later re-read `primary_conninfo` without a restart, and a
/// standby following the latest timeline switches to its new primary's).
pub async fn stream_from(dsn: &str, host: &str, port: u16) -> Result<(), PgError> {
    let c = connect_dsn(dsn, Duration::from_secs(2)).await?;
    execute(
        &c,
        &format!(
            "ALTER SYSTEM SET primary_conninfo = {}",
            conninfo(host, port)
        ),
    )
    .await?;
    execute(&c, "SELECT pg_reload_conf()").await
}

/// A libpq connection string for `127.0.0.1:port`.
pub fn dsn(port: u16) -> String {
    dsn_at("127.0.0.1", port)
}

/// A libpq connection string for `host:port`.
pub fn dsn_at(host: &str, port: u16) -> String {
    format!("host={host} port={port} user={SUPERUSER} dbname=postgres connect_timeout=2")
}

/// A libpq multi-host connection string: libpq (and tokio-postgres) tries `hosts` in order
/// and keeps the first that accepts writes.
pub fn multi_host_dsn(hosts: &[(String, u16)]) -> String {
    let join =
        |f: &dyn Fn(&(String, u16)) -> String| hosts.iter().map(f).collect::<Vec<_>>().join(",");
    format!(
        "host={} port={} user={SUPERUSER} dbname=postgres connect_timeout=2 \
         target_session_attrs=read-write",
        join(&|h| h.0.clone()),
        join(&|h| h.1.to_string())
    )
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

/// Sets the primary's commit mode and waits until every one of `standbys` streams — and each
/// one its commits wait for is synchronous.
pub async fn require_standbys(
    port: u16,
    commit: &crate::posture::CommitSettings,
    standbys: &[String],
) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    for sql in [
        format!(
            "ALTER SYSTEM SET synchronous_commit = '{}'",
            commit.synchronous_commit
        ),
        format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{}'",
            commit.standby_names
        ),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        execute(&c, &sql).await?;
    }
    let waits = standbys
        .iter()
        .map(|s| await_standby(port, s, commit.waits_for.contains(s)));
    futures::future::try_join_all(waits).await.map(|_| ())
}

/// Waits until the standby `standby` streams from the primary on `port` (and, with
/// `want_sync`, is one it waits for: `sync`, or `quorum` under `ANY n (…)`), for 15 s at most.
pub async fn await_standby(port: u16, standby: &str, want_sync: bool) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    let sql = "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = query_with(&c, sql, &[&standby]).await?;
        let ready = rows.iter().any(|r| {
            r.get::<_, Option<String>>(0).as_deref() == Some("streaming")
                && (!want_sync
                    || matches!(
                        r.get::<_, Option<String>>(1).as_deref(),
                        Some("sync" | "quorum")
                    ))
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
    ["kv", "writes", "counter", "profiles"]
        .iter()
        .map(|t| format!("{t}_{region}"))
        .collect()
}

/// Name of the subscription through which `to`'s database receives `from`'s tables (also
/// its walsender's `application_name` and its replication slot's name on `from`: one per
/// subscriber).
pub fn subscription_name(from: &str, to: &str) -> String {
    format!("rd_from_{from}_to_{to}")
}

/// Active-active replication out of one region: `from`'s database (harness port
/// `from_port`) publishes its own tables but those named in `unpublished` (without their
/// region suffix; they stay in `from`) and, from the first region, the heartbeat table; then
/// each subscriber `(region, harness port, DSN of the replication link as that database
/// reaches `from`)` subscribes.
pub async fn replicate(
    from: &str,
    from_port: u16,
    subscribers: &[(String, u16, String)],
    with_heartbeat: bool,
    unpublished: &[String],
) -> Result<(), PgError> {
    let publisher = connect(from_port, Duration::from_secs(3)).await?;
    let mut tables: Vec<String> = region_tables(from)
        .into_iter()
        .filter(|t| !unpublished.iter().any(|u| *t == format!("{u}_{from}")))
        .collect();
    if with_heartbeat {
        tables.push("regiondrill_heartbeat".into());
    }
    let create = format!(
        "CREATE PUBLICATION rd_pub_{from} FOR TABLE {}",
        tables.join(", ")
    );
    execute(&publisher, &create).await?;
    for (to, to_port, from_dsn_inside) in subscribers {
        let subscriber = connect(*to_port, Duration::from_secs(3)).await?;
        // No initial copy: every table is empty when replication starts.
        let sub = subscription_name(from, to);
        let create = format!(
            "CREATE SUBSCRIPTION {sub} CONNECTION '{from_dsn_inside}' PUBLICATION rd_pub_{from} WITH (copy_data = false)"
        );
        execute(&subscriber, &create).await?;
    }
    Ok(())
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

/// The shell script that makes a deposed primary's data directory a standby of the server
/// at `source` (host, port as the node reaches it): `pg_rewind` to the point where the
/// timelines forked; when that fails (no `wal_log_hints` nor checksums, WAL gone, …) a fresh
/// copy with `pg_basebackup`. Then `standby.signal` and `primary_conninfo` pointing at
/// `source` (and never a switchover's read-only setting). Run by a backend on the stopped node's data (`$PGDATA`, as its user, with
/// PostgreSQL's programs on `PATH`); what it prints is read by [`RejoinOutput::parse`].
pub fn rejoin_script(source: &(String, u16)) -> String {
    let (host, port) = source;
    // A longer connect timeout than the drill's 2 s: a rejoin is an operator's step, not a
    // measurement, and a loaded host must not turn it into a re-clone.
    let src =
        format!("host={host} port={port} user={SUPERUSER} dbname=postgres connect_timeout=15");
    let conninfo = primary_conninfo(host, *port);
    format!(
        r#"set -u
# The node is down: its lock file is stale. Left there, the single-user crash recovery that
# pg_rewind runs first refuses to start when the dead server's PID is alive again (in a
# container it is PID 1, the helper's own shell).
rm -f "$PGDATA/postmaster.pid"
if out=$(pg_rewind --target-pgdata="$PGDATA" --source-server='{src}' --no-sync 2>&1); then
  echo "regiondrill-method: rewind"
  printf '%s\n' "$out" | sed 's/^/pg_rewind: /'
else
  echo "regiondrill-method: re-clone"
  printf '%s\n' "$out" | sed 's/^/pg_rewind: /'
  find "$PGDATA" -mindepth 1 -delete
  if ! out=$(PGCONNECT_TIMEOUT=15 pg_basebackup -h {host} -p {port} -U {SUPERUSER} -D "$PGDATA" -X stream -c fast --no-sync 2>&1); then
    printf '%s\n' "$out" | sed 's/^/pg_basebackup: /'
    exit 1
  fi
fi
touch "$PGDATA/standby.signal"
printf '%s' "{conninfo}" >> "$PGDATA/postgresql.auto.conf"
echo "default_transaction_read_only = off" >> "$PGDATA/postgresql.auto.conf"
"#
    )
}

/// What [`rejoin_script`] printed, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejoinOutput {
    /// Rewound (true) or re-cloned (false).
    pub rewound: bool,
    /// Why it was re-cloned: `pg_rewind`'s own last words (its `error:`/`fatal:` lines).
    pub why: Option<String>,
    /// Where the timelines forked, as `pg_rewind` said ("servers diverged at WAL location
    /// … on timeline …"), when it did.
    pub fork: Option<String>,
}

impl RejoinOutput {
    /// Reads the script's output; None when it does not say which method it used.
    pub fn parse(output: &str) -> Option<RejoinOutput> {
        let method = output
            .lines()
            .find_map(|l| l.strip_prefix("regiondrill-method: "))?;
        let rewind: Vec<&str> = output
            .lines()
            .filter_map(|l| l.strip_prefix("pg_rewind: "))
            .collect();
        let fork = rewind.iter().find_map(|l| {
            l.split_once("servers diverged at ")
                .map(|(_, r)| r.trim().to_string())
        });
        let rewound = method.trim() == "rewind";
        let why = (!rewound).then(|| {
            let errors: Vec<&str> = rewind
                .iter()
                .map(|l| l.trim())
                .filter(|l| l.contains("error:") || l.contains("fatal:"))
                .collect();
            let lines = if errors.is_empty() {
                rewind.clone()
            } else {
                errors
            };
            lines
                .iter()
                .map(|l| l.trim_start_matches("pg_rewind: "))
                .collect::<Vec<_>>()
                .join("; ")
        });
        Some(RejoinOutput { rewound, why, fork })
    }
}

/// One query's rows, naming the statement in the error.
pub async fn query(
    c: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<tokio_postgres::Row>, PgError> {
    query_with(c, sql, &[]).await
}

/// [`query`] with parameters.
pub async fn query_with(
    c: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, PgError> {
    c.query(sql, params).await.map_err(|e| PgError::Query {
        sql: sql.to_string(),
        error: e.to_string(),
    })
}

/// The timeline a primary commits on (read from its current WAL file's name); None on a
/// standby, or when it does not answer within `within`. What a manager's promotion moved
/// when it moved the primary: the new primary writes on the next timeline.
pub async fn primary_timeline(c: &tokio_postgres::Client, within: Duration) -> Option<u32> {
    let sql = "SELECT CASE WHEN pg_is_in_recovery() THEN 0 \
               ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";
    let row = tokio::time::timeout(within, c.query_one(sql, &[]))
        .await
        .ok()?
        .ok()?;
    let tl: i32 = row.get(0);
    (tl > 0).then_some(tl as u32)
}

/// [`primary_timeline`] of the server `dsn` reaches on a fresh connection (None: it cannot be
/// reached within `within`, or is a standby); what a manager's watcher asks its router or
/// its multi-host DSN after a promotion.
pub async fn primary_timeline_at(dsn: &str, within: Duration) -> Option<u32> {
    let c = connect_dsn(dsn, within).await.ok()?;
    primary_timeline(&c, within).await
}

/// Whether the server is a standby (`pg_is_in_recovery()`).
pub async fn in_recovery(c: &tokio_postgres::Client) -> Result<bool, PgError> {
    Ok(query(c, "SELECT pg_is_in_recovery()").await?[0].get(0))
}

/// The primary's current WAL position, in bytes.
pub async fn current_lsn(c: &tokio_postgres::Client) -> Result<i64, PgError> {
    let sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";
    Ok(query(c, sql).await?[0].get(0))
}

/// The standby named `standby` as the primary sees it: (state, replayed position in bytes).
pub async fn standby_state(
    c: &tokio_postgres::Client,
    standby: &str,
) -> Result<Option<(String, Option<i64>)>, PgError> {
    let sql = "SELECT state, pg_wal_lsn_diff(replay_lsn, '0/0')::bigint FROM pg_stat_replication \
               WHERE application_name = $1";
    let rows = query_with(c, sql, &[&standby]).await?;
    Ok(rows
        .first()
        .map(|r| (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1))))
}

/// Waits until the standby `standby` streams from the primary on `port` and has replayed
/// `lsn` (bytes; None: whatever the primary had written when it first streamed). Returns
/// when it first streamed.
pub async fn wait_caught_up(
    port: u16,
    standby: &str,
    lsn: Option<i64>,
    within: Duration,
) -> Result<(), PgError> {
    let c = connect(port, Duration::from_secs(2)).await?;
    let deadline = tokio::time::Instant::now() + within;
    let mut target = lsn;
    loop {
        if let Some((state, replayed)) = standby_state(&c, standby).await?
            && state == "streaming"
        {
            let want = match target {
                Some(t) => t,
                None => {
                    let t = current_lsn(&c).await?;
                    target = Some(t);
                    t
                }
            };
            if replayed.is_some_and(|r| r >= want) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(PgError::Timeout(format!(
                "standby {standby} not streaming and caught up after {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Makes every new transaction on the server read-only (`default_transaction_read_only`,
/// reloaded): writes are refused from the next transaction on, reads go on.
pub async fn set_read_only(c: &tokio_postgres::Client, on: bool) -> Result<(), PgError> {
    let value = if on { "on" } else { "off" };
    execute(
        c,
        &format!("ALTER SYSTEM SET default_transaction_read_only = {value}"),
    )
    .await?;
    execute(c, "SELECT pg_reload_conf()").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_dsn_names_every_host_in_order_and_asks_for_writes() {
        let dsn = multi_host_dsn(&[("127.0.0.1".into(), 5001), ("127.0.0.2".into(), 5002)]);
        let c: tokio_postgres::Config = dsn.parse().unwrap();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(hosts, ["127.0.0.1", "127.0.0.2"]);
        assert_eq!(c.get_ports(), [5001, 5002]);
        assert_eq!(
            c.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
    }

    #[test]
    fn a_rejoin_says_how_it_went() {
        let rewound = "regiondrill-method: rewind\npg_rewind: pg_rewind: servers diverged at WAL location 0/3000100 on timeline 1\npg_rewind: pg_rewind: Done!\n";
        assert_eq!(
            RejoinOutput::parse(rewound),
            Some(RejoinOutput {
                rewound: true,
                why: None,
                fork: Some("WAL location 0/3000100 on timeline 1".into()),
            })
        );
        let recloned = "regiondrill-method: re-clone\npg_rewind: pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\"\n";
        let out = RejoinOutput::parse(recloned).unwrap();
        assert!(!out.rewound);
        assert_eq!(
            out.why.as_deref(),
            Some(
                "error: target server needs to use either data checksums or \"wal_log_hints = on\""
            )
        );
        assert_eq!(RejoinOutput::parse("sh: 1: pg_rewind: not found\n"), None);
        let script = rejoin_script(&("rd-x-proxy".into(), 10_001));
        assert!(
            script.contains("--source-server='host=rd-x-proxy port=10001"),
            "{script}"
        );
        assert!(
            script.contains("pg_basebackup -h rd-x-proxy -p 10001"),
            "{script}"
        );
        assert!(script.contains("standby.signal"), "{script}");
    }
}
