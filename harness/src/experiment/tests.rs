//! The experiment loader through its public API: the shipped files, defaults, ordering, and
//! one test per kind of bad input, each asserting the whole `file:line:column: field:
//! message` line (the line number is the point: it must be where the mistake is).

use super::*;
use crate::fault::{ClockSkew, KillNode, KillRegion, Latency, Partition, PauseNode};
use crate::posture::Posture;
use crate::stack::topology::{NodeId, Role};
use std::time::Duration;

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments")
}

fn ok(text: &str) -> Experiment {
    parse(text, Path::new("x.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The error line for `text`, as a user would see it.
fn err(text: &str) -> String {
    match parse(text, Path::new("x.toml")) {
        Ok(e) => panic!("accepted: {e:?}"),
        Err(e) => e.to_string(),
    }
}

const AP: &str = "posture = \"active-passive-async\"\nduration = \"20s\"\n";
const SINGLE: &str = "posture = \"single-region\"\nduration = \"20s\"\n";
const AA: &str = "posture = \"active-active-lww\"\nduration = \"20s\"\n";
const POSTURES: &str = "single-region, active-passive-async, active-passive-semi-sync, \
                        active-passive-sync, active-active-partitioned, active-active-lww, \
                        active-active-crdt, active-passive-quorum";
const AP_LINKS: &str = "replication, replication-to-us, us-app-to-eu-db, us-users-to-eu-app, us-monitor-to-eu-db, \
                        us-app-to-eu-cache, eu-app-to-us-db, eu-users-to-us-app, \
                        eu-monitor-to-us-db, eu-app-to-us-cache";
const AA_LINKS: &str = "replication, replication-to-us, us-app-to-eu-db, us-users-to-eu-app, \
                        us-monitor-to-eu-db, us-app-to-eu-cache, eu-app-to-us-db, \
                        eu-users-to-us-app, eu-monitor-to-us-db, eu-app-to-us-cache";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_shipped_experiment_loads() {
    let all = load_dir(&experiments_dir()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "aa-lww-clock-skew",
            "aa-lww-no-skew",
            "aa-partitioned-users-partition",
            "ap-async-failback-rewind-fails",
            "ap-async-failback",
            "ap-async-flapping-link",
            "ap-async-partition-then-region-loss",
            "ap-async-region-loss",
            "ap-semisync-region-loss",
            "ap-split-brain-fencing",
            "ap-split-brain",
            "ap-sync-failback",
            "ap-sync-partition-then-region-loss",
            "ap-sync-region-loss",
            "cache-invalidation",
            "cache-ttl-only",
            "crdt-counter-partition",
            "erasure-invalidate",
            "erasure-under-partition",
            "lww-counter-partition",
            "patroni-dcs-in-lost-region",
            "patroni-lag-refuses-failover",
            "patroni-region-loss",
            "patroni-sync-strict-partition",
            "pg-auto-failover-monitor-in-lost-region",
            "pg-auto-failover-region-loss",
            "residency-ap-async",
            "residency-pinned",
            "single-region-region-loss",
            "three-region-quorum-sync",
            "three-region-region-loss",
            "three-region-single-vantage-partition",
            "three-region-witness-partition",
        ]
    );
    // The region-loss drills all judge RTO and RPO, on the same 50 keys.
    let region_loss = [
        "ap-async-partition-then-region-loss",
        "ap-async-region-loss",
        "ap-semisync-region-loss",
        "ap-sync-partition-then-region-loss",
        "ap-sync-region-loss",
        "single-region-region-loss",
    ];
    for e in &all {
        assert!(!e.description.is_empty(), "{} has no description", e.name);
        // Three regions run half as many nodes again on the same two cores, at lower rates
        // (and quorum-sync's stall must not exhaust the primary's connections).
        let three = e.regions.len() == 3;
        assert_eq!(e.workload.users, if three { 30 } else { 40 }, "{}", e.name);
        assert!(
            e.workload.rate_per_s == 200.0 || three && e.workload.rate_per_s <= 90.0,
            "{}",
            e.name
        );
        if region_loss.contains(&e.name.as_str()) {
            assert!(e.slo.rto.is_some() && e.slo.rpo.is_some(), "{}", e.name);
            assert_eq!(e.workload.keys, 50, "{}", e.name);
        }
        // The whole set must run in a few minutes; Patroni's drills cannot be shorter than
        // its leader key's ttl (at least 20 s) and what follows it.
        let longest = if e.name.starts_with("patroni-") {
            s(36)
        } else if three {
            s(22)
        } else {
            s(20)
        };
        assert!(e.duration <= longest, "{}", e.name);
        for f in &e.faults {
            assert!(f.at < e.duration && f.heal_at.is_none_or(|h| h <= e.duration));
        }
    }
}

#[test]
fn the_single_region_loss_heals() {
    let e = load(&experiments_dir().join("single-region-region-loss.toml")).unwrap();
    assert_eq!(e.posture, Posture::SingleRegion);
    assert_eq!(e.failover.mode, FailoverMode::Manual);
    assert_eq!(e.duration, s(14));
    assert_eq!(
        e.faults,
        [ScheduledFault {
            at: s(4),
            heal_at: Some(s(9)),
            fault: FaultSpec::KillRegion(KillRegion {
                region: "us".into()
            }),
        }]
    );
    assert_eq!((e.slo.rto, e.slo.rpo), (Some(s(10)), Some(s(0))));
    assert!(e.source.ends_with("single-region-region-loss.toml"));
}

#[test]
fn the_partition_then_region_loss_is_scheduled_in_order() {
    let e = load(&experiments_dir().join("ap-async-partition-then-region-loss.toml")).unwrap();
    assert_eq!(e.posture, Posture::ActivePassiveAsync);
    assert_eq!(e.failover.mode, FailoverMode::Auto);
    assert_eq!((e.failover.interval, e.failover.threshold), (ms(500), 3));
    assert_eq!(
        e.faults,
        [
            ScheduledFault {
                at: s(3),
                heal_at: None,
                fault: FaultSpec::Partition(Partition {
                    links: LinkSelector::Named(vec!["replication".into()]),
                    mode: PartitionMode::BlackHole,
                    direction: CutDirection::Both,
                }),
            },
            ScheduledFault {
                at: s(8),
                heal_at: None,
                fault: FaultSpec::KillRegion(KillRegion {
                    region: "us".into()
                }),
            },
        ]
    );
    assert_eq!((e.slo.rto, e.slo.rpo), (Some(s(6)), Some(s(1))));
}

#[test]
fn the_flapping_link_blips_then_fails_over_falsely() {
    let e = load(&experiments_dir().join("ap-async-flapping-link.toml")).unwrap();
    assert_eq!(e.posture, Posture::ActivePassiveAsync);
    let f = &e.failover;
    assert_eq!(
        (f.mode, f.interval, f.threshold, f.fencing),
        (FailoverMode::Auto, ms(500), 3, false)
    );
    let flaps: Vec<&crate::fault::LinkFlap> = e
        .faults
        .iter()
        .map(|s| match &s.fault {
            FaultSpec::LinkFlap(flap) => flap,
            other => panic!("{other:?}"),
        })
        .collect();
    let monitor = LinkSelector::Named(vec!["eu-monitor-to-us-db".into()]);
    assert!(
        flaps
            .iter()
            .all(|f| f.links == monitor && f.mode == PartitionMode::BlackHole)
    );
    // A check hangs up to one interval: a down shorter than that costs at most two misses in
    // a row (threshold 3), and every up outlasts a check; the second down outlasts three.
    let (blip, outage) = (flaps[0], flaps[1]);
    assert!(blip.down <= f.interval && blip.up >= 2 * f.interval);
    assert!(outage.down > f.interval * (f.threshold + 1));
    assert_eq!(e.faults[0].heal_at, Some(s(8)));
    assert!(e.faults[1].at > s(8));
    assert_eq!(e.slo.max_false_failovers, Some(1));
    assert_eq!(e.slo.rpo, Some(s(1)));
}

#[test]
fn the_region_loss_postures_differ_only_in_posture_and_rpo() {
    let load = |n: &str| load(&experiments_dir().join(n)).unwrap();
    let a = load("ap-async-region-loss.toml");
    let semi = load("ap-semisync-region-loss.toml");
    let sync = load("ap-sync-region-loss.toml");
    assert_eq!(a.posture, Posture::ActivePassiveAsync);
    assert_eq!(semi.posture, Posture::ActivePassiveSemiSync);
    assert_eq!(sync.posture, Posture::ActivePassiveSync);
    for e in [&a, &semi, &sync] {
        assert_eq!(e.faults, a.faults);
        assert_eq!(e.failover, a.failover);
        assert_eq!(e.workload, a.workload);
        assert_eq!(e.slo.rto, Some(s(6)));
    }
    assert_eq!(a.slo.rpo, Some(s(1)));
    assert_eq!((semi.slo.rpo, sync.slo.rpo), (Some(s(0)), Some(s(0))));
}

#[test]
fn load_dir_skips_the_matrix_and_other_files() {
    let dir = std::env::temp_dir().join(format!("regiondrill-load-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b.toml"), AP).unwrap();
    std::fs::write(dir.join("a.toml"), SINGLE).unwrap();
    std::fs::write(dir.join("matrix.toml"), "not = an experiment").unwrap();
    std::fs::write(dir.join("notes.md"), "#").unwrap();
    let names: Vec<_> = load_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn defaults_are_filled_in() {
    let e = parse(AP, Path::new("dir/my-drill.toml")).unwrap();
    let expected = Experiment {
        residency: None,
        name: "my-drill".into(),
        description: String::new(),
        source: PathBuf::from("dir/my-drill.toml"),
        posture: Posture::ActivePassiveAsync,
        seed: 1,
        duration: s(20),
        settle: s(3),
        regions: vec!["us".into(), "eu".into()],
        network: Network {
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            pairs: Default::default(),
            pair_jitter: Default::default(),
        },
        workload: Workload {
            users: 40,
            rate_per_s: 200.0,
            read_fraction: 0.5,
            keys: 50,
            us_fraction: 0.5,
            homes: Vec::new(),
            op_timeout: s(2),
            travel_fraction: 0.0,
            incr_fraction: 0.0,
            counters: 1,
        },
        cache: Cache {
            ttl: s(1),
            mode: Default::default(),
            ttl_jitter: Duration::ZERO,
            single_flight: false,
        },
        failover: Failover {
            mode: FailoverMode::Auto,
            interval: ms(500),
            threshold: 3,
            dns_ttl: s(1),
            fencing: false,
            wal_log_hints: true,
            manager: Manager::Builtin,
            watch_from: Vec::new(),
        },
        faults: vec![],
        operations: vec![],
        slo: Slo::default(),
        scenario: None,
    };
    assert_eq!(e, expected);
    // With a single region there is nothing to fail over to.
    assert_eq!(ok(SINGLE).failover.mode, FailoverMode::Manual);
}

#[test]
fn every_key_is_read() {
    let e = ok(r#"
name = "n"
description = "d"
posture = "active-passive-sync"
seed = 9
duration = "1m"
settle = "1.5s"
[network]
rtt = "80ms"
jitter = "5ms"
[workload]
users = 3
rate_per_s = 12.5
read_fraction = 1
keys = 7
us_fraction = 0
op_timeout = "250ms"
travel_fraction = 0.25
incr_fraction = 0.1
counters = 4
[cache]
ttl = "2s"
mode = "write-through"
ttl_jitter = "2s"
single_flight = true
[failover]
mode = "manual"
interval = "1s"
threshold = 1
dns_ttl = "0s"
fencing = true
[slo]
rto = "30s"
rpo = "0s"
max_stale_read_rate = 0.25
"#);
    assert_eq!(
        (e.name.as_str(), e.description.as_str(), e.seed),
        ("n", "d", 9)
    );
    assert_eq!((e.duration, e.settle), (s(60), ms(1500)));
    assert_eq!((e.network.rtt, e.network.jitter), (ms(80), ms(5)));
    let w = &e.workload;
    assert_eq!((w.users, w.rate_per_s, w.read_fraction), (3, 12.5, 1.0));
    assert_eq!((w.keys, w.us_fraction, w.op_timeout), (7, 0.0, ms(250)));
    assert_eq!(
        (w.travel_fraction, w.incr_fraction, w.counters),
        (0.25, 0.1, 4)
    );
    assert_eq!(
        e.cache,
        Cache {
            ttl: s(2),
            mode: CacheMode::WriteThrough,
            ttl_jitter: s(2),
            single_flight: true,
        }
    );
    let f = &e.failover;
    assert_eq!(
        (f.mode, f.interval, f.threshold),
        (FailoverMode::Manual, s(1), 1)
    );
    assert_eq!((f.dns_ttl, f.fencing), (Duration::ZERO, true));
    assert_eq!(e.slo.rto, Some(s(30)));
    assert_eq!(e.slo.rpo, Some(Duration::ZERO));
    assert_eq!(e.slo.max_stale_read_rate, Some(0.25));
}

#[test]
fn faults_are_sorted_by_start_stably_and_mapped() {
    let e = ok(&format!(
        r#"{AP}
[[faults]]
kind = "kill_node"
node = "eu-cache"
at = "9s"

[[faults]]
kind = "latency"
between = ["eu", "us"]
rtt = "40ms"
jitter = "10ms"
at = "2s"
duration = "3s"

[[faults]]
kind = "partition"
links = ["eu-app-to-us-db", "eu-users-to-us-app"]
mode = "black_hole"
direction = "eu->us"
at = "9s"
heal_at = "12s"

[[faults]]
kind = "partition"
between = ["us", "eu"]
mode = "refuse"
at = "1s"
"#
    ));
    let got: Vec<_> = e.faults.iter().map(|f| (f.at, f.heal_at)).collect();
    assert_eq!(
        got,
        [
            (s(1), None),
            (s(2), Some(s(5))),
            (s(9), None),
            (s(9), Some(s(12)))
        ]
    );
    assert_eq!(
        e.faults[0].fault,
        FaultSpec::Partition(Partition {
            links: LinkSelector::Between("us".into(), "eu".into()),
            mode: PartitionMode::Refuse,
            direction: CutDirection::Both,
        })
    );
    assert_eq!(
        e.faults[1].fault,
        FaultSpec::Latency(Latency {
            links: LinkSelector::Between("eu".into(), "us".into()),
            rtt: ms(40),
            jitter: ms(10),
        })
    );
    // Same start: file order kept.
    assert_eq!(
        e.faults[2].fault,
        FaultSpec::KillNode(KillNode {
            node: NodeId::new("eu", Role::Cache)
        })
    );
    assert_eq!(
        e.faults[3].fault,
        FaultSpec::Partition(Partition {
            links: LinkSelector::Named(vec!["eu-app-to-us-db".into(), "eu-users-to-us-app".into()]),
            mode: PartitionMode::BlackHole,
            direction: CutDirection::OneWay {
                from: "eu".into(),
                to: "us".into()
            },
        })
    );
}

#[test]
fn single_region_keeps_the_links_users_cross() {
    let e = ok(&format!(
        "{SINGLE}[[faults]]\nkind = \"latency\"\nlinks = [\"eu-users-to-us-app\"]\nrtt = \"80ms\"\nat = \"1s\"\n\
         [[faults]]\nkind = \"partition\"\nbetween = [\"us\", \"eu\"]\nat = \"2s\"\n"
    ));
    assert_eq!(e.faults.len(), 2);
}

// ---- one test per kind of bad input ----

#[test]
fn syntax_error() {
    assert_eq!(
        err("posture = \"single-region\"\nduration = 20s\n"),
        "x.toml:2:12: duration: string values must be quoted, expected literal string"
    );
    assert_eq!(
        err("posture = \"single-region\"\n[workload\nusers = 1\n"),
        "x.toml:2:10: syntax: unclosed table, expected `]`"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        err(&format!("{AP}[workload]\nusers = \"many\"\n")),
        "x.toml:4:9: workload.users: invalid type: string \"many\", expected u32"
    );
    assert_eq!(
        err(&format!("{AP}settle = 3\n")),
        "x.toml:3:10: settle: invalid type: integer `3`, expected a duration in quotes, \
         such as \"80ms\", \"1.5s\" or \"2m\""
    );
}

#[test]
fn unknown_top_level_key() {
    let e = err(&format!("{AP}sede = 3\n"));
    assert!(
        e.starts_with("x.toml:3:1: sede: unknown field `sede`, expected one of `name`,"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_a_fault() {
    let e = err(&format!(
        "{AP}[[faults]]\nkind = \"kill_node\"\nnode = \"us-db\"\nat = \"1s\"\n\n\
         [[faults]]\nkind = \"kill_region\"\nregoin = \"us\"\n"
    ));
    assert!(
        e.starts_with(
            "x.toml:10:1: faults[1].regoin: unknown field `regoin`, expected one of `kind`,"
        ),
        "{e}"
    );
}

#[test]
fn key_of_another_fault_kind() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"partition\"\nlinks = [\"replication\"]\nregion = \"us\"\nat = \"1s\"\n"
        )),
        "x.toml:6:10: faults[0].region: not a key of a partition fault \
         (its keys: kind, at, heal_at, duration, links, between, isolate, mode, direction)"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        err(&format!("{AP}[workload]\nop_timeout = \"2 sekunden\"\n")),
        "x.toml:4:14: workload.op_timeout: invalid duration \"2 sekunden\" (unknown time unit \
         \"sekunden\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, \
         years (and few variations)); write e.g. \"80ms\", \"1.5s\" or \"2m\""
    );
    assert_eq!(
        err("posture = \"single-region\"\nduration = \"20\"\n"),
        "x.toml:2:12: duration: invalid duration \"20\" (time unit needed, for example 20sec \
         or 20ms); write e.g. \"80ms\", \"1.5s\" or \"2m\""
    );
}

#[test]
fn unknown_posture() {
    assert_eq!(
        err("duration = \"20s\"\nposture = \"active-active\"\n"),
        format!("x.toml:2:11: posture: unknown posture \"active-active\"; one of {POSTURES}")
    );
}

#[test]
fn unknown_fault_kind() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"disk_full\"\nat = \"1s\"\n"
        )),
        format!(
            "x.toml:4:8: faults[0].kind: unknown fault kind \"disk_full\"; one of {}",
            crate::fault::KINDS.join(", ")
        )
    );
    // The kinds as registered, in order (a new kind is added at the end).
    assert!(
        crate::fault::KINDS
            .join(", ")
            .starts_with("latency, partition, kill_node, kill_region, pause_node, clock_skew")
    );
}

