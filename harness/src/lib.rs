//! regiondrill: a chaos-testing harness for multi-region stacks.
//!
//! # Layout
//! - [`experiment`]: experiment files (TOML) → validated [`experiment::Experiment`].
//! - [`posture`]: how the regions are wired and what each posture promises.
//! - [`stack`]: the system under test — topology (regions, nodes, links) and backends.
//! - [`proxy`]: the fault proxy. A built-in server speaking Toxiproxy's HTTP API, one async
//!   client for it and for a real Toxiproxy, and [`proxy::Link`], the cross-region link faults.
//! - [`history`]: the append-only record of operations, events and probe samples.
//! - [`checker`]: pure functions of the history → findings.

pub mod checker;
pub mod experiment;
pub mod history;
pub mod posture;
pub mod proxy;
pub mod stack;
