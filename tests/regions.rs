//! Three regions on real stacks, with answers known from physics: quorum commit waits for the
//! nearest standby only; a majority of vantage points ignores a partial partition and still
//! sees a lost region; what loses no write with two regions loses none with three.

use crate::support::{run_toml, shipped_shortened, three_region_loss_shortened};
use regiondrill::checker::ReplicationLag;
use regiondrill::history::{History, OpKind};
use regiondrill::run::RunOutput;

/// The median of `values` (the lower of the middle two) and how many there are.
fn median(mut values: Vec<f64>) -> (Option<f64>, usize) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    ((n > 0).then(|| values[(n - 1) / 2]), n)
}

/// Median latency (ms) of `region`'s successful writes invoked in `[from_s, to_s)`, and how
/// many there were.
fn write_p50(history: &History, region: &str, from_s: f64, to_s: f64) -> (Option<f64>, usize) {
    median(
        history
            .ops
            .iter()
            .filter(|o| o.region == region && o.kind == OpKind::Write && o.outcome.is_ok())
            .filter(|o| (from_s * 1e9..to_s * 1e9).contains(&(o.invoke_ns as f64)))
            .map(|o| o.latency_ns() as f64 / 1e6)
            .collect(),
    )
}

/// Median heartbeat lag (ms) of the heartbeats committed in `[from_s, to_s)`, and how many.
fn lag_p50(lag: &ReplicationLag, from_s: f64, to_s: f64) -> (Option<f64>, usize) {
    median(
        lag.series
            .iter()
            .filter(|p| (from_s * 1e3..to_s * 1e3).contains(&p.at_ms))
            .map(|p| p.lag_ms)
            .collect(),
    )
}

fn failovers(out: &RunOutput) -> (usize, usize) {
    let f = &out.findings.false_failovers;
    (f.failovers, f.count)
}

/// The region promoted (None: none).
fn promoted(out: &RunOutput) -> Option<String> {
    out.history.events.iter().find_map(|e| match &e.kind {
        regiondrill::history::EventKind::Promoted { region, .. } => Some(region.clone()),
        _ => None,
    })
}

