//! The history: an append-only record of every operation clients invoked and what came back
//! (ok / fail / unknown), of what the harness and the system under test did (faults, failover
//! steps), and the probes' samples. It is the single source of truth for checkers, which are
//! pure functions of it.
//!
//! Every timestamp is in nanoseconds on the harness's one monotonic clock, counted from the
//! start of the run ([`Nanos`]). Regions are emulated on one host, so this clock is exact
//! "true time" for every region.
//!
//! Outcomes follow Jepsen: `fail` means the operation certainly did not take effect; `unknown`
//! means it may or may not have (a timeout after the request was sent, a dropped connection).
//! Lost-write accounting counts only `ok` writes, and says how many were `unknown`.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// Nanoseconds since the start of the run, on the harness's monotonic clock.
pub type Nanos = u64;

/// Converts nanoseconds to (fractional) milliseconds for reports.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `GET /kv/{key}`.
    Read,
    /// `PUT /kv/{key}`: writes a value that carries the operation's id as its write id.
    Write,
    /// `POST /counters/{key}/incr` by 1.
    Incr,
    /// `PUT /users/{id}/profile`: the user's personal data (see `crate::residency`); its key
    /// is `profile:{user}`.
    ProfileWrite,
    /// `GET /users/{id}/profile`.
    ProfileRead,
    /// `DELETE /users/{id}`: erasure of everything the user wrote and its profile.
    Erase,
}

impl OpKind {
    /// Whether this is an operation on a user's personal data (profile write or read,
    /// erasure), which only the residency and erasure checkers look at.
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            OpKind::ProfileWrite | OpKind::ProfileRead | OpKind::Erase
        )
    }
}

/// Where a read's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The region's Redis.
    Cache,
    /// The region's database (primary or replica).
    Db,
}

/// What came back for an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// Succeeded: the app acknowledged the write, or returned the read's value.
    Ok {
        /// Region of the app that served it.
        served_by: String,
        /// Writes: the version the app acknowledged. Reads: the version seen (None: key absent).
        version: Option<i64>,
        /// Reads: the write id of the value seen (None: key absent). Writes: own id.
        write_id: Option<u64>,
        /// Reads: cache or database.
        source: Option<Source>,
        /// Writes and increments: the region of the database that committed it (its
        /// `cluster_name`), so a write acknowledged by a deposed primary can be told apart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        committed_by: Option<String>,
        /// Increments: the counter's value the app reported after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<i64>,
        /// Writes (active-passive): the PostgreSQL timeline the write committed on, as the
        /// app reported it; the timeline checker brackets a failover with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeline: Option<u32>,
    },
    /// Certainly did not take effect (refused, rejected before it was executed).
    Fail {
        /// What the client saw.
        error: String,
    },
    /// May or may not have taken effect (timed out or cut off after it was sent).
    Unknown {
        /// What the client saw.
        error: String,
    },
}

impl Outcome {
    /// Whether the outcome is `ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
}

/// One operation: invoked by a simulated user, completed (or not) some time later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique within the run; a write's id is also its write id (the value it wrote).
    pub id: u64,
    /// The simulated user.
    pub user: u32,
    /// The user's home region.
    pub region: String,
    /// Where the user was when travelling (None: at home). A travelling user calls the app
    /// of the region it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Read, write or increment.
    pub kind: OpKind,
    /// The key.
    pub key: String,
    /// When the client sent it.
    pub invoke_ns: Nanos,
    /// When the plan said to send it (None in histories written before it was recorded).
    /// `invoke_ns − planned_ns` is how late the open-loop generator was: a host too busy to
    /// keep the plan's time shows here first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_ns: Option<Nanos>,
    /// When the client saw the outcome.
    pub complete_ns: Nanos,
    /// What came back.
    pub outcome: Outcome,
}

impl Operation {
    /// Time from invoke to completion.
    pub fn latency_ns(&self) -> u64 {
        self.complete_ns.saturating_sub(self.invoke_ns)
    }
}

