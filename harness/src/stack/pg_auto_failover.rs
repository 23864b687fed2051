//! pg_auto_failover's monitor as the stack talks to it: when it is ready, the settings the
//! experiment gives it (its `pgautofailover.*` GUCs, reloaded: they are all `sighup`), and its
//! view of the nodes, which the failover watcher (`crate::failover::pg_auto_failover`) reads.
//! Everything here is SQL on the monitor's own database, as `pg_autoctl show state` does.

use crate::ha::PgAutoFailover;
use crate::postgres::{PgError, SUPERUSER};
use std::time::Duration;

/// The monitor's database.
pub const DATABASE: &str = "pg_auto_failover";

/// The `application_name` of the second node's walreceiver: pg_auto_failover names a
/// standby `pgautofailover_standby_<node id>`, and the plan starts the other region's keeper
/// after the first one has registered (node 1).
pub const SECOND_STANDBY: &str = "pgautofailover_standby_2";

/// How long the formation may take to reach primary + secondary (the second keeper clones
/// the first with `pg_basebackup`, which waits for a checkpoint).
const FORMED_WITHIN: Duration = Duration::from_secs(60);

/// The monitor's database on `127.0.0.1:port`, connected within `timeout`.
pub async fn connect(port: u16, timeout: Duration) -> Result<tokio_postgres::Client, PgError> {
    let dsn =
        format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname={DATABASE} connect_timeout=2");
    crate::postgres::connect_dsn(&dsn, timeout).await
}

/// Whether the monitor on `port` answers with its extension installed.
pub async fn monitor_ready(port: u16) -> bool {
    let Ok(c) = connect(port, Duration::from_millis(500)).await else {
        return false;
    };
    let sql = "SELECT 1 FROM pg_extension WHERE extname = 'pgautofailover'";
    crate::postgres::query(&c, sql)
        .await
        .is_ok_and(|rows| !rows.is_empty())
}

/// The monitor's GUCs for `settings`, by their own names.
pub fn gucs(settings: &PgAutoFailover) -> Vec<(&'static str, String)> {
    let s = settings;
    vec![
        ("health_check_period", s.health_check_period.to_string()),
        ("health_check_timeout", s.health_check_timeout.to_string()),
        (
            "health_check_max_retries",
            s.health_check_max_retries.to_string(),
        ),
        (
            "health_check_retry_delay",
            s.health_check_retry_delay.to_string(),
        ),
        (
            "node_considered_unhealthy_timeout",
            s.node_considered_unhealthy_timeout.to_string(),
        ),
        (
            "primary_demote_timeout",
            s.primary_demote_timeout.to_string(),
        ),
        (
            "promote_wal_log_threshold",
            s.promote_wal_log_threshold.to_string(),
        ),
        ("startup_grace_period", s.startup_grace_period.to_string()),
    ]
}

/// One node as the monitor has it (`pgautofailover.node`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// Node name (its region).
    pub name: String,
    /// The state its keeper last reported (`primary`, `secondary`, `wait_primary`, …).
    pub reported: String,
    /// The state the monitor assigned it.
    pub goal: String,
    /// The monitor's health check: 1 good, 0 bad, -1 unknown.
    pub health: i32,
    /// The WAL position its keeper last reported, in bytes.
    pub lsn: i64,
    /// Its candidate priority (0: never promoted).
    pub candidate_priority: i32,
}

/// Every node of the formation, and the description of the monitor's latest event.
pub async fn view(c: &tokio_postgres::Client) -> Result<(Vec<NodeState>, Option<String>), PgError> {
    let sql = "SELECT nodename, reportedstate::text, goalstate::text, health, \
               pg_wal_lsn_diff(reportedlsn, '0/0')::bigint, candidatepriority \
               FROM pgautofailover.node ORDER BY nodeid";
    let nodes = crate::postgres::query(c, sql)
        .await?
        .iter()
        .map(|r| NodeState {
            name: r.get(0),
            reported: r.get(1),
            goal: r.get(2),
            health: r.get(3),
            lsn: r.get(4),
            candidate_priority: r.get(5),
        })
        .collect();
    let sql = "SELECT description FROM pgautofailover.event ORDER BY eventid DESC LIMIT 1";
    let last = crate::postgres::query(c, sql)
        .await?
        .first()
        .and_then(|r| r.get(0));
    Ok((nodes, last))
}

/// The set-up once every node answers: the monitor's settings (reloaded), the formation's
/// `number_sync_standbys`, each database named for the app's `committed_by` (`regiondrill.node`
/// by `ALTER SYSTEM`, which a standby accepts too: the cloned node's configuration files are
/// its primary's), then the wait until the monitor has the first region's node `primary` and
/// every other `secondary`.
pub async fn set_up(
    settings: &PgAutoFailover,
    monitor_port: u16,
    dbs: &[(String, u16)],
) -> Result<(), PgError> {
    let c = connect(monitor_port, Duration::from_secs(3)).await?;
    for (name, value) in gucs(settings) {
        let sql = format!("ALTER SYSTEM SET pgautofailover.{name} = {value}");
        crate::postgres::execute(&c, &sql).await?;
    }
    crate::postgres::execute(&c, "SELECT pg_reload_conf()").await?;
    if settings.number_sync_standbys != 0 {
        let sql = format!(
            "SELECT pgautofailover.set_formation_number_sync_standbys('default', {})",
            settings.number_sync_standbys
        );
        crate::postgres::execute(&c, &sql).await?;
    }
    for (region, port) in dbs {
        let db = crate::postgres::connect(*port, Duration::from_secs(3)).await?;
        // PostgreSQL 15 refuses ALTER SYSTEM of a placeholder this session has not seen.
        let sql = format!("SET regiondrill.node = '{region}'");
        crate::postgres::execute(&db, &sql).await?;
        crate::postgres::execute(&db, &format!("ALTER SYSTEM {sql}")).await?;
        crate::postgres::execute(&db, "SELECT pg_reload_conf()").await?;
    }
    let deadline = tokio::time::Instant::now() + FORMED_WITHIN;
    loop {
        let (nodes, last) = view(&c).await?;
        let formed = nodes.len() == dbs.len()
            && nodes.iter().all(|n| {
                let want = if Some(&n.name) == dbs.first().map(|d| &d.0) {
                    "primary"
                } else {
                    "secondary"
                };
                n.reported == want && n.goal == want
            });
        if formed {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let states: Vec<String> = nodes
                .iter()
                .map(|n| format!("{} {} → {}", n.name, n.reported, n.goal))
                .collect();
            return Err(PgError::Timeout(format!(
                "pg_auto_failover's formation not primary + secondary after {FORMED_WITHIN:?}: \
                 {}; last event: {}",
                states.join(", "),
                last.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