/// Quorum commit across us (primary), eu (80 ms away) and ap (180 ms away), every user in us:
/// each `[[faults]]` appended.
fn quorum(faults: &str) -> String {
    format!(
        "posture = \"active-passive-quorum\"\nregions = [\"us\", \"eu\", \"ap\"]\n\
         duration = \"12s\"\nsettle = \"2s\"\n\
         [network.pairs]\nus-eu = \"80ms\"\nus-ap = \"180ms\"\neu-ap = \"220ms\"\n\
         [workload]\nusers = 20\nrate_per_s = 40\nread_fraction = 0.2\n\
         homes = {{ us = 1.0, eu = 0.0, ap = 0.0 }}\n\
         [failover]\nmode = \"auto\"\nwatch_from = [\"eu\", \"ap\"]\n{faults}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_commit_waits_for_the_nearest_standby_only() {
    // Both standbys down for 1.5 s only: a client that gives up leaves its backend waiting
    // for a standby, holding a connection, and a long stall exhausts max_connections.
    let faults = "[[faults]]\nkind = \"kill_node\"\nnode = \"eu-db\"\nat = \"4s\"\nheal_at = \"9.5s\"\n\
                  [[faults]]\nkind = \"kill_node\"\nnode = \"ap-db\"\nat = \"8s\"\nheal_at = \"9.5s\"\n";
    let (out, _dir) = run_toml("quorum", &quorum(faults), false).await;
    let h = &out.history;
    // Both standbys up: the near one (80 ms) answers first. The app's own work on top is a
    // few ms (one local round trip to PostgreSQL before COMMIT, Redis, HTTP).
    let (both, n) = write_p50(h, "us", 0.5, 4.0);
    let both = both.expect("writes before the fault");
    assert!(n >= 50, "{n} writes");
    assert!(
        (80.0..100.0).contains(&both),
        "quorum with eu at 80 ms and ap at 180 ms: p50 {both:.1} ms should follow 80 ms"
    );
    // eu-db dead: only ap (180 ms) can answer.
    let (far, n) = write_p50(h, "us", 4.5, 8.0);
    let far = far.expect("writes with eu-db down");
    assert!(n >= 40, "{n} writes");
    assert!(
        (180.0..205.0).contains(&far),
        "the near standby lost: p50 {far:.1} ms should follow ap's 180 ms"
    );
    // Both dead: no commit is acknowledged until they are back at 9.5 s.
    let blocked = h
        .ops
        .iter()
        .filter(|o| o.region == "us" && o.kind == OpKind::Write && o.outcome.is_ok())
        .filter(|o| (8.2e9..9.3e9).contains(&(o.invoke_ns as f64)))
        .filter(|o| o.complete_ns < 9_500_000_000)
        .count();
    assert_eq!(blocked, 0, "a commit acknowledged with no standby alive");
    // The primary never failed: nothing failed over and nothing acknowledged was lost.
    assert_eq!(failovers(&out), (0, 0));
    assert!(out.findings.lost_writes.checked);
    assert_eq!(out.findings.lost_writes.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_of_vantage_points_ignores_a_partial_partition_and_one_alone_does_not() {
    // The shipped files, the cut 2-7 s of a 9 s run instead of 4-11 s of 14 s.
    let shorter = [
        ("duration = \"14s\"", "duration = \"9s\""),
        ("settle = \"3s\"", "settle = \"2s\""),
        ("at = \"4s\"", "at = \"2s\""),
        ("heal_at = \"11s\"", "heal_at = \"7s\""),
    ];
    let (witness, _d1) = run_toml(
        "witness",
        &shipped_shortened("experiments/three-region-witness-partition.toml", &shorter),
        false,
    )
    .await;
    assert_eq!(
        failovers(&witness),
        (0, 0),
        "eu, ap and the witness watch; a us–eu cut is seen by eu alone: {:?}",
        witness.findings.false_failovers
    );
    assert_eq!(witness.findings.split_brain.count, 0);
    assert_eq!(witness.findings.lost_writes.count, 0);
    // Replication lag to each replica, on the same heartbeats: before the cut each follows
    // its own link's one-way delay (us–eu 80 ms round trip: 40 ms; us–ap 180 ms: 90 ms) plus
    // the poll and the replay; during the cut eu sees nothing until the heal, while ap goes
    // on as before. The lag counts from the commit's return to the probe, which comes a
    // little after the WAL left: on a loaded host it may read up to a few ms under the delay.
    let eu = &witness.findings.replication_lag;
    assert_eq!(eu.replica.as_deref(), Some("eu"));
    let [ap] = eu.others.as_slice() else {
        panic!("one further replica: {:?}", eu.others)
    };
    assert_eq!(ap.replica.as_deref(), Some("ap"));
    for (lag, one_way, name) in [(eu, 40.0, "eu"), (ap, 90.0, "ap")] {
        let (p50, n) = lag_p50(lag, 0.3, 1.9);
        assert!(
            n > 10 && p50.is_some_and(|p| (one_way - 5.0..one_way + 30.0).contains(&p)),
            "lag to {name} before the cut: p50 {p50:?} over {n} heartbeats, one way {one_way} ms"
        );
    }
    let (cut_eu, _) = lag_p50(eu, 2.3, 6.5);
    let (cut_ap, n) = lag_p50(ap, 2.3, 6.5);
    assert!(
        cut_eu.is_some_and(|p| p > 1000.0),
        "eu cut off yet its lag p50 {cut_eu:?}"
    );
    assert!(
        n > 40 && cut_ap.is_some_and(|p| (85.0..120.0).contains(&p)),
        "ap's link untouched, yet its lag p50 during the cut {cut_ap:?} over {n}"
    );

    let (alone, _d2) = run_toml(
        "single-vantage",
        &shipped_shortened(
            "experiments/three-region-single-vantage-partition.toml",
            &shorter,
        ),
        false,
    )
    .await;
    assert_eq!(
        failovers(&alone),
        (1, 1),
        "watched from eu alone, the same cut looks like a lost us: {:?}",
        alone.findings.false_failovers
    );
    assert!(promoted(&alone).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_and_sync_lose_nothing_when_the_primarys_region_is_lost() {
    let (q, _d1) = run_toml("quorum-region-loss", &three_region_loss_shortened(), false).await;
    assert_eq!(failovers(&q), (1, 0), "{:?}", q.findings.false_failovers);
    assert!(matches!(promoted(&q).as_deref(), Some("eu" | "ap")));
    assert!(q.findings.lost_writes.checked);
    assert_eq!(
        q.findings.lost_writes.count, 0,
        "{:?}",
        q.findings.lost_writes.ids
    );

    // Sync to eu (the second region), ap asynchronous: still nothing acknowledged is lost.
    let sync = "posture = \"active-passive-sync\"\nregions = [\"us\", \"eu\", \"ap\"]\n\
                duration = \"8s\"\nsettle = \"2s\"\n\
                [network.pairs]\nus-eu = \"80ms\"\nus-ap = \"180ms\"\neu-ap = \"220ms\"\n\
                [workload]\nusers = 30\nrate_per_s = 60\n\
                [failover]\nmode = \"auto\"\nwatch_from = [\"eu\", \"ap\"]\n\
                [[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"3s\"\n";
    let (s, _d2) = run_toml("sync3", sync, false).await;
    assert_eq!(failovers(&s), (1, 0), "{:?}", s.findings.false_failovers);
    assert!(s.findings.lost_writes.checked);
    assert_eq!(
        s.findings.lost_writes.count, 0,
        "{:?}",
        s.findings.lost_writes.ids
    );
}

/// Active-active across us, eu and ap (each a primary, each region's tables replicated to the
/// other two), `ap` cut off from everyone 2-6 s: `posture` and the workload's `extra` keys.
fn active_active(posture: &str, extra: &str) -> String {
    format!(
        "posture = \"{posture}\"\nregions = [\"us\", \"eu\", \"ap\"]\nduration = \"9s\"\n\
         settle = \"2s\"\n[network.pairs]\nus-eu = \"80ms\"\nus-ap = \"180ms\"\neu-ap = \"220ms\"\n\
         [workload]\nusers = 30\nrate_per_s = 90\nhomes = {{ us = 0.4, eu = 0.3, ap = 0.3 }}\n\
         {extra}\n[failover]\nmode = \"manual\"\n\
         [[faults]]\nkind = \"partition\"\nisolate = \"ap\"\nat = \"2s\"\nheal_at = \"6s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_by_user_across_three_regions_loses_nothing_and_conflicts_nowhere() {
    // Each user's keys written only at home (travellers' writes sent home): nothing lost, no
    // key written in two regions, all three converge after the cut.
    let (part, _d1) = run_toml(
        "aa-part-3",
        &active_active("active-active-partitioned", "travel_fraction = 0.2"),
        false,
    )
    .await;
    let f = &part.findings;
    assert!(f.lost_writes.checked);
    assert_eq!(f.lost_writes.count, 0, "{:?}", f.lost_writes.ids);
    assert!(f.conflicts.checked);
    assert_eq!(f.conflicts.conflicting_keys, 0, "{:?}", f.conflicts.keys);
    assert_eq!(f.lww.diverged_keys, 0);
    // ap's users kept writing at home while it was cut off.
    let (during, n) = write_p50(&part.history, "ap", 2.5, 5.5);
    assert!(
        n > 20 && during.is_some_and(|p| p < 50.0),
        "{during:?} over {n}"
    );
}

/// In `just test-long` (two runs, about 25 s): the counters' known answer of two regions
/// holds with three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crdt_counters_across_three_regions_lose_no_increment_and_lww_registers_do() {
    // Shared counters: PN-counters (one component per region, summed) lose no increment
    // across the cut; last-write-wins registers do.
    let counters = "incr_fraction = 0.4\ncounters = 3";
    let (crdt, _d2) = run_toml(
        "aa-crdt-3",
        &active_active("active-active-crdt", counters),
        false,
    )
    .await;
    let c = &crdt.findings.counters;
    assert!(c.checked && c.acked > 80, "{c:?}");
    assert_eq!((c.lost, c.phantom), (0, 0), "{c:?}");
    assert_eq!(crdt.findings.lost_writes.count, 0);
    let (lww, _d3) = run_toml(
        "aa-lww-3",
        &active_active("active-active-lww", counters),
        false,
    )
    .await;
    let l = &lww.findings.counters;
    assert!(
        l.checked && l.lost > 0,
        "LWW registers across a cut yet nothing lost: {l:?}"
    );
    assert_eq!(
        lww.findings.lww.diverged_keys, 0,
        "the regions did not converge"
    );
}