/// Something the harness or the system under test did, with when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at_ns: Nanos,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Kinds of [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The workload started issuing operations.
    WorkloadStarted,
    /// The workload stopped issuing operations (in-flight ones may still complete).
    WorkloadStopped,
    /// A scheduled fault took effect.
    FaultStarted {
        /// Index of the fault in the experiment's schedule.
        index: usize,
        /// Human description, e.g. "kill region us".
        fault: String,
        /// Whether this fault takes the primary down or cuts it off (kill of its node or
        /// region, or a partition of the failover controller's path to it).
        hits_primary: bool,
    },
    /// A scheduled fault was undone.
    FaultHealed {
        /// Index of the fault in the experiment's schedule.
        index: usize,
        /// Human description.
        fault: String,
    },
    /// The failover controller declared the primary region down (threshold misses reached).
    PrimaryDeclaredDown {
        /// The region whose primary was declared down.
        region: String,
    },
    /// The failover controller fenced the old primary.
    Fenced {
        /// The fenced primary's region.
        region: String,
    },
    /// The replica finished promotion and accepts writes.
    Promoted {
        /// The new primary's region.
        region: String,
        /// The region that was primary before, when the promotion was observed from outside
        /// (a target's own manager: no declaration names the primary it replaced).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Apps and the routing table point at the new primary (clients follow after the TTL).
    Rerouted {
        /// The new primary's region.
        region: String,
    },
    /// The failover controller could not complete a step.
    FailoverFailed {
        /// What went wrong.
        error: String,
    },
    /// A real HA manager did not fail over although the primary was gone, and why (read
    /// from the manager: e.g. its DCS unreachable, no candidate within its lag limit).
    FailoverRefused {
        /// The lost primary's region.
        region: String,
        /// The manager's reason.
        reason: String,
    },
    /// All faults were healed before the final state was read.
    Healed,
    /// A scheduled operation (`[[operations]]`: rejoin, switchover) began.
    OperationStarted {
        /// Index of the operation in the experiment's schedule.
        index: usize,
        /// Human description, e.g. "switchover to us (writes stopped)".
        operation: String,
    },
    /// A scheduled operation finished.
    OperationDone {
        /// Index of the operation in the experiment's schedule.
        index: usize,
    },
    /// A scheduled operation could not complete.
    OperationFailed {
        /// Index of the operation in the experiment's schedule.
        index: usize,
        /// What went wrong.
        error: String,
    },
    /// A deposed primary is being made a standby of the current primary.
    RejoinStarted {
        /// The deposed primary's region.
        region: String,
        /// The primary it will follow.
        primary: String,
    },
    /// The writes the deposed primary holds and the current primary lacks (committed on the
    /// old timeline after the fork), read from it before it was rewound or re-cloned.
    DivergentWrites {
        /// The deposed primary's region.
        region: String,
        /// The writes, by write id.
        writes: Vec<DivergentWrite>,
    },
    /// The deposed primary runs again, as a standby of the current primary.
    Rejoined {
        /// Its region.
        region: String,
        /// `rewind` (pg_rewind) or `re-clone` (pg_basebackup, after pg_rewind failed).
        method: String,
        /// Why it was re-cloned: pg_rewind's error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
        /// Where the timelines forked, as pg_rewind said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fork: Option<String>,
        /// How long the rewind (or the failed rewind and the re-clone) took, in ms.
        data_ms: f64,
    },
    /// The rejoined standby streams and has replayed everything the primary had written
    /// when it began streaming.
    CaughtUp {
        /// The standby's region.
        region: String,
    },
    /// A planned switchover began.
    SwitchoverStarted {
        /// The primary it moves away from.
        from: String,
        /// The standby it promotes.
        to: String,
        /// Whether writes are stopped (the primary made read-only) before the switch.
        stop_writes: bool,
    },
    /// The switchover's old primary refuses writes (read-only) and has no write
    /// transaction left in progress.
    WritesStopped {
        /// Its region.
        region: String,
    },
    /// The switchover's new primary accepts writes and apps and routing point at it.
    SwitchedOver {
        /// The old primary's region.
        from: String,
        /// The new primary's region.
        to: String,
    },
}

/// One write a deposed primary held that the new primary did not: enough to replay it
/// through the app (`PUT /kv/{key}` with its value and write id; a write already present is
/// refused with 409, so a replay is idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergentWrite {
    /// Its write id (the operation's id).
    pub write_id: u64,
    /// The key.
    pub key: String,
    /// The value written.
    pub value: String,
    /// The version it made on the old primary.
    pub version: i64,
    /// The user, when recorded.
    pub user: Option<i64>,
    /// The region of the app that served it.
    pub region: String,
    /// When the old primary committed it (its clock).
    pub committed_at: String,
}

/// One heartbeat: written on the primary, watched for on the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sequence number written.
    pub seq: u64,
    /// When the primary's commit returned to the probe.
    pub committed_ns: Nanos,
    /// When a poll of the replica first saw it (None: never, within the run).
    pub visible_ns: Option<Nanos>,
}

