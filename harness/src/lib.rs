//! regiondrill: a chaos-testing harness for multi-region stacks.
//!
//! # Layout
//! - [`experiment`]: experiment files (TOML) → validated [`experiment::Experiment`].
//! - [`posture`]: how the regions are wired and what each posture promises.
//! - [`stack`]: the system under test — the plan (nodes, links), the one bring-up recipe,
//!   and the backends (native processes, Docker containers, a target someone else runs)
//!   behind one seam.
//! - [`target`]: target files — a running stack regiondrill drives without owning it — and
//!   what an experiment needs of one; [`hold`]: `regiondrill up`, which holds a stack of
//!   its own for drills through its target file.
//! - [`postgres`]: PostgreSQL as every part of the harness talks to it.
//! - [`app`]: the app's contract as the harness relies on it (command line, `/admin/db`,
//!   `/health`, final-state tables).
//! - [`proxy`]: the fault proxy. A built-in server speaking Toxiproxy's HTTP API, one async
//!   client for it and for a real Toxiproxy, and [`proxy::Link`], the cross-region link faults.
//! - [`ha`]: the real HA managers' settings (Patroni's, pg_auto_failover's), as data below
//!   the experiment and the stack.
//! - [`history`]: the append-only record of operations, events and probe samples.
//! - [`fault`]: the faults, one file per kind (its keys, their validation, start and heal),
//!   one registry; [`operation`]: planned operations after a failover (rejoin of the
//!   deposed primary, switchover), a sibling registry; [`schedule`] runs both on time.
//! - [`fields`]: the fields of experiment files and their checks, shared by [`experiment`]
//!   and every fault kind.
//! - [`failover`]: failover managers (part of the system under test) behind one seam; the
//!   built-in controller is the first; a target's own is observed.
//! - [`workload`]: the seeded operation plan and the simulated users that run it, over HTTP
//!   or, against a target without apps, over SQL.
//! - [`residency`]: personal data in the workload (per-user tokens, profiles, erasures), the
//!   at-rest scan, and the token counter the fault proxy uses in flight.
//! - [`probe`]: replication lag (heartbeat, `pg_stat_replication`) and in-region health,
//!   sampled during the run.
//! - [`record`]: the run's one clock and the recorder of operations and events.
//! - [`checker`]: pure functions of the history → findings, and the SLO verdict.
//! - [`final_state`]: what the databases hold after heal, for the checkers.
//! - [`run`]: one experiment end to end; [`run_folder`]: the folder it writes, which
//!   reports read.
//! - [`calibrate`]: the highest rate this machine and a stack sustain.
//! - [`contract`]: whether an app honours the HTTP contract the harness relies on.
//! - [`report`]: terminal, Markdown, HTML and JUnit reports, rendered from run folders;
//!   merging a sharded matrix's slices, comparing nights, the trend over nights.
//! - [`shard`]: which cells of a matrix each of N CI jobs runs, and the matrix's fingerprint.
//! - [`progress`]: progress bars (or plain lines) for long work.

pub mod app;
pub mod calibrate;
pub mod checker;
pub mod contract;
pub mod experiment;
pub mod failover;
pub mod fault;
pub mod fields;
pub mod final_state;
pub mod ha;
pub mod history;
pub mod hold;
pub mod operation;
pub mod postgres;
pub mod posture;
pub mod probe;
pub mod progress;
pub mod proxy;
pub mod record;
pub mod report;
pub mod residency;
pub mod run;
pub mod run_folder;
pub mod schedule;
pub mod shard;
pub mod stack;
pub mod target;
pub mod workload;