#[test]
fn fault_starting_after_the_workload() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"20s\"\n"
        )),
        "x.toml:6:6: faults[0].at: starts at 20s, not before the end of the workload \
         (duration = 20s)"
    );
}

#[test]
fn heal_before_start() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"5s\"\nheal_at = \"2s\"\n"
        )),
        "x.toml:7:11: faults[0].heal_at: heals at 2s, not after it starts (at = 5s)"
    );
}

#[test]
fn heal_after_the_workload() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"15s\"\nduration = \"10s\"\n"
        )),
        "x.toml:7:12: faults[0].duration: heals at 25s, after the end of the workload \
         (duration = 20s); leave heal_at and duration out to let the fault last to the end"
    );
}

#[test]
fn both_heal_at_and_duration() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"5s\"\n\
             heal_at = \"8s\"\nduration = \"3s\"\n"
        )),
        "x.toml:8:12: faults[0].duration: give either heal_at or duration, not both"
    );
}

#[test]
fn unknown_link() {
    let e = err(&format!(
        "{AP}[[faults]]\nkind = \"partition\"\nlinks = [\"replication\", \"wal\"]\nat = \"1s\"\n"
    ));
    assert!(
        e.starts_with(
            "x.toml:5:25: faults[0].links[1]: unknown link \"wal\"; links in \
             active-passive-async: replication, replication-to-us, us-app-to-eu-db,"
        ),
        "{e}"
    );
}