/// A sample of the primary's `pg_stat_replication` for the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStat {
    /// When it was sampled.
    pub at_ns: Nanos,
    /// Whether the replica had a walsender connection at all.
    pub connected: bool,
    /// PostgreSQL's `replay_lag`, in ms (None when PostgreSQL reports NULL: idle or unknown).
    pub replay_lag_ms: Option<f64>,
    /// `pg_current_wal_lsn() - replay_lsn`, in bytes.
    pub bytes_behind: Option<u64>,
}

/// What the replication probes saw of one further replica ([`Probes::other_replicas`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaProbes {
    /// The replica's region.
    pub replica: String,
    /// The primary's heartbeats, in sequence order, with when this replica first showed each.
    pub heartbeats: Vec<Heartbeat>,
    /// The primary's `pg_stat_replication` samples for this replica.
    pub replication: Vec<ReplicationStat>,
}

/// One in-region health check of a region's database: `SELECT 1` sent from inside that
/// region, straight to its own database (never through a cross-region link), so a partition
/// between the regions cannot fail it — only a database that is down, paused or not
/// answering can. Every region with a database is checked every 100 ms; a check gives up
/// after 250 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    /// When the check was sent.
    pub at_ns: Nanos,
    /// The region whose database was checked (from inside that region).
    pub region: String,
    /// Whether `SELECT 1` answered within 250 ms (false: it failed or timed out).
    pub ok: bool,
}

/// The harness host's health over one window of the run (see `probe::host`): whether it
/// could keep time while it emulated every region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// End of the window.
    pub at_ns: Nanos,
    /// The worst oversleep of a 10 ms sleep on the harness's runtime in the window.
    pub timer_lag_ns: u64,
    /// Share of the available CPU time used in the window, in [0, 1] (None: unreadable).
    pub cpu_busy: Option<f64>,
}

/// Everything the probes sampled during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probes {
    /// How often the replica was polled for heartbeats (bounds the lag measurement error).
    pub heartbeat_poll_ms: f64,
    /// Heartbeats, in sequence order, as seen on the first replica ([`Probes::lag_replica`]).
    pub heartbeats: Vec<Heartbeat>,
    /// `pg_stat_replication` samples of the first replica.
    pub replication: Vec<ReplicationStat>,
    /// The region whose database `heartbeats` and `replication` watched: the first other
    /// region with a database (None in `probes.json` written before it was recorded, and
    /// without a replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_replica: Option<String>,
    /// Every further replica (three regions and more), each watched the same way, in the
    /// experiment's region order: the same heartbeats, seen on that replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_replicas: Vec<ReplicaProbes>,
    /// In-region health checks of every region's database ([`HealthSample`]), in time
    /// order. Empty when the stack had no such probe (and in `probes.json` written before
    /// it existed): then a primary's health is "not measured", never made up.
    #[serde(default)]
    pub health: Vec<HealthSample>,
    /// The harness host's health, every 250 ms ([`HostSample`]). Empty in `probes.json`
    /// written before it existed.
    #[serde(default)]
    pub host: Vec<HostSample>,
    /// Where copies of each user whose erasure was requested were seen, poll after poll
    /// (`probe::erasure`; empty without planned erasures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erasure: Vec<ErasureTrace>,
    /// Personal-data tokens counted in the bytes crossing each link (`crate::residency`;
    /// None: not counted, e.g. a run without `[residency]` or an external Toxiproxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<Vec<LinkTokens>>,
}

/// The copies of one user's personal data the erasure probe saw, from the erasure's planned
/// time to the end of the run. Only changes are kept: each entry is the first poll that saw
/// a new set of copies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErasureTrace {
    /// The user.
    pub user: u32,
    /// The user's home region.
    pub home: String,
    /// Each change of what the polls saw, in time order.
    pub changes: Vec<CopiesSeen>,
    /// When the last poll was sent (the trace says nothing past it).
    pub last_poll_ns: Option<Nanos>,
    /// The longest any poll of this user took (from sending its reads to the last answer):
    /// a change is seen at most the poll interval plus about two polls' time late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_poll_ns: Option<Nanos>,
}

/// What one poll saw of a user's personal data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopiesSeen {
    /// When the poll's reads finished (a copy seen gone was gone by then).
    pub at_ns: Nanos,
    /// Where a copy was: `<region>-db <table>` or `<region>-cache <key>`.
    pub copies: Vec<String>,
    /// Stores that could not be read in this poll (a copy there is neither seen nor ruled
    /// out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

impl CopiesSeen {
    /// Whether this poll read every store and found no copy.
    pub fn clean(&self) -> bool {
        self.copies.is_empty() && self.unreadable.is_empty()
    }
}

