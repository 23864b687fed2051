//! regiondrill: a chaos-testing harness for multi-region stacks.
//!
//! # Layout
//! - [`experiment`]: experiment files (TOML) → validated [`experiment::Experiment`].
//! - [`posture`]: how the regions are wired and what each posture promises.
//! - [`stack`]: the system under test — topology (regions, nodes, links) and backends.
//! - [`proxy`]: the fault proxy. A built-in server speaking Toxiproxy's HTTP API, one async
//!   client for it and for a real Toxiproxy, and [`proxy::Link`], the cross-region link faults.
//! - [`history`]: the append-only record of operations, events and probe samples.
//! - [`fault`]: the faults, one file per kind, each with start and heal; [`schedule`] runs
//!   them on time.
//! - [`failover`]: the failover controller (part of the system under test).
//! - [`workload`]: the seeded operation plan and the simulated users that run it.
//! - [`probe`]: replication lag (heartbeat, `pg_stat_replication`) sampled during the run.
//! - [`record`]: the run's one clock and the recorder of operations and events.
//! - [`history`]: the append-only record of operations, events and probe samples.
//! - [`checker`]: pure functions of the history → findings, and the SLO verdict.
//! - [`final_state`]: what the databases hold after heal, for the checkers.
//! - [`run`]: one experiment end to end, and the run folder it writes.
//! - [`report`]: terminal, Markdown, HTML and JUnit reports, rendered from run folders.
//! - [`progress`]: progress bars (or plain lines) for long work.

pub mod checker;
pub mod experiment;
pub mod failover;
pub mod fault;
pub mod final_state;
pub mod history;
pub mod posture;
pub mod probe;
pub mod progress;
pub mod proxy;
pub mod record;
pub mod report;
pub mod run;
pub mod schedule;
pub mod stack;
pub mod workload;