#[test]
fn link_absent_from_single_region() {
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"partition\"\nlinks = [\"replication\"]\nat = \"1s\"\n"
        )),
        "x.toml:5:10: faults[0].links[0]: link \"replication\" does not exist in single-region \
         (there is no eu-db to replicate); links in single-region: eu-users-to-us-app"
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"latency\"\nrtt = \"5ms\"\nlinks = [\"us-app-to-eu-db\"]\nat = \"1s\"\n"
        )),
        "x.toml:6:10: faults[0].links[0]: link \"us-app-to-eu-db\" does not exist in \
         single-region (there is no eu-db); links in single-region: eu-users-to-us-app"
    );
}

#[test]
fn unknown_node() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_node\"\nnode = \"us-disk\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: unknown node \"us-disk\"; nodes in active-passive-async: \
         us-db, us-cache, us-app, eu-db, eu-cache, eu-app"
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"kill_node\"\nnode = \"eu-db\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: node \"eu-db\" does not exist in single-region; \
         nodes in single-region: us-db, us-cache, us-app"
    );
}

#[test]
fn kill_region_eu_in_single_region() {
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"kill_region\"\nregion = \"eu\"\nat = \"1s\"\n"
        )),
        "x.toml:5:10: faults[0].region: region \"eu\" has no nodes in single-region; \
         regions with nodes: us"
    );
}

#[test]
fn one_way_refuse() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"partition\"\nbetween = [\"us\", \"eu\"]\nmode = \"refuse\"\n\
             direction = \"us->eu\"\nat = \"1s\"\n"
        )),
        "x.toml:7:13: faults[0].direction: a one-way cut needs mode = \"black_hole\" \
         (a refused connection fails both ways)"
    );
}

#[test]
fn fraction_out_of_range() {
    assert_eq!(
        err(&format!(
            "{AP}\n[workload]\nusers = 10\nread_fraction = 1.5\n"
        )),
        "x.toml:6:17: workload.read_fraction: 1.5 is not in [0, 1]"
    );
    assert_eq!(
        err(&format!("{AP}[slo]\nmax_stale_read_rate = -0.1\n")),
        "x.toml:4:23: slo.max_stale_read_rate: -0.1 is not in [0, 1]"
    );
}

#[test]
fn auto_failover_with_a_single_region() {
    assert_eq!(
        err(&format!("{SINGLE}[failover]\nmode = \"auto\"\n")),
        "x.toml:4:8: failover.mode: single-region has no standby to fail over to; \
         use \"manual\" or leave mode out"
    );
}

#[test]
fn missing_duration() {
    assert_eq!(
        err("description = \"d\"\nposture = \"single-region\"\n"),
        "x.toml:1:1: duration: required: how long the workload runs, e.g. \"20s\""
    );
}

#[test]
fn missing_fault_key_points_at_its_header() {
    assert_eq!(
        err(&format!(
            "{AP}\n[[faults]]\nkind = \"latency\"\nlinks = [\"replication\"]\nat = \"1s\"\n"
        )),
        "x.toml:4:1: faults[0].rtt: required: the added round trip, e.g. \"80ms\""
    );
}

#[test]
fn the_first_problem_in_file_order_is_reported() {
    // The bad fault comes later in the file but is validated after the workload: it still
    // is not the one reported, and neither is the later bad key.
    assert_eq!(
        err(&format!(
            "{AP}[workload]\nkeys = 0\nus_fraction = 2\n[[faults]]\nkind = \"nope\"\nat = \"1s\"\n"
        )),
        "x.toml:4:8: workload.keys: must be at least 1"
    );
    // A bad posture is reported, not the fault that only looks wrong because of it.
    assert_eq!(
        err(
            "posture = \"x\"\nduration = \"5s\"\n[[faults]]\nkind = \"kill_region\"\nregion = \"eu\"\nat = \"1s\"\n"
        ),
        format!("x.toml:1:11: posture: unknown posture \"x\"; one of {POSTURES}")
    );
}

#[test]
fn unreadable_file() {
    let e = load(Path::new("/nonexistent/regiondrill/x.toml")).unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (0, 0, ""));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/regiondrill/x.toml: No such file"),
        "{e}"
    );
}

#[test]
fn error_parts_are_exposed() {
    let e = parse(
        "posture = \"x\"\nduration = \"5s\"\n",
        Path::new("d/e.toml"),
    )
    .unwrap_err();
    assert_eq!(e.file, Path::new("d/e.toml"));
    assert_eq!((e.line, e.column, e.field.as_str()), (1, 11, "posture"));
    assert!(e.message.starts_with("unknown posture"));
}

// ---- active-active postures, cache modes, counters, travellers, pause and clock skew ----

#[test]
fn active_active_postures_load_with_their_own_links() {
    for (name, posture) in [
        (
            "active-active-partitioned",
            Posture::ActiveActivePartitioned,
        ),
        ("active-active-lww", Posture::ActiveActiveLww),
        ("active-active-crdt", Posture::ActiveActiveCrdt),
    ] {
        let e = ok(&format!(
            "posture = \"{name}\"\nduration = \"20s\"\n[workload]\ntravel_fraction = 0.3\n\
             [cache]\nmode = \"invalidate\"\n[failover]\nmode = \"auto\"\nfencing = false\n\
             [[faults]]\nkind = \"partition\"\n\
             links = [\"replication\", \"replication-to-us\", \"us-app-to-eu-cache\"]\nat = \"1s\"\n"
        ));
        assert_eq!(e.posture, posture);
        assert_eq!(
            (e.failover.mode, e.failover.fencing),
            (FailoverMode::Auto, false)
        );
        assert_eq!(e.cache.mode, CacheMode::Invalidate);
        assert_eq!(e.workload.travel_fraction, 0.3);
        assert_eq!(
            e.faults[0].fault,
            FaultSpec::Partition(Partition {
                links: LinkSelector::Named(vec![
                    "replication".into(),
                    "replication-to-us".into(),
                    "us-app-to-eu-cache".into()
                ]),
                mode: PartitionMode::BlackHole,
                direction: CutDirection::Both,
            })
        );
    }
    // Failover defaults to auto there too (it moves users, it promotes nothing).
    assert_eq!(ok(AA).failover.mode, FailoverMode::Auto);
}

#[test]
fn new_keys_default() {
    let e = ok(&format!(
        "{AA}[cache]\nttl = \"3s\"\n[workload]\nusers = 2\n"
    ));
    assert_eq!(
        e.cache,
        Cache {
            ttl: s(3),
            mode: CacheMode::Ttl,
            ttl_jitter: Duration::ZERO,
            single_flight: false,
        }
    );
    let w = &e.workload;
    assert_eq!(
        (w.travel_fraction, w.incr_fraction, w.counters),
        (0.0, 0.0, 1)
    );
    // Counters and a zero travel fraction are fine in a single region.
    let w = ok(&format!(
        "{SINGLE}[workload]\ntravel_fraction = 0\nincr_fraction = 1\ncounters = 3\n"
    ))
    .workload;
    assert_eq!(
        (w.travel_fraction, w.incr_fraction, w.counters),
        (0.0, 1.0, 3)
    );
    assert_eq!(
        ok(&format!("{SINGLE}[cache]\nmode = \"ttl\"\n")).cache.mode,
        CacheMode::Ttl
    );
}

#[test]
fn pause_and_clock_skew_faults_are_mapped() {
    let e = ok(&format!(
        "{AA}[[faults]]\nkind = \"pause_node\"\nnode = \"eu-db\"\nat = \"1s\"\nduration = \"2s\"\n\
         [[faults]]\nkind = \"clock_skew\"\nnode = \"eu-app\"\noffset = \"-500ms\"\nat = \"2s\"\n\
         [[faults]]\nkind = \"clock_skew\"\nnode = \"us-app\"\noffset = \"+1.5s\"\nat = \"3s\"\nheal_at = \"9s\"\n\
         [[faults]]\nkind = \"clock_skew\"\nnode = \"us-app\"\noffset = \"250ms\"\nat = \"4s\"\n\
         [[faults]]\nkind = \"clock_skew\"\nnode = \"eu-app\"\noffset = \"-1h\"\nat = \"5s\"\n"
    ));
    assert_eq!(
        e.faults[0],
        ScheduledFault {
            at: s(1),
            heal_at: Some(s(3)),
            fault: FaultSpec::PauseNode(PauseNode {
                node: NodeId::new("eu", Role::Db)
            }),
        }
    );
    let skews: Vec<_> = e.faults[1..]
        .iter()
        .map(|f| match &f.fault {
            FaultSpec::ClockSkew(ClockSkew { node, offset_ms }) => {
                (node.to_string(), *offset_ms, f.heal_at)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        skews,
        [
            ("eu-app".to_string(), -500, None),
            ("us-app".to_string(), 1500, Some(s(9))),
            ("us-app".to_string(), 250, None),
            ("eu-app".to_string(), -3_600_000, None),
        ]
    );
    // Pausing and skewing work in a single region too, on its nodes.
    let e = ok(&format!(
        "{SINGLE}[[faults]]\nkind = \"pause_node\"\nnode = \"us-cache\"\nat = \"1s\"\n\
         [[faults]]\nkind = \"clock_skew\"\nnode = \"us-app\"\noffset = \"2s\"\nat = \"1s\"\n"
    ));
    assert_eq!(e.faults.len(), 2);
}

#[test]
fn unknown_cache_mode() {
    assert_eq!(
        err(&format!("{AP}[cache]\nmode = \"write_back\"\n")),
        "x.toml:4:8: cache.mode: unknown cache mode \"write_back\"; \
         one of ttl, invalidate, write-through"
    );
}

#[test]
fn cross_region_cache_mode_in_a_single_region() {
    assert_eq!(
        err(&format!("{SINGLE}[cache]\nmode = \"invalidate\"\n")),
        "x.toml:4:8: cache.mode: invalidate reaches the other region's cache, and \
         single-region has only us-cache; use \"ttl\" or leave mode out"
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[cache]\nttl = \"2s\"\nmode = \"write-through\"\n"
        )),
        "x.toml:5:8: cache.mode: write-through reaches the other region's cache, and \
         single-region has only us-cache; use \"ttl\" or leave mode out"
    );
}