/// Personal-data tokens one link carried from one region into another, per user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkTokens {
    /// The link's name.
    pub link: String,
    /// The region the bytes left.
    pub from: String,
    /// The region the bytes entered.
    pub to: String,
    /// Tokens counted, by user (a token seen twice counts twice).
    pub by_user: std::collections::BTreeMap<u32, u64>,
}

/// The state read after faults were healed and the system settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    /// Region of the primary the final state was read from (None: no primary was reachable).
    /// In active-active postures: the first region that could be read.
    pub primary_region: Option<String>,
    /// Write ids present in the final state (active-active: in any reachable region's
    /// write log).
    pub write_ids: Vec<u64>,
    /// What each reachable database holds, as the app would read it (active-active postures
    /// read both; active-passive only the primary).
    #[serde(default)]
    pub regions: std::collections::BTreeMap<String, RegionState>,
    /// Active-passive: the regions whose database answered as a primary (not in recovery).
    /// Empty in `final_state.json` written before it was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primaries: Vec<String>,
    /// Active-passive: the primary's standbys, as its `pg_stat_replication` showed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standbys: Vec<StandbyState>,
    /// Personal data found at rest after the run, in every database and cache of every
    /// region (`crate::residency::scan`; None: the run had no `[residency]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<AtRest>,
}

/// What the at-rest scan found: every personal-data token in every table of every database
/// (primary or replica) and every key of every cache, by region, and the policy it is judged
/// against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AtRest {
    /// Where each home region's users' personal data may be (the experiment's policy).
    pub allow: std::collections::BTreeMap<String, Vec<String>>,
    /// Each user's home region (every user the workload had).
    pub homes: std::collections::BTreeMap<u32, String>,
    /// The stores read (`us-db (primary)`, `eu-cache`, …).
    pub scanned: Vec<String>,
    /// Stores that could not be read, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Every (store, place, user) holding a token, with how many tokens.
    pub found: Vec<HeldCopy>,
}

/// Tokens of one user found in one place.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldCopy {
    /// The region of the store.
    pub region: String,
    /// `db` or `cache`.
    pub store: String,
    /// A table (`profiles`, `kv_us`, …) or a cache key (`profile:7`).
    pub place: String,
    /// The user whose token it is.
    pub user: u32,
    /// How many tokens (a row with the token in an email and a name counts 2).
    pub tokens: u32,
}

/// A standby as the primary saw it when the final state was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyState {
    /// Its region (its `application_name`).
    pub region: String,
    /// `state`, e.g. `streaming`.
    pub state: String,
    /// `sync_state`: `async` or `sync`.
    pub sync_state: String,
    /// Bytes of the primary's WAL, as of when the state was read, that the standby had not
    /// replayed (read on the standby, after waiting up to 5 s for it; None: unknown).
    pub bytes_behind: Option<i64>,
}

/// One database's final view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// For each key, the write id of the value a read returns.
    pub kv: std::collections::BTreeMap<String, u64>,
    /// For each counter, the value a read returns.
    pub counters: std::collections::BTreeMap<String, i64>,
}

/// A whole run's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Operations, in invoke order.
    pub ops: Vec<Operation>,
    /// Events, in time order.
    pub events: Vec<Event>,
}

/// One line of `history.jsonl`: an invocation, a completion, or an event, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// A client sent an operation.
    Invoke {
        /// Operation id.
        id: u64,
        /// When.
        at_ns: Nanos,
        /// User.
        user: u32,
        /// User's home region.
        region: String,
        /// Where a travelling user was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Read, write or increment.
        kind: OpKind,
        /// Key.
        key: String,
        /// When the plan said to send it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        planned_ns: Option<Nanos>,
    },
    /// A client saw an operation's outcome.
    Complete {
        /// Operation id.
        id: u64,
        /// When.
        at_ns: Nanos,
        /// What came back.
        outcome: Outcome,
    },
    /// An event.
    Event(Event),
}

