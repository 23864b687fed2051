//! Integration tests: one binary, one module per area. Everything runs against real sockets on
//! 127.0.0.1; nothing is mocked.

/// Shared helpers: loopback echo and byte servers, timing.
mod support;

/// The `regiondrill` binary: exit codes, error messages, run folders, cleanup after Ctrl-C
/// and `kill -9`.
mod cli;
/// `regiondrill contract`: the sample app on real stacks honours its HTTP contract, and an
/// app that breaks it is told each break by name.
mod contract;
/// The Docker backend: known answers in containers, cleanup after runs, Ctrl-C and kill -9.
mod docker;
/// Real experiments on the native backend with answers known from physics.
mod experiments;
/// Failback: rejoin (rewind, or re-clone when the rewind fails), divergent writes, switchover
/// back — the shipped experiments, natively and in containers.
mod failback;
/// Honest under overload: false and failed failovers and a saturated host, said first.
mod honesty;
/// The Kubernetes example (stacks/k8s): its manifests against the Kubernetes schemas, its
/// target file against its manifests.
mod k8s;
/// The `link_flap` fault's task on real bytes through the fault proxy: down, up, heal.
mod link_flap;
/// Real HA managers (Patroni with etcd and HAProxy, pg_auto_failover) drilled with known
/// answers.
mod managers;
/// The nightly at scale: shards merged into the unsharded reports, regressions between
/// nights, the trend page.
mod nightly;
/// Active-active postures, cache coherence and split brain: each failure mode where the
/// posture allows it, and not where it prevents it.
mod postures;
/// The fault proxy's HTTP API, driven by client crates nobody here wrote (`toxiproxy_rust`,
/// `noxious-client`) and raw HTTP: shapes, status codes, error messages.
mod proxy_api;
/// Peer clients in other languages (toxiproxy-python) driving the fault proxy on real bytes.
mod proxy_peers;
/// Real bytes through the fault proxy's toxics: latency, black hole, down, reset, bandwidth,
/// limit, slicer, slow close, live toxic changes.
mod proxy_toxics;
/// Three regions: quorum commit's latency follows the nearest standby; a majority of vantage
/// points ignores a partial partition and still sees a lost region; nothing lost with three
/// regions where nothing is lost with two.
mod regions;
/// Data residency (at rest and in flight) and the right to erasure: the shipped experiments'
/// known answers.
mod residency;
/// Targets: a held stack drilled as someone else's (`up`, `run --target`, `down`), database-only
/// mode, dry runs, refusals and the allow-list.
mod targets;
/// The nightly CI workflow: linted, and consistent with the repository and the CLI.
mod workflow;

/// Reports.
mod reports;