#[test]
fn ttl_jitter_more_than_the_ttl() {
    assert_eq!(
        err(&format!(
            "{AP}[cache]\nttl = \"1s\"\nttl_jitter = \"1.5s\"\n"
        )),
        "x.toml:5:14: cache.ttl_jitter: 1s 500ms is more than the ttl (1s)"
    );
    // Against the default ttl (1s) too.
    assert_eq!(
        err(&format!("{AP}[cache]\nttl_jitter = \"2s\"\n")),
        "x.toml:4:14: cache.ttl_jitter: 2s is more than the ttl (1s)"
    );
    assert_eq!(
        err(&format!("{AP}[cache]\nttl_jitter = \"soon\"\n")),
        "x.toml:4:14: cache.ttl_jitter: invalid duration \"soon\" (expected number at 0); \
         write e.g. \"80ms\", \"1.5s\" or \"2m\""
    );
}

#[test]
fn single_flight_is_a_bool() {
    assert_eq!(
        err(&format!("{AP}[cache]\nsingle_flight = \"yes\"\n")),
        "x.toml:4:17: cache.single_flight: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn travellers_need_a_second_region() {
    assert_eq!(
        err(&format!("{SINGLE}[workload]\ntravel_fraction = 0.2\n")),
        "x.toml:4:19: workload.travel_fraction: travellers call the other region's app, and \
         single-region has only us-app; use 0 or leave travel_fraction out"
    );
    assert_eq!(
        err(&format!("{AP}[workload]\ntravel_fraction = 1.2\n")),
        "x.toml:4:19: workload.travel_fraction: 1.2 is not in [0, 1]"
    );
}

#[test]
fn bad_increments_and_counters() {
    assert_eq!(
        err(&format!("{AA}[workload]\nincr_fraction = -0.5\n")),
        "x.toml:4:17: workload.incr_fraction: -0.5 is not in [0, 1]"
    );
    assert_eq!(
        err(&format!(
            "{AA}[workload]\nincr_fraction = 0.5\ncounters = 0\n"
        )),
        "x.toml:5:12: workload.counters: must be at least 1"
    );
}

#[test]
fn fencing_in_active_active() {
    assert_eq!(
        err(&format!(
            "{AA}[failover]\nmode = \"auto\"\nfencing = true\n"
        )),
        "x.toml:5:11: failover.fencing: active-active-lww has nothing to fence: both regions \
         run a primary and failover promotes nothing (it moves users); set false or leave \
         fencing out"
    );
    // Manual failover does not make it right either.
    assert_eq!(
        err("posture = \"active-active-crdt\"\nduration = \"9s\"\n\
             [failover]\nfencing = true\nmode = \"manual\"\n"),
        "x.toml:4:11: failover.fencing: active-active-crdt has nothing to fence: both regions \
         run a primary and failover promotes nothing (it moves users); set false or leave \
         fencing out"
    );
    // Active-passive as before.
    assert!(
        ok(&format!("{AP}[failover]\nfencing = true\n"))
            .failover
            .fencing
    );
}

#[test]
fn reverse_replication_only_with_a_database_in_each_region() {
    // Active-passive has it too: a rejoined us standby streams from a promoted eu through it.
    assert!(
        parse(
            &format!(
                "{AP}[[faults]]\nkind = \"partition\"\nlinks = [\"replication-to-us\"]\nat = \"1s\"\n"
            ),
            Path::new("x.toml")
        )
        .is_ok()
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"partition\"\nlinks = [\"replication-to-us\"]\nat = \"1s\"\n"
        )),
        "x.toml:5:10: faults[0].links[0]: link \"replication-to-us\" does not exist in \
         single-region (there is no eu-db); links in single-region: eu-users-to-us-app"
    );
}

#[test]
fn cache_links_need_both_regions() {
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"partition\"\nlinks = [\"eu-app-to-us-cache\"]\nat = \"1s\"\n"
        )),
        "x.toml:5:10: faults[0].links[0]: link \"eu-app-to-us-cache\" does not exist in \
         single-region (there is no eu-app); links in single-region: eu-users-to-us-app"
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"partition\"\nlinks = [\"us-app-to-eu-cache\"]\nat = \"1s\"\n"
        )),
        "x.toml:5:10: faults[0].links[0]: link \"us-app-to-eu-cache\" does not exist in \
         single-region (there is no eu-cache); links in single-region: eu-users-to-us-app"
    );
}

#[test]
fn link_lists_follow_the_posture() {
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"partition\"\nlinks = [\"wal\"]\nat = \"1s\"\n"
        )),
        format!(
            "x.toml:5:10: faults[0].links[0]: unknown link \"wal\"; links in \
             active-passive-async: {AP_LINKS}"
        )
    );
    assert_eq!(
        err(&format!(
            "{AA}[[faults]]\nkind = \"latency\"\nrtt = \"5ms\"\nlinks = [\"wal\"]\nat = \"1s\"\n"
        )),
        format!(
            "x.toml:6:10: faults[0].links[0]: unknown link \"wal\"; links in \
             active-active-lww: {AA_LINKS}"
        )
    );
}