impl History {
    /// Writes the history as JSON lines: invocations, completions and events merged in time
    /// order (an invocation before its completion when they share a timestamp).
    pub fn write_jsonl(&self, w: &mut impl Write) -> std::io::Result<()> {
        let mut lines: Vec<(Nanos, u8, Line)> =
            Vec::with_capacity(self.ops.len() * 2 + self.events.len());
        for op in &self.ops {
            lines.push((
                op.invoke_ns,
                0,
                Line::Invoke {
                    id: op.id,
                    at_ns: op.invoke_ns,
                    user: op.user,
                    region: op.region.clone(),
                    from: op.from.clone(),
                    kind: op.kind,
                    key: op.key.clone(),
                    planned_ns: op.planned_ns,
                },
            ));
            lines.push((
                op.complete_ns,
                1,
                Line::Complete {
                    id: op.id,
                    at_ns: op.complete_ns,
                    outcome: op.outcome.clone(),
                },
            ));
        }
        for e in &self.events {
            lines.push((e.at_ns, 2, Line::Event(e.clone())));
        }
        lines.sort_by_key(|(t, order, _)| (*t, *order));
        for (_, _, line) in lines {
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Reads a history written by [`History::write_jsonl`]. An invocation without a
    /// completion (a truncated file) becomes `unknown` at the last timestamp seen.
    pub fn read_jsonl(r: impl BufRead) -> Result<History, HistoryError> {
        let mut ops: Vec<Operation> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut events = Vec::new();
        let mut last = 0;
        for (n, line) in r.lines().enumerate() {
            let line = line.map_err(|e| HistoryError::Io(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&line).map_err(|e| HistoryError::Parse {
                line: n + 1,
                message: e.to_string(),
            })?;
            match parsed {
                Line::Invoke {
                    id,
                    at_ns,
                    user,
                    region,
                    from,
                    kind,
                    key,
                    planned_ns,
                } => {
                    last = last.max(at_ns);
                    index.insert(id, ops.len());
                    ops.push(Operation {
                        id,
                        user,
                        from,
                        region,
                        kind,
                        key,
                        invoke_ns: at_ns,
                        planned_ns,
                        complete_ns: u64::MAX,
                        outcome: Outcome::Unknown {
                            error: "no completion recorded".into(),
                        },
                    });
                }
                Line::Complete { id, at_ns, outcome } => {
                    last = last.max(at_ns);
                    let i = *index.get(&id).ok_or(HistoryError::Parse {
                        line: n + 1,
                        message: format!("completion of unknown operation {id}"),
                    })?;
                    ops[i].complete_ns = at_ns;
                    ops[i].outcome = outcome;
                }
                Line::Event(e) => {
                    last = last.max(e.at_ns);
                    events.push(e);
                }
            }
        }
        for op in ops.iter_mut().filter(|o| o.complete_ns == u64::MAX) {
            op.complete_ns = last;
        }
        Ok(History { ops, events })
    }

    /// Reads `history.jsonl` from a file.
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        let f = std::fs::File::open(path)
            .map_err(|e| HistoryError::Io(format!("{}: {e}", path.display())))?;
        History::read_jsonl(std::io::BufReader::new(f))
    }

    /// Events of one kind, by a predicate.
    pub fn events_where<'a>(
        &'a self,
        f: impl Fn(&EventKind) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| f(&e.kind))
    }
}

/// A history file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// I/O error.
    #[error("cannot read history: {0}")]
    Io(String),
    /// A line is not a history record.
    #[error("history line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Operation {
        Operation {
            from: None,
            id,
            user: 1,
            region: "us".into(),
            kind,
            key: "k".into(),
            invoke_ns: invoke,
            planned_ns: None,
            complete_ns: complete,
            outcome,
        }
    }

    #[test]
    fn jsonl_round_trips_and_orders_by_time() {
        let h = History {
            ops: vec![
                op(
                    1,
                    OpKind::Write,
                    10,
                    50,
                    Outcome::Ok {
                        timeline: None,
                        served_by: "us".into(),
                        version: Some(1),
                        write_id: Some(1),
                        source: None,
                        committed_by: None,
                        value: None,
                    },
                ),
                op(
                    2,
                    OpKind::Read,
                    20,
                    30,
                    Outcome::Fail {
                        error: "refused".into(),
                    },
                ),
                op(
                    3,
                    OpKind::Write,
                    25,
                    90,
                    Outcome::Unknown {
                        error: "timeout".into(),
                    },
                ),
            ],
            events: vec![Event {
                at_ns: 40,
                kind: EventKind::FaultStarted {
                    index: 0,
                    fault: "kill region us".into(),
                    hits_primary: true,
                },
            }],
        };
        let mut buf = Vec::new();
        h.write_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        let times: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["at_ns"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(History::read_jsonl(&buf[..]).unwrap(), h);
    }

    #[test]
    fn truncated_history_marks_open_operations_unknown() {
        let text = r#"{"type":"invoke","id":7,"at_ns":5,"user":1,"region":"eu","kind":"write","key":"k"}
{"type":"event","at_ns":9,"event":"workload_stopped"}
"#;
        let h = History::read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(h.ops[0].complete_ns, 9);
        assert!(matches!(h.ops[0].outcome, Outcome::Unknown { .. }));
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let err = History::read_jsonl("\n{\"type\":\"nope\"}\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("history line 2:"), "{err}");
    }
}
