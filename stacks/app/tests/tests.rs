//! Integration tests of the sample app: one binary, one module per area. Each test starts its
//! own PostgreSQL, Redis and app on 127.0.0.1 (guards kill them all on drop, panics included)
//! and checks the HTTP contract end to end; nothing is mocked.

/// Real servers behind drop guards, and an HTTP helper.
mod support;

/// Active-active postures (`lww`, `crdt`, `partitioned`): per-region tables, merged reads,
/// HLC, counters, home routing, `committed_by`, start-up errors.
mod active_active;
/// `/admin/db`: swapping the pools moves writes and reads.
mod admin;
/// Cache coherence modes (`invalidate`, `write-through`), TTL jitter, single-flight.
mod cache_modes;
/// Counters: increments, defaults, concurrent increments.
mod counters;
/// Faults: Redis killed, PostgreSQL killed and restarted, a COMMIT left unanswered.
mod faults;
/// `PUT`/`GET /kv`: versions, the `writes` log, the read-through cache, 404s, bad requests,
/// `migrate` and the command line.
mod kv;
/// Erasure: rows and cache entries of one user go, others stay.
mod users;