#[test]
fn pause_node_needs_an_existing_node() {
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"pause_node\"\nnode = \"eu-cache\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: node \"eu-cache\" does not exist in single-region; \
         nodes in single-region: us-db, us-cache, us-app"
    );
    assert_eq!(
        err(&format!(
            "{AA}\n[[faults]]\nkind = \"pause_node\"\nat = \"1s\"\n"
        )),
        "x.toml:4:1: faults[0].node: required: a node id such as \"us-db\""
    );
    assert_eq!(
        err(&format!(
            "{AA}[[faults]]\nkind = \"pause_node\"\nnode = \"us-db\"\noffset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:6:10: faults[0].offset: not a key of a pause_node fault \
         (its keys: kind, at, heal_at, duration, node)"
    );
}

#[test]
fn clock_skew_applies_to_apps() {
    assert_eq!(
        err(&format!(
            "{AA}[[faults]]\nkind = \"clock_skew\"\nnode = \"us-db\"\noffset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: \"us-db\" is not an app; clock skew applies to apps \
         (apps in active-active-lww: us-app, eu-app)"
    );
    assert_eq!(
        err(&format!(
            "{SINGLE}[[faults]]\nkind = \"clock_skew\"\nnode = \"eu-app\"\noffset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: node \"eu-app\" does not exist in single-region; \
         clock skew applies to apps (apps in single-region: us-app)"
    );
    assert_eq!(
        err(&format!(
            "{AA}[[faults]]\nkind = \"clock_skew\"\nnode = \"app\"\noffset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:5:8: faults[0].node: unknown node \"app\"; clock skew applies to apps \
         (apps in active-active-lww: us-app, eu-app)"
    );
    assert_eq!(
        err(&format!(
            "{AA}\n[[faults]]\nkind = \"clock_skew\"\noffset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:4:1: faults[0].node: required: the app whose clock is shifted, such as \"us-app\""
    );
    assert_eq!(
        err(&format!(
            "{AA}[[faults]]\nkind = \"clock_skew\"\nnode = \"us-app\"\nregion = \"us\"\n\
             offset = \"1s\"\nat = \"1s\"\n"
        )),
        "x.toml:6:10: faults[0].region: not a key of a clock_skew fault \
         (its keys: kind, at, heal_at, duration, node, offset)"
    );
}

#[test]
fn clock_skew_offset() {
    let skew = |offset: &str| {
        err(&format!(
            "{AA}[[faults]]\nkind = \"clock_skew\"\nnode = \"eu-app\"\nat = \"1s\"\noffset = {offset}\n"
        ))
    };
    assert_eq!(
        err(&format!(
            "{AA}\n[[faults]]\nkind = \"clock_skew\"\nnode = \"eu-app\"\nat = \"1s\"\n"
        )),
        "x.toml:4:1: faults[0].offset: required: how far the app's clock is shifted, \
         e.g. \"-500ms\" (behind) or \"+1.5s\" (ahead)"
    );
    assert_eq!(
        skew("\"-0s\""),
        "x.toml:7:10: faults[0].offset: must not be 0 (that is no skew); \
         e.g. \"-500ms\" (behind) or \"+1.5s\" (ahead)"
    );
    assert_eq!(
        skew("\"-1h1s\""),
        "x.toml:7:10: faults[0].offset: -1h 1s is more than 1h away; \
         a clock skew is at most 1h either way"
    );
    assert_eq!(
        skew("\"+2h\""),
        "x.toml:7:10: faults[0].offset: +2h is more than 1h away; \
         a clock skew is at most 1h either way"
    );
    assert_eq!(
        skew("\"--5ms\""),
        "x.toml:7:10: faults[0].offset: invalid offset \"--5ms\" (expected number at 0); \
         write e.g. \"-500ms\", \"+1.5s\" or \"250ms\""
    );
    assert_eq!(
        skew("\"1.5ms\""),
        "x.toml:7:10: faults[0].offset: \"1.5ms\" is not a whole number of milliseconds"
    );
    assert_eq!(
        skew("-500"),
        "x.toml:7:10: faults[0].offset: invalid type: integer `-500`, expected a signed \
         duration in quotes, such as \"-500ms\", \"+1.5s\" or \"250ms\""
    );
}

// ---- regressions: files users broke, each refused with file:line:col: field ----

#[test]
fn duration_10000h_is_refused_by_the_planned_operations_cap() {
    // Accepted, it brought a stack up and then aborted allocating 230 GB for its plan.
    assert_eq!(
        err("posture = \"active-passive-async\"\nduration = \"10000h\"\n"),
        "x.toml:2:12: duration: duration = \"10000h\" at 200/s (workload.rate_per_s, by \
         default) plans about 7200000000 operations, more than the 1000000 an experiment may \
         plan (every operation is recorded in memory); shorten the duration or lower the rate"
    );
    // A rate the default duration could not hold is the rate's fault.
    assert_eq!(
        err(&format!("{AP}[workload]\nrate_per_s = 1e9\n")),
        "x.toml:4:14: workload.rate_per_s: duration = \"20s\" at 1000000000/s \
         (workload.rate_per_s) plans about 20000000000 operations, more than the 1000000 an \
         experiment may plan (every operation is recorded in memory); shorten the duration or \
         lower the rate"
    );
    // The cap itself: 200/s × 83 min = 996 000 fits, × 84 min = 1 008 000 does not.
    let at_200 = |d: &str| format!("posture = \"single-region\"\nduration = \"{d}\"\n");
    assert_eq!(ok(&at_200("83m")).duration, s(83 * 60));
    assert!(
        err(&at_200("84m")).starts_with("x.toml:2:12: duration: duration = \"84m\" at 200/s"),
        "{}",
        err(&at_200("84m"))
    );
    assert!((MAX_PLANNED_OPS as f64) < 200.0 * 84.0 * 60.0);
}

#[test]
fn users_4294967295_is_refused_by_the_users_cap() {
    assert_eq!(
        err(&format!("{AP}[workload]\nusers = 4294967295\n")),
        "x.toml:4:9: workload.users: 4294967295 users is more than the 1000000 the harness \
         can simulate (each holds a routing answer in memory for the whole run)"
    );
    assert_eq!(
        ok(&format!("{AP}[workload]\nusers = {MAX_USERS}\n"))
            .workload
            .users,
        MAX_USERS
    );
}

#[test]
fn durations_past_the_clock_are_refused_not_a_panic() {
    // A tiny rate keeps the planned operations under the cap; the clock cannot count it.
    assert_eq!(
        err(
            "posture = \"single-region\"\nduration = \"1000years\"\n[workload]\nrate_per_s = 1e-9\n"
        ),
        "x.toml:2:12: duration: \"1000years\" is longer than the harness's clock can count \
         (u64 nanoseconds: about 584 years)"
    );
    // `at + duration` of a fault overflowed (a panic) before it was compared with anything.
    assert_eq!(
        err(&format!(
            "{AP}[[faults]]\nkind = \"kill_region\"\nregion = \"us\"\nat = \"1s\"\n\
             duration = \"18446744073709551615s\"\n"
        )),
        "x.toml:7:12: faults[0].duration: \"18446744073709551615s\" from at = 1s heals past \
         the end of the time the harness can count; leave heal_at and duration out to let the \
         fault last to the end"
    );
}

#[test]
fn unclosed_table_header_is_not_named_after_the_next_table() {
    // `[workload` followed by `[failover]` was reported as `failover`, a key the user had
    // written correctly; the header is the mistake, on line 3.
    assert_eq!(
        err(&format!(
            "{AP}[workload\nusers = 3\n\n[failover]\nmode = \"auto\"\n"
        )),
        "x.toml:3:10: syntax: unclosed table, expected `]`"
    );
    assert_eq!(
        err(&format!(
            "{AP}[[faults]\nkind = \"kill_node\"\nnode = \"us-db\"\nat = \"1s\"\n[slo]\nrto = \"5s\"\n"
        )),
        "x.toml:3:10: syntax: unclosed array table, expected `]`"
    );
    assert_eq!(
        err(&format!(
            "{AP}[slo]\nrto = \"5s\"\n  [ network \nrtt = \"1ms\"\n"
        )),
        "x.toml:5:12: syntax: unclosed table, expected `]`"
    );
    // The same in a matrix file.
    let m = matrix::parse(
        "postures = [\"active-passive-async\"]\n[base\nduration = \"12s\"\n\n[slo]\nrto = \"5s\"\n\
         [[scenarios]]\nname = \"x\"\n",
        Path::new("m.toml"),
    )
    .unwrap_err();
    assert_eq!(
        m.to_string(),
        "m.toml:2:6: syntax: unclosed table, expected `]`"
    );
}

/// A file under the system's temporary directory, unique to this test process.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regiondrill-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn non_utf8_file_is_refused_at_its_first_invalid_byte() {
    // It used to be an I/O error with no line, column or field.
    let mut bytes = b"posture = \"active-passive-async\"\nduration = \"20s\"\n# caf".to_vec();
    bytes.extend("é ".as_bytes());
    bytes.extend(b"\xff\xfe\n");
    let path = temp_file("latin.toml", &bytes);
    let expected = format!(
        "{}:3:8: (file): the file is not UTF-8 text: byte 0xFF here is not UTF-8; save it \
         as UTF-8",
        path.display()
    );
    let e = load(&path).unwrap_err();
    assert_eq!((e.line, e.column, e.field.as_str()), (3, 8, NOT_UTF8_FIELD));
    assert_eq!(e.to_string(), expected);
    // The CLI asks whether a file is a matrix before loading it: the same error.
    assert_eq!(matrix::is_matrix(&path).unwrap_err().to_string(), expected);
    let named = temp_file("matrix.toml", &bytes);
    assert_eq!(
        matrix::load(&named).unwrap_err().to_string(),
        expected.replace("latin.toml", "matrix.toml")
    );
    // A file cut in the middle of a character.
    let cut = temp_file("cut.toml", b"posture = \"single-region\"\nname = \"caf\xc3");
    assert_eq!(
        load(&cut).unwrap_err().to_string(),
        format!(
            "{}:2:12: (file): the file is not UTF-8 text: the file ends in the middle of a \
             UTF-8 character; save it as UTF-8",
            cut.display()
        )
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn rtt_80mins_longer_than_op_timeout_and_duration_is_refused() {
    // "80mins" is 80 minutes to humantime: every crossing timed out, silently.
    assert_eq!(
        err(&format!("{AP}[network]\nrtt = \"80mins\"\n")),
        "x.toml:4:7: network.rtt: \"80mins\" (1h 20m) is longer than workload.op_timeout (2s \
         by default): every operation that crosses regions would time out, and longer than \
         the experiment's duration (20s): no round trip between the regions would complete \
         within the run; did you mean milliseconds (\"80ms\")?"
    );
    // Only the operation timeout.
    assert_eq!(
        err(&format!(
            "{AP}[network]\nrtt = \"3s\"\n[workload]\nop_timeout = \"2500ms\"\n"
        )),
        "x.toml:4:7: network.rtt: \"3s\" (3s) is longer than workload.op_timeout (2s 500ms): \
         every operation that crosses regions would time out; did you mean milliseconds \
         (\"80ms\")?"
    );
    // Only the duration.
    assert_eq!(
        err(&format!(
            "{AP}[network]\nrtt = \"30s\"\n[workload]\nop_timeout = \"1m\"\n"
        )),
        "x.toml:4:7: network.rtt: \"30s\" (30s) is longer than the experiment's duration \
         (20s): no round trip between the regions would complete within the run; did you mean \
         milliseconds (\"80ms\")?"
    );
    // Equal to the timeout is allowed (a drill at the edge), and so is anything shorter.
    let e = ok(&format!(
        "{AP}[network]\nrtt = \"2s\"\n[workload]\nop_timeout = \"2s\"\n"
    ));
    assert_eq!((e.network.rtt, e.workload.op_timeout), (s(2), s(2)));
}

#[test]
fn latency_fault_rtt_80mins_longer_than_the_duration_is_refused() {
    let latency = |rtt: &str| {
        format!(
            "{AP}[[faults]]\nkind = \"latency\"\nbetween = [\"us\", \"eu\"]\nrtt = \"{rtt}\"\n\
             at = \"1s\"\n"
        )
    };
    assert_eq!(
        err(&latency("80mins")),
        "x.toml:6:7: faults[0].rtt: \"80mins\" (1h 20m) is longer than the experiment's \
         duration (20s): no round trip through these links would complete within the run; did \
         you mean milliseconds (\"80ms\")?"
    );
    // Longer than the operation timeout is a legitimate drill: every crossing times out.
    let e = ok(&latency("5s"));
    assert!(e.workload.op_timeout < s(5));
    assert!(matches!(e.faults[0].fault, FaultSpec::Latency(Latency { rtt, .. }) if rtt == s(5)));
}

#[test]
fn a_lone_bracket_or_an_empty_key_still_names_a_field() {
    // Found by the fuzz (experiment/fuzz.rs): both were reported with an empty field,
    // `x.toml:3:2: : …`.
    assert_eq!(
        err(&format!("{AP}[")),
        "x.toml:3:2: syntax: unquoted keys cannot be empty, expected letters, numbers, `-`, `_`"
    );
    let e = err(&format!("{AP}\"\" = 1\n"));
    assert!(
        e.starts_with("x.toml:3:1: \"\": unknown field ``, expected one of `name`"),
        "{e}"
    );
    let e = err(&format!("{AP}[workload]\n\"a\\nb\" = 1\n"));
    assert!(
        e.starts_with("x.toml:4:1: workload.\"a\\nb\": unknown field `a\nb`"),
        "{e}"
    );
}

#[test]
fn operations_are_read_checked_and_listed_by_time() {
    let e = ok(&format!(
        "{AP}[[operations]]\nkind = \"switchover\"\nat = \"15s\"\nstop_writes = false\n\
         [[operations]]\nkind = \"rejoin\"\nat = \"10s\"\n"
    ));
    use crate::operation::{Operation, Rejoin, ScheduledOperation, Switchover};
    assert_eq!(
        e.operations,
        vec![
            ScheduledOperation {
                at: s(10),
                operation: Operation::Rejoin(Rejoin {}),
            },
            ScheduledOperation {
                at: s(15),
                operation: Operation::Switchover(Switchover {
                    to: "us".into(),
                    stop_writes: false,
                }),
            },
        ]
    );
    assert!(e.failover.wal_log_hints);
    assert!(
        !ok(&format!("{AP}[failover]\nwal_log_hints = false\n"))
            .failover
            .wal_log_hints
    );
    // As run: in experiment.json, and back.
    let json = serde_json::to_string(&e).unwrap();
    assert!(
        json.contains(r#""operations":[{"at":"10s","operation":{"kind":"rejoin"}}"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Experiment>(&json).unwrap(), e);
}

#[test]
fn bad_operations_are_refused_at_their_place() {
    assert_eq!(
        err(&format!(
            "{AP}[[operations]]\nkind = \"failback\"\nat = \"1s\"\n"
        )),
        "x.toml:4:8: operations[0].kind: unknown operation \"failback\"; one of rejoin, switchover"
    );
    assert_eq!(
        err(&format!(
            "{AA}[[operations]]\nkind = \"rejoin\"\nat = \"1s\"\n"
        )),
        "x.toml:4:8: operations[0].kind: rejoin needs a primary and a standby: an \
         active-passive posture (this one is active-active-lww)"
    );
    assert_eq!(
        err(&format!(
            "{AP}[[operations]]\nkind = \"rejoin\"\nat = \"20s\"\n"
        )),
        "x.toml:5:6: operations[0].at: 20s is not before the end of the workload (20s)"
    );
    assert_eq!(
        err(&format!(
            "{AP}[[operations]]\nkind = \"rejoin\"\nat = \"1s\"\nto = \"eu\"\n"
        )),
        "x.toml:6:6: operations[0].to: only a switchover takes this key (a rejoin takes kind and at)"
    );
    assert_eq!(
        err(&format!(
            "{AP}[[operations]]\nkind = \"switchover\"\nat = \"1s\"\nto = \"ap\"\n"
        )),
        "x.toml:6:6: operations[0].to: unknown region \"ap\"; one of us, eu"
    );
    assert_eq!(
        err(&format!("{AP}[[operations]]\nkind = \"rejoin\"\n")),
        "x.toml:3:1: operations[0].at: required: when the operation starts, from the start of \
         the workload, e.g. \"12s\""
    );
    assert_eq!(
        err(&format!(
            "{AP}[[operations]]\nkind = \"rejoin\"\nat = \"1s\"\nheal_at = \"2s\"\n"
        )),
        "x.toml:6:1: operations[0].heal_at: unknown field `heal_at`, expected one of `kind`, \
         `at`, `to`, `stop_writes`"
    );
}

#[test]
fn the_failback_matrix_gives_each_active_passive_posture_the_rejoin_and_the_switchover() {
    let m = super::matrix::load(&experiments_dir().join("matrices/failback.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = m.cells.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["failback-ap-async", "failback-ap-semi", "failback-ap-sync"]
    );
    for e in &m.cells {
        let kinds: Vec<String> = e
            .operations
            .iter()
            .map(|o| o.operation.describe())
            .collect();
        assert_eq!(
            kinds,
            [
                "rejoin the deposed primary",
                "switchover to us (writes stopped)"
            ],
            "{}",
            e.name
        );
        assert_eq!(e.faults.len(), 1);
    }
    // An operation in a posture without a standby is refused at its place in the matrix.
    let text = std::fs::read_to_string(experiments_dir().join("matrices/failback.toml"))
        .unwrap()
        .replace("  \"active-passive-async\",", "  \"active-active-lww\",");
    let path = std::env::temp_dir().join(format!("failback-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let e = super::matrix::load(&path).unwrap_err().to_string();
    let _ = std::fs::remove_file(&path);
    assert!(
        e.contains("scenarios[0] (failback) × active-active-lww: operations[0].kind: rejoin needs a primary and a standby"),
        "{e}"
    );
}

#[test]
fn patroni_settings_have_patronis_names_defaults_and_rules() {
    let e = ok(&format!("{AP}[failover]\nmanager = \"patroni\"\n"));
    let Manager::Patroni(p) = &e.failover.manager else {
        panic!("{:?}", e.failover.manager)
    };
    // Patroni's own defaults; etcd in a witness at the regions' RTT (none stated: 0).
    assert_eq!(
        (
            p.ttl,
            p.loop_wait,
            p.retry_timeout,
            p.maximum_lag_on_failover
        ),
        (30, 10, 10, 1_048_576)
    );
    assert!(!p.synchronous_mode && !p.synchronous_mode_strict && !p.use_pg_rewind);
    assert!(!p.failsafe_mode);
    assert_eq!(
        (p.dcs.region.as_str(), p.dcs.witness_rtt),
        ("witness", ms(0))
    );
    assert_eq!(
        (p.haproxy.inter, p.haproxy.fall, p.haproxy.rise),
        (s(3), 3, 2)
    );
    let pat = |body: &str| {
        err(&format!(
            "{AP}[failover]\nmanager = \"patroni\"\n\n[failover.patroni]\n{body}"
        ))
    };
    assert_eq!(
        pat("ttl = 10\n"),
        "x.toml:7:7: failover.patroni.ttl: 10 is below Patroni's minimum ttl of 20"
    );
    assert_eq!(
        pat("ttl = 20\nloop_wait = 10\n"),
        "x.toml:8:13: failover.patroni.retry_timeout: loop_wait + 2 × retry_timeout = 30 s \
         exceeds ttl = 20 s: Patroni would change these behind your back; lower them or raise ttl"
    );
    // Found by the fuzzer: 2 × retry_timeout overflowed u32.
    assert!(
        pat("ttl = 20\nloop_wait = 1\nretry_timeout = 4294967295\n")
            .starts_with("x.toml:9:17: failover.patroni.retry_timeout: loop_wait + 2 × retry_timeout = 8589934591 s exceeds ttl = 20 s"),
        "{}",
        pat("ttl = 20\nloop_wait = 1\nretry_timeout = 4294967295\n")
    );
    assert_eq!(
        pat("synchronous_mode_strict = true\n"),
        "x.toml:7:27: failover.patroni.synchronous_mode_strict: only means something with \
         synchronous_mode = true"
    );
    assert_eq!(
        pat("dcs = \"ap\"\n"),
        "x.toml:7:7: failover.patroni.dcs: unknown place \"ap\" for etcd; one of witness, us, eu"
    );
    assert!(
        pat("tll = 20\n").contains("unknown field `tll`"),
        "{}",
        pat("tll = 20\n")
    );
    // The builtin controller's settings are not Patroni's; Patroni owns the commit mode.
    assert_eq!(
        err(&format!(
            "{AP}[failover]\nmanager = \"patroni\"\nthreshold = 2\n"
        )),
        "x.toml:5:13: failover.threshold: a setting of the builtin controller; Patroni's are in \
         [failover.patroni] (ttl, loop_wait, retry_timeout, …)"
    );
    assert!(
        err("posture = \"active-passive-sync\"\nduration = \"20s\"\n[failover]\nmanager = \"patroni\"\n")
            .starts_with("x.toml:4:11: failover.manager: Patroni runs here with posture")
    );
    assert_eq!(
        err(&format!("{AP}[failover]\nmanager = \"stolon\"\n")),
        "x.toml:4:11: failover.manager: unknown failover manager \"stolon\"; one of builtin, \
         patroni, pg_auto_failover"
    );
    assert!(
        err(&format!("{AP}[failover.patroni]\nttl = 20\n")).starts_with(
            "x.toml:3:1: failover.patroni: Patroni's settings need manager = \"patroni\""
        ),
        "{}",
        err(&format!("{AP}[failover.patroni]\nttl = 20\n"))
    );
}

#[test]
fn residency_is_read_with_its_defaults_and_erasures_in_time_order() {
    let e = ok(&format!(
        "{AP}[residency]\n[[residency.erasures]]\nat = \"5s\"\nhome = \"eu\"\nusers = 2\n\
         [[residency.erasures]]\nat = \"1s\"\nhome = \"us\"\n[slo]\nerasure_within = \"2s\"\n"
    ));
    let r = e.residency.clone().expect("residency");
    assert_eq!(r.personal_tables, vec!["profiles".to_string()]);
    assert_eq!(
        r.allow,
        [
            ("eu".to_string(), vec!["eu".to_string()]),
            ("us".to_string(), vec!["us".to_string()])
        ]
        .into()
    );
    assert!(!r.pinned);
    assert_eq!((r.profile_reads_per_s, r.poll), (20.0, ms(50)));
    assert_eq!(
        r.erasures
            .iter()
            .map(|e| (e.at, e.home.as_str(), e.users))
            .collect::<Vec<_>>(),
        [(s(1), "us", 1), (s(5), "eu", 2)]
    );
    assert_eq!(e.slo.erasure_within, Some(s(2)));
    assert_eq!(e.slo.max_residency_violations, None);
    assert!(e.stack_plan().count_tokens);
    assert!(e.stack_plan().unpublished.is_empty());
    // Without [residency], nothing is counted.
    assert!(!ok(AP).stack_plan().count_tokens);

    let pinned = ok(
        "posture = \"active-active-partitioned\"\nduration = \"5s\"\n[residency]\n\
         pinned = true\npersonal_tables = [\"profiles\", \"kv\"]\nallow = { eu = [\"eu\", \"us\"] }\n",
    );
    let r = pinned.residency.as_ref().unwrap();
    assert_eq!(r.allow["eu"], vec!["eu".to_string(), "us".to_string()]);
    assert_eq!(r.allow["us"], vec!["us".to_string()]);
    assert_eq!(pinned.stack_plan().unpublished, vec!["profiles", "kv"]);
}

#[test]
fn residency_mistakes_are_refused_at_their_place() {
    let cases = [
        (
            format!("{AP}[residency]\npinned = true\n"),
            "x.toml:4:10: residency.pinned: pinning leaves personal tables out of logical \
             replication, which only active-active-partitioned has (not active-passive-async); \
             set false or use posture = \"active-active-partitioned\"",
        ),
        (
            format!("{AP}[residency]\npersonal_tables = [\"profiles\", \"users\"]\n"),
            "x.toml:4:32: residency.personal_tables: \"users\" is not one of the app's tables: \
             profiles, kv, writes (without a region suffix)",
        ),
        (
            format!("{AP}[residency]\n[[residency.erasures]]\nat = \"25s\"\nhome = \"us\"\n"),
            "x.toml:5:6: residency.erasures[0].at: at 25s, not before the end of the workload \
             (duration = 20s)",
        ),
        (
            format!("{AP}[residency]\n[[residency.erasures]]\nat = \"2s\"\nhome = \"asia\"\n"),
            "x.toml:6:8: residency.erasures[0].home: unknown region \"asia\"; one of us, eu",
        ),
        (
            format!(
                "{AP}[workload]\nusers = 4\n[residency]\n[[residency.erasures]]\nat = \"2s\"\n\
                 home = \"eu\"\nusers = 3\n"
            ),
            "x.toml:9:9: residency.erasures[0].users: 3 erasures of eu users in all, but eu \
             has 2 users (workload.users × its share); a user is erased once",
        ),
        (
            format!(
                "{AP}[residency]\n[[residency.erasures]]\nat = \"1s\"\nhome = \"us\"\n\
                 users = 4294967295\n[[residency.erasures]]\nat = \"2s\"\nhome = \"us\"\n\
                 users = 4294967295\n"
            ),
            "x.toml:7:9: residency.erasures[0].users: 4294967295 erasures of us users in all, \
             but us has 20 users (workload.users × its share); a user is erased once",
        ),
        (
            format!("{AP}[residency]\npoll = \"2s\"\n"),
            "x.toml:4:8: residency.poll: at most 1s: the poll interval is the erasure time's \
             resolution",
        ),
        (
            format!("{AP}[slo]\nerasure_within = \"1s\"\n"),
            "x.toml:4:18: slo.erasure_within: needs a [residency] section: without personal \
             data in the workload there is nothing to judge",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(err(&text), expected, "{text}");
    }
    let e = err(&format!("{AP}[residency]\nreads = 3\n"));
    assert!(
        e.starts_with("x.toml:4:1: residency.reads: unknown field `reads`"),
        "{e}"
    );
}

#[test]
fn the_managers_matrix_crosses_each_manager_and_its_settings_with_both_faults() {
    let m = super::matrix::load(&experiments_dir().join("managers.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let cells: Vec<(&str, &str)> = m
        .cells
        .iter()
        .map(|e| (e.name.as_str(), e.failover.manager.name()))
        .collect();
    let mut expected = Vec::new();
    for scenario in ["region-loss", "partition"] {
        for (variant, manager) in [
            ("builtin", "builtin"),
            ("builtin-tight", "builtin"),
            ("patroni", "patroni"),
            ("patroni-tight", "patroni"),
            ("pg-auto-failover", "pg_auto_failover"),
            ("pg-auto-failover-tight", "pg_auto_failover"),
        ] {
            expected.push((format!("{scenario}-ap-async-{variant}"), manager));
        }
    }
    let expected: Vec<(&str, &str)> = expected.iter().map(|(n, m)| (n.as_str(), *m)).collect();
    assert_eq!(cells, expected);
    // Patroni with its defaults: Patroni's own, and a run long enough for its ttl.
    let defaults = &m.cells[2];
    match &defaults.failover.manager {
        crate::ha::Manager::Patroni(p) => assert_eq!((p.ttl, p.loop_wait), (30, 10)),
        other => panic!("{other:?}"),
    }
    assert_eq!(defaults.duration, s(55));
    assert_eq!(m.cells[1].failover.interval, Duration::from_millis(200));
}

#[test]
fn pg_auto_failover_settings_have_its_names_defaults_and_bounds() {
    let e = ok(&format!("{AP}[failover]\nmanager = \"pg_auto_failover\"\n"));
    let Manager::PgAutoFailover(p) = &e.failover.manager else {
        panic!("{:?}", e.failover.manager)
    };
    assert_eq!(e.failover.manager.name(), "pg_auto_failover");
    // pg_auto_failover 2.0's defaults, as `pg_settings` of its monitor gives them.
    assert_eq!(
        (
            p.health_check_period,
            p.health_check_timeout,
            p.health_check_max_retries,
            p.health_check_retry_delay
        ),
        (5000, 5000, 2, 2000)
    );
    assert_eq!(
        (
            p.node_considered_unhealthy_timeout,
            p.primary_demote_timeout,
            p.promote_wal_log_threshold,
            p.startup_grace_period
        ),
        (20_000, 30_000, 16_777_216, 10_000)
    );
    assert_eq!(
        (
            p.number_sync_standbys,
            p.replication_quorum,
            p.candidate_priority
        ),
        (0, true, 50)
    );
    assert_eq!(
        (p.monitor.region.as_str(), p.monitor.witness_rtt),
        ("witness", ms(0))
    );
    let paf = |body: &str| {
        err(&format!(
            "{AP}[failover]\nmanager = \"pg_auto_failover\"\n\n[failover.pg_auto_failover]\n{body}"
        ))
    };
    assert_eq!(
        paf("health_check_period = 0\n"),
        "x.toml:7:23: failover.pg_auto_failover.health_check_period: 0 is outside \
         pg_auto_failover's range for health_check_period: 1 to 2147483647 ms"
    );
    assert_eq!(
        paf("node_considered_unhealthy_timeout = -5\n"),
        "x.toml:7:37: failover.pg_auto_failover.node_considered_unhealthy_timeout: -5 is \
         outside pg_auto_failover's range for node_considered_unhealthy_timeout: 1 to \
         2147483647 ms"
    );
    assert_eq!(
        paf("health_check_max_retries = 101\n"),
        "x.toml:7:28: failover.pg_auto_failover.health_check_max_retries: 101 is outside \
         pg_auto_failover's range for health_check_max_retries: 1 to 100"
    );
    assert_eq!(
        paf("candidate_priority = 101\n"),
        "x.toml:7:22: failover.pg_auto_failover.candidate_priority: 101 is outside \
         pg_auto_failover's range for candidate_priority: 0 to 100"
    );
    assert_eq!(
        paf("number_sync_standbys = 1\n"),
        "x.toml:7:24: failover.pg_auto_failover.number_sync_standbys: 1 needs at least 2 \
         standbys in the replication quorum and this stack has one (the monitor refuses it); 0 \
         is the only value here"
    );
    assert_eq!(
        paf("monitor = \"ap\"\n"),
        "x.toml:7:11: failover.pg_auto_failover.monitor: unknown place \"ap\" for the monitor; \
         one of witness, us, eu"
    );
    assert!(
        paf("health_check_periode = 1\n").contains("unknown field `health_check_periode`"),
        "{}",
        paf("health_check_periode = 1\n")
    );
    // The builtin controller's settings, and Patroni's, are not pg_auto_failover's.
    assert_eq!(
        err(&format!(
            "{AP}[failover]\nmanager = \"pg_auto_failover\"\ninterval = \"1s\"\n"
        )),
        "x.toml:5:12: failover.interval: a setting of the builtin controller; \
         pg_auto_failover's are in [failover.pg_auto_failover] (health_check_period, \
         node_considered_unhealthy_timeout, …)"
    );
    assert!(
        err(&format!(
            "{AP}[failover]\nmanager = \"pg_auto_failover\"\n[failover.patroni]\nttl = 20\n"
        ))
        .starts_with("x.toml:5:1: failover.patroni: Patroni's settings need manager = \"patroni\"")
    );
    assert!(
        err(&format!(
            "{AP}[failover.pg_auto_failover]\nhealth_check_period = 1000\n"
        ))
        .starts_with(
            "x.toml:3:1: failover.pg_auto_failover: pg_auto_failover's settings need \
                 manager = \"pg_auto_failover\""
        )
    );
    assert!(
        err("posture = \"active-passive-sync\"\nduration = \"20s\"\n[failover]\nmanager = \"pg_auto_failover\"\n")
            .starts_with("x.toml:4:11: failover.manager: pg_auto_failover runs here with posture")
    );
    // Its stack: the monitor where placed, keepers registering the replication links.
    let e = ok(&format!(
        "{AP}[failover]\nmanager = \"pg_auto_failover\"\n\n[failover.pg_auto_failover]\nmonitor = \"us\"\n"
    ));
    let plan = e.stack_plan();
    assert!(plan.nodes.iter().any(|n| n.to_string() == "us-dcs"));
    assert!(plan.links.iter().any(|l| l.name == "eu-to-us-dcs"));
    assert_eq!(
        plan.registered_links()
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>(),
        ["replication us-db", "replication-to-us eu-db"]
    );
}

const THREE: &str =
    "posture = \"active-passive-quorum\"\nduration = \"20s\"\nregions = [\"us\", \"eu\", \"ap\"]\n";

#[test]
fn a_pair_may_have_its_own_jitter_bounded_by_its_own_round_trip() {
    let network =
        "[network]\nrtt = \"50ms\"\njitter = \"2ms\"\n[network.pairs]\nus-ap = \"180ms\"\n";
    let e = parse(
        &format!("{THREE}{network}[network.pair_jitter]\nap-us = \"60ms\"\n"),
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(e.network.jitter_between("us", "ap"), ms(60));
    assert_eq!(
        e.network.jitter_between("eu", "us"),
        ms(2),
        "the others keep `jitter`"
    );
    let plan = e.stack_plan();
    let link = |name: &str| plan.links.iter().find(|l| l.name == name).unwrap();
    assert_eq!(plan.link_rtt(link("ap-db-to-us-db")), (ms(180), ms(60)));
    assert_eq!(plan.link_rtt(link("replication")), (ms(50), ms(2)));
    // 60 ms is within us-ap's 180 ms, not within eu-ap's 50 ms.
    assert_eq!(
        err(&format!(
            "{THREE}{network}[network.pair_jitter]\neu-ap = \"60ms\"\n"
        )),
        "x.toml:10:9: network.pair_jitter.eu-ap: 60ms is more than the round trip of eu-ap (50ms)"
    );
    assert_eq!(
        err(&format!(
            "{THREE}{network}[network.pair_jitter]\nus-mars = \"1ms\"\n"
        )),
        "x.toml:10:11: network.pair_jitter.us-mars: \"us-mars\" is not a pair of this experiment's \
         regions; pairs: us-eu, us-ap, eu-ap"
    );
    assert_eq!(
        err(&format!(
            "{THREE}{network}[network.pair_jitter]\nus-ap = \"1ms\"\nap-us = \"2ms\"\n"
        )),
        "x.toml:11:9: network.pair_jitter.ap-us: the pair us-ap is given twice"
    );
}

#[test]
fn three_regions_with_pairs_homes_and_vantage_points() {
    let e = parse(
        &format!(
            "{THREE}[network]\nrtt = \"50ms\"\njitter = \"2ms\"\n[network.pairs]\nus-eu = \"80ms\"\nap-us = \"180ms\"\n\
             eu-witness = \"30ms\"\n[workload]\nusers = 10\nhomes = {{ us = 0.5, eu = 0.3, ap = 0.2 }}\n\
             [failover]\nwatch_from = [\"eu\", \"ap\", \"witness\"]\n"
        ),
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(e.regions, ["us", "eu", "ap"]);
    // Either order names a pair; an unlisted pair keeps `rtt`.
    assert_eq!(e.network.rtt_between("ap", "us"), ms(180));
    assert_eq!(e.network.rtt_between("us", "ap"), ms(180));
    assert_eq!(e.network.rtt_between("eu", "ap"), ms(50));
    assert_eq!(e.network.rtt_between("witness", "eu"), ms(30));
    assert_eq!(
        e.workload.homes,
        [("us".into(), 0.5), ("eu".into(), 0.3), ("ap".into(), 0.2)]
    );
    assert_eq!(e.failover.watch_from, ["eu", "ap", "witness"]);
    let plan = e.stack_plan();
    assert_eq!(plan.standby_regions(), ["eu", "ap"]);
    let names: Vec<&str> = plan.links.iter().map(|l| l.name.as_str()).collect();
    for n in [
        "replication",
        "ap-db-to-us-db",
        "ap-db-to-eu-db",
        "ap-monitor-to-us-db",
        "witness-monitor-to-us-db",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let to_ap = plan
        .links
        .iter()
        .find(|l| l.name == "ap-db-to-us-db")
        .unwrap();
    assert_eq!(plan.link_rtt(to_ap), (ms(180), ms(2)));
    // Without the witness watching, it has no links.
    let plain = parse(THREE, Path::new("x.toml")).unwrap().stack_plan();
    assert!(plain.links.iter().all(|l| l.from != "witness"));
    assert_eq!(plain.vantage_points(), ["eu"]);
}

#[test]
fn region_problems_name_their_line_and_field() {
    let with = |extra: &str| err(&format!("{THREE}{extra}"));
    assert_eq!(
        err("posture = \"active-passive-async\"\nduration = \"20s\"\nregions = [\"us\", \"Eu\"]\n"),
        "x.toml:3:18: regions[1]: \"Eu\" is not a usable region name: a lower-case letter, then \
         lower-case letters or digits, at most 12 (it names nodes, links and tables); not \
         \"witness\""
    );
    assert_eq!(
        err(
            "posture = \"active-passive-async\"\nduration = \"20s\"\nregions = [\"us\", \"eu\", \"ap\", \"sa\", \"af\", \"au\"]\n"
        ),
        "x.toml:3:11: regions: 6 regions; name 2 to 5 (a single-region posture still has users \
         in a second region)"
    );
    assert_eq!(
        with("[network.pairs]\nus-sa = \"80ms\"\n"),
        "x.toml:5:9: network.pairs.us-sa: \"us-sa\" is not a pair of this experiment's regions; \
         pairs: us-eu, us-ap, eu-ap"
    );
    assert_eq!(
        with("[workload]\nhomes = { us = 0.5, eu = 0.3 }\n"),
        "x.toml:5:9: workload.homes: no share for ap (write 0 for a region without users)"
    );
    assert_eq!(
        with("[failover]\nwatch_from = [\"us\"]\n"),
        "x.toml:5:15: failover.watch_from[0]: us holds the primary: a vantage point watches it \
         from elsewhere"
    );
    assert_eq!(
        err("posture = \"active-passive-async\"\nduration = \"20s\"\n\
             regions = [\"us\", \"eu\", \"ap\"]\n[failover]\nmanager = \"patroni\"\n"),
        "x.toml:5:11: failover.manager: patroni runs between the default regions us and eu \
         only, not with more than two regions (regions = [us, eu, ap])"
    );
    assert_eq!(
        with("[[faults]]\nkind = \"partition\"\nisolate = \"sa\"\nat = \"1s\"\n"),
        "x.toml:6:11: faults[0].isolate: unknown region \"sa\"; regions: us, eu, ap"
    );
    let e = parse(
        &format!("{THREE}[[faults]]\nkind = \"partition\"\nisolate = \"eu\"\nat = \"1s\"\n"),
        Path::new("x.toml"),
    )
    .unwrap();
    let plan = e.stack_plan();
    let crate::fault::FaultSpec::Partition(p) = &e.faults[0].fault else {
        panic!("{:?}", e.faults[0].fault)
    };
    // Every link with eu at one end, and no other.
    let cut: Vec<_> = plan.links.iter().filter(|l| p.links.takes(l)).collect();
    assert!(!cut.is_empty());
    assert!(cut.iter().all(|l| l.from == "eu" || l.to == "eu"));
    assert_eq!(
        cut.len(),
        plan.links
            .iter()
            .filter(|l| l.from == "eu" || l.to == "eu")
            .count()
    );
}

#[test]
fn us_fraction_does_not_split_three_regions() {
    assert_eq!(
        err(&format!("{THREE}[workload]\nus_fraction = 0.5\n")),
        "x.toml:5:15: workload.us_fraction: us_fraction splits users between two regions; with \
         us, eu, ap write homes = { us = …, … }"
    );
}

#[test]
fn reports_name_each_regions_role_and_the_vantage_points() {
    let line = |text: &str| {
        let e = parse(text, Path::new("x.toml")).unwrap();
        crate::report::cells::regions_line(&e)
    };
    assert_eq!(
        line(AP),
        None,
        "the default pair watched from eu says nothing new"
    );
    assert_eq!(
        line(&format!(
            "{THREE}[failover]\nwatch_from = [\"eu\", \"ap\", \"witness\"]\n"
        ))
        .as_deref(),
        Some(
            "regions: us primary · eu, ap quorum standbys (ANY 1) · watched from eu, ap, \
             witness (down on 2 of 3)"
        )
    );
    assert_eq!(
        line("posture = \"active-passive-sync\"\nduration = \"9s\"\nregions = [\"us\", \"eu\", \"ap\"]\n")
            .as_deref(),
        Some("regions: us primary · eu sync standby · ap async standby · watched from eu (down on 1 of 1)")
    );
    assert_eq!(
        line("posture = \"active-active-crdt\"\nduration = \"9s\"\nregions = [\"us\", \"eu\", \"ap\"]\n")
            .as_deref(),
        Some("regions: us, eu, ap primaries · watched from eu (down on 1 of 1)")
    );
}
