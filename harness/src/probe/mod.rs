//! Probes: what the harness samples during the run, beside the clients' operations.
//! - [`heartbeat`]: replication lag as the time from a write's commit on the primary to its
//!   visibility on the replica.
//! - [`replication_stat`]: PostgreSQL's own view (`pg_stat_replication`).
//!
//! Probes connect to the databases directly (not through links): they measure, they are not
//! part of the system under test.

pub mod heartbeat;
pub mod replication_stat;
