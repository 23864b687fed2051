//! The real HA managers an experiment can drill instead of the built-in controller, as data:
//! their own settings under their own names. It sits below both the experiment (which
//! validates it from the file) and the stack (whose plan runs it), so neither imports the
//! other.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The failover manager an experiment drills.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Manager {
    /// regiondrill's own controller (`crate::failover::builtin`), with `interval`,
    /// `threshold` and `fencing`.
    #[default]
    Builtin,
    /// Patroni with etcd as its DCS, HAProxy per region routing on Patroni's REST checks.
    Patroni(Patroni),
    /// pg_auto_failover: a monitor and a keeper per data region; clients reach the primary
    /// with a libpq multi-host DSN.
    PgAutoFailover(PgAutoFailover),
}

impl Manager {
    /// Its name in experiment files and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Manager::Builtin => "builtin",
            Manager::Patroni(_) => "patroni",
            Manager::PgAutoFailover(_) => "pg_auto_failover",
        }
    }
}

/// Where a manager's own state lives (Patroni's DCS, pg_auto_failover's monitor): a data
/// region, which it then shares the fate of, or a witness location holding only that, reached
/// from every data region through its own links with their own round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `us`, `eu`, or [`crate::stack::topology::WITNESS_REGION`].
    pub region: String,
    /// The round trip on the links between each data region and the witness (unused when
    /// the DCS sits in a data region: it is then reached directly in its own region and
    /// across the region links' RTT from the other).
    #[serde(with = "humantime_serde")]
    pub witness_rtt: Duration,
}

/// A Patroni deployment: Patroni's own settings under their own names and defaults (whole
/// seconds and bytes, as Patroni reads them), where etcd runs, and HAProxy's checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patroni {
    /// `ttl`: seconds the leader key lives without renewal (Patroni: ≥ 20, default 30).
    pub ttl: u32,
    /// `loop_wait`: seconds between HA loops (default 10).
    pub loop_wait: u32,
    /// `retry_timeout`: seconds DCS and PostgreSQL operations are retried (default 10).
    pub retry_timeout: u32,
    /// `maximum_lag_on_failover`: bytes a replica may be behind the leader's last reported
    /// position and still be promoted (default 1048576).
    pub maximum_lag_on_failover: u64,
    /// `synchronous_mode`: the leader names a synchronous standby (default false).
    pub synchronous_mode: bool,
    /// `synchronous_mode_strict`: commits wait even when no standby is there (default false).
    pub synchronous_mode_strict: bool,
    /// `use_pg_rewind`: a former leader rejoins by pg_rewind (default false).
    pub use_pg_rewind: bool,
    /// `failsafe_mode`: the leader keeps its role when the DCS is unreachable but every
    /// member answers it (default false).
    pub failsafe_mode: bool,
    /// Where etcd (one member) runs.
    pub dcs: Placement,
    /// HAProxy's health checks of every database's Patroni REST `/primary`.
    pub haproxy: HaproxyChecks,
}

/// HAProxy's `default-server` check settings (Patroni's template's are `inter 3s fall 3
/// rise 2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyChecks {
    /// `inter`: time between checks of a server.
    #[serde(with = "humantime_serde")]
    pub inter: Duration,
    /// `fall`: consecutive failed checks that mark a server down.
    pub fall: u32,
    /// `rise`: consecutive passed checks that mark it up.
    pub rise: u32,
}

/// A pg_auto_failover 2.0 deployment: the monitor's own settings (its `pgautofailover.*`
/// GUCs, in milliseconds and bytes as it reads them, defaults read from the installed
/// extension's `pg_settings`), the formation's and the keepers' settings, and where the
/// monitor runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgAutoFailover {
    /// `pgautofailover.health_check_period`: ms between the monitor's health checks of each
    /// node (default 5000).
    pub health_check_period: u32,
    /// `pgautofailover.health_check_timeout`: ms a health check's connection may take
    /// (default 5000).
    pub health_check_timeout: u32,
    /// `pgautofailover.health_check_max_retries`: failed attempts before a node's health is
    /// bad (1–100, default 2).
    pub health_check_max_retries: u32,
    /// `pgautofailover.health_check_retry_delay`: ms between those attempts (default 2000).
    pub health_check_retry_delay: u32,
    /// `pgautofailover.node_considered_unhealthy_timeout`: ms since a node's keeper last
    /// reported after which a node with bad health is unhealthy and failed over (default
    /// 20000).
    pub node_considered_unhealthy_timeout: u32,
    /// `pgautofailover.primary_demote_timeout`: ms the monitor waits for an unreachable old
    /// primary to demote itself before the new one takes writes (default 30000).
    pub primary_demote_timeout: u32,
    /// `pgautofailover.promote_wal_log_threshold`: bytes a secondary may be behind and still
    /// be promoted (default 16777216).
    pub promote_wal_log_threshold: u64,
    /// `pgautofailover.startup_grace_period`: ms after the monitor starts during which it
    /// fails nothing over (default 10000).
    pub startup_grace_period: u32,
    /// The formation's `number_sync_standbys` (default 0; with one standby, 0 is the only
    /// value the monitor accepts).
    pub number_sync_standbys: u32,
    /// Every node's `replication_quorum`: it counts in `synchronous_standby_names` (default
    /// true: commits wait for the standby while it is healthy).
    pub replication_quorum: bool,
    /// Every node's `candidate_priority` (0–100, default 50; 0: never promoted).
    pub candidate_priority: u32,
    /// Where the monitor runs.
    pub monitor: Placement,
}
