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
}

impl Manager {
    /// Its name in experiment files and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Manager::Builtin => "builtin",
            Manager::Patroni(_) => "patroni",
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
