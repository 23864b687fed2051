//! The verdict: findings against what the experiment's SLO states. Written to results.json
//! as `slo.passed` and `slo.checks[..]`, and what CI fails the job on.
//!
//! # Rules
//! One check per stated objective, in the order rto, rpo, stale_read_rate,
//! false_failovers; an objective the experiment does not state produces no check — except
//! false_failovers, whose unstated limit is 0 and which is judged whenever it fails (below).
//! `passed` is true when every check passed (so also when there is none).
//! - **rto**: passes when `failover.rto_ms` was measured and is ≤ the stated RTO. That is the
//!   headline RTO: the time until every home region's affected users wrote successfully again
//!   (the slowest region), not the first region to recover — users stuck behind a DNS TTL
//!   count. Fails with "not recovered (us)" when some region's affected users never wrote
//!   successfully again, naming those regions in order (plain "not recovered" if the findings
//!   name none), and with "no primary failure" when no fault hit the primary (an objective
//!   that was not exercised is not met).
//! - **rpo**: passes when lost writes were checked and `lost_writes.rpo_ms` ≤ the stated RPO.
//!   Fails with "not checked" when there was no final state to check against.
//! - **stale_read_rate**: passes when `stale_reads.rate` ≤ the stated maximum; passes with
//!   "no reads" when no read succeeded (nothing to be stale).
//! - **false_failovers** (`max_false_failovers`): passes when `false_failovers.count` (the
//!   failovers made while the primary was healthy in its own region; those whose health was
//!   not measured do not count) is ≤ the stated maximum — 0 when not stated — and no
//!   failover step failed: a failed step (`failover_failed`) always fails it, with its error
//!   in `observed`. Observed: "1 false of 2 failovers", with "(1 not measured)" and
//!   "; failover failed: `error`" appended as they apply. Stated: the maximum, or
//!   "0 (default)". The check is there when the key is stated, or when it fails (a false
//!   failover over the default 0, or a failed step); a run whose failovers were all
//!   justified, or that made none, and that does not state the key, has no such check — as
//!   before the check existed.
//!
//! - **failback** (when the experiment ran planned operations, `[[operations]]`): passes when
//!   every operation completed, every switchover that stopped writes lost none, and the final
//!   state is restored (`failback.restored`: one primary — the switchover's target — and a
//!   streaming standby with nothing left to replay). Stated: "restored, 0 lost".
//!
//! Comparisons use the exact figures; the strings are only for people.

use super::false_failovers::{self, StepKind};
pub use super::verdict::{SloCheck, Verdict};
use super::{FailoverFindings, Findings};
use crate::experiment::Slo;

/// Compares findings with the experiment's SLO.
pub fn verdict(findings: &Findings, slo: &Slo) -> Verdict {
    let mut checks = Vec::new();
    if let Some(rto) = slo.rto {
        let stated_ms = rto.as_nanos() as f64 / 1e6;
        let f = &findings.failover;
        let (observed, passed) = match (f.failure_at_ms, f.recovered, f.rto_ms) {
            (None, _, _) => ("no primary failure".to_owned(), false),
            (Some(_), false, _) | (Some(_), true, None) => (not_recovered(f), false),
            (Some(_), true, Some(ms)) => (fmt_ms(ms), ms <= stated_ms),
        };
        checks.push(SloCheck {
            name: "rto".into(),
            stated: fmt_ms(stated_ms),
            observed,
            passed,
        });
    }
    if let Some(rpo) = slo.rpo {
        let stated_ms = rpo.as_nanos() as f64 / 1e6;
        let l = &findings.lost_writes;
        let (observed, passed) = match (l.checked, l.rpo_ms) {
            (true, Some(ms)) => (fmt_ms(ms), ms <= stated_ms),
            _ => ("not checked".to_owned(), false),
        };
        checks.push(SloCheck {
            name: "rpo".into(),
            stated: fmt_ms(stated_ms),
            observed,
            passed,
        });
    }
    if let Some(max) = slo.max_stale_read_rate {
        let (observed, passed) = match findings.stale_reads.rate {
            None => ("no reads".to_owned(), true),
            Some(rate) => (fmt_pct(rate), rate <= max),
        };
        checks.push(SloCheck {
            name: "stale_read_rate".into(),
            stated: fmt_pct(max),
            observed,
            passed,
        });
    }
    let ff = &findings.false_failovers;
    let errors: Vec<&str> = ff
        .episodes
        .iter()
        .flat_map(|e| &e.steps)
        .filter(|s| s.step == StepKind::Failed)
        .map(|s| s.error.as_deref().unwrap_or("(no error given)"))
        .collect();
    let limit = slo.max_false_failovers;
    let over = ff.count > limit.unwrap_or(0) as usize;
    if limit.is_some() || over || !errors.is_empty() {
        let mut observed = format!(
            "{} false of {} failover{}",
            ff.count,
            ff.failovers,
            if ff.failovers == 1 { "" } else { "s" }
        );
        if ff.not_measured > 0 {
            observed.push_str(&format!(" ({} not measured)", ff.not_measured));
        }
        for error in &errors {
            observed.push_str(&format!("; failover failed: {error}"));
        }
        checks.push(SloCheck {
            name: false_failovers::CHECK.into(),
            stated: limit.map_or("0 (default)".to_owned(), |l| l.to_string()),
            observed,
            passed: !over && errors.is_empty(),
        });
    }
    let res = &findings.residency;
    if res.checked || slo.max_residency_violations.is_some() {
        let limit = slo.max_residency_violations.unwrap_or(0);
        let (observed, passed) = if res.checked {
            let mut observed = format!(
                "{} user{}",
                res.violations,
                if res.violations == 1 { "" } else { "s" }
            );
            if !res.unreadable.is_empty() {
                observed.push_str(&format!(" ({} stores not scanned)", res.unreadable.len()));
            }
            (
                observed,
                res.violations <= limit as usize && res.unreadable.is_empty(),
            )
        } else {
            ("not checked".to_owned(), false)
        };
        checks.push(SloCheck {
            name: super::residency::CHECK.into(),
            stated: match slo.max_residency_violations {
                Some(l) => l.to_string(),
                None => "0 (default)".into(),
            },
            observed,
            passed,
        });
    }
    if let Some(within) = slo.erasure_within {
        let stated_ms = within.as_nanos() as f64 / 1e6;
        let e = &findings.erasure;
        let (observed, passed) = if !e.checked {
            ("no erasure requested".to_owned(), false)
        } else if e.pending + e.not_acknowledged > 0 {
            (
                format!(
                    "{} pending, {} not acknowledged",
                    e.pending, e.not_acknowledged
                ),
                false,
            )
        } else {
            let max = e.max_ms.unwrap_or(0.0);
            (fmt_ms(max), max <= stated_ms)
        };
        checks.push(SloCheck {
            name: super::erasure::CHECK.into(),
            stated: fmt_ms(stated_ms),
            observed,
            passed,
        });
    }
    let fb = &findings.failback;
    if fb.checked {
        let mut problems: Vec<String> = fb.failed.clone();
        for s in fb.switchovers.iter().filter(|s| s.stop_writes) {
            match s.lost {
                Some(0) => {}
                Some(n) => problems.push(format!("switchover {} → {} lost {n}", s.from, s.to)),
                None => problems.push("lost writes not checked".into()),
            }
        }
        match fb.restored {
            Some(true) => {}
            Some(false) => problems.push("not restored".into()),
            None => problems.push("final state not read".into()),
        }
        checks.push(SloCheck {
            name: "failback".into(),
            stated: "restored, 0 lost".into(),
            observed: if problems.is_empty() {
                "restored, 0 lost".into()
            } else {
                problems.join("; ")
            },
            passed: problems.is_empty(),
        });
    }
    Verdict {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

/// "not recovered (eu, us)": the regions whose affected users never wrote successfully again
/// (plain "not recovered" when the findings name none).
fn not_recovered(f: &FailoverFindings) -> String {
    let regions: Vec<&str> = f
        .by_region
        .iter()
        .filter(|(_, r)| !r.recovered)
        .map(|(name, _)| name.as_str())
        .collect();
    if regions.is_empty() {
        "not recovered".to_owned()
    } else {
        format!("not recovered ({})", regions.join(", "))
    }
}

/// A duration in ms for people: "0s", "350ms", "0.25ms", "4.2s", "6s", "6.004s" (up to three
/// decimals, trailing zeros dropped, so a value just over a limit does not print as the limit).
pub fn fmt_ms(ms: f64) -> String {
    if ms == 0.0 {
        "0s".to_owned()
    } else if ms.abs() >= 1000.0 {
        format!("{}s", trim(format!("{:.3}", ms / 1000.0)))
    } else {
        format!("{}ms", trim(format!("{ms:.3}")))
    }
}

/// A rate in percent for people: "5.0%", "5.04%", "0.0%" (one to three decimals).
pub fn fmt_pct(rate: f64) -> String {
    let s = trim(format!("{:.3}", rate * 100.0));
    if s.contains('.') {
        format!("{s}%")
    } else {
        format!("{s}.0%")
    }
}

fn trim(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" { "0".into() } else { t.into() }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{Findings, check};
    use super::*;
    use crate::history::{FinalState, Probes};
    use std::time::Duration;

    fn slo(rto_ms: Option<u64>, rpo_ms: Option<u64>, stale: Option<f64>) -> Slo {
        Slo {
            max_residency_violations: None,
            erasure_within: None,
            rto: rto_ms.map(Duration::from_millis),
            rpo: rpo_ms.map(Duration::from_millis),
            max_stale_read_rate: stale,
            max_false_failovers: None,
        }
    }

    fn check_of(v: &Verdict, name: &str) -> (String, String, bool) {
        let c = v.checks.iter().find(|c| c.name == name).unwrap();
        (c.stated.clone(), c.observed.clone(), c.passed)
    }

    /// Kill at 1000; user 1's write fails at 1100 and succeeds at 5000 → 5200 (RTO 4200 ms).
    /// Write 1 (invoked 0) is lost if `lose` (RPO 1000 ms). Reads: 20, one stale at 5300 (5 %).
    fn findings(lose: bool, final_state: bool) -> Findings {
        let mut ops = vec![
            w(1, "a", 0, 10),
            w(2, "a", 1100, 1200).fail(),
            w(3, "b", 5000, 5200),
            r(4, "a", 5300, 5301, None),
        ];
        for i in 0..19 {
            ops.push(r(10 + i, "b", 6000, 6001, Some(3)));
        }
        let h = history(ops, vec![fault(1000, 0, true)]);
        let fs = FinalState {
            residency: None,
            primaries: Vec::new(),
            standbys: Vec::new(),
            primary_region: Some("eu".into()),
            write_ids: if lose { vec![3] } else { vec![1, 3] },
            regions: Default::default(),
        };
        check(&h, &Probes::default(), final_state.then_some(&fs))
    }

    #[test]
    fn all_met() {
        let f = findings(false, true);
        let v = verdict(&f, &slo(Some(6000), Some(0), Some(0.05)));
        assert!(v.passed);
        assert_eq!(v.checks.len(), 3);
        assert_eq!(check_of(&v, "rto"), ("6s".into(), "4.2s".into(), true));
        assert_eq!(check_of(&v, "rpo"), ("0s".into(), "0s".into(), true));
        // 1 stale of 20 reads = 5 % exactly: ≤ 5 % passes.
        assert_eq!(
            check_of(&v, "stale_read_rate"),
            ("5.0%".into(), "5.0%".into(), true)
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["passed"], true);
        assert_eq!(json["checks"][0]["name"], "rto");
    }

    #[test]
    fn missed() {
        let f = findings(true, true);
        let v = verdict(&f, &slo(Some(4000), Some(500), Some(0.04)));
        assert!(!v.passed);
        assert_eq!(check_of(&v, "rto"), ("4s".into(), "4.2s".into(), false));
        assert_eq!(check_of(&v, "rpo"), ("500ms".into(), "1s".into(), false));
        assert_eq!(
            check_of(&v, "stale_read_rate"),
            ("4.0%".into(), "5.0%".into(), false)
        );
    }

    #[test]
    fn not_checked_and_not_recovered_fail() {
        let mut f = findings(false, false);
        f.failover.recovered = false;
        f.failover.rto_ms = None;
        // The findings name no region that did not recover: plain "not recovered".
        let v = verdict(&f, &slo(Some(60_000), Some(60_000), None));
        assert!(!v.passed);
        assert_eq!(check_of(&v, "rto").1, "not recovered");
        f.failover.by_region.get_mut("us").unwrap().recovered = false;
        let v = verdict(&f, &slo(Some(60_000), Some(60_000), None));
        assert_eq!(check_of(&v, "rto").1, "not recovered (us)");
        assert_eq!(check_of(&v, "rpo").1, "not checked");
        assert!(!check_of(&v, "rpo").2);
    }

    /// Kill us at 1000. eu user 2 fails at 1010 and writes ok 2050 → 2100 (1.1 s); us user 1
    /// fails at 1010 and writes ok 2900 → 3100 (2.1 s) unless `us_recovers` is false (then
    /// its retry times out). With `eu_recovers` false, eu's write times out too.
    fn two_regions(us_recovers: bool, eu_recovers: bool) -> Findings {
        let us = w(3, "a", 2900, 3100).user(1);
        let eu = w(4, "b", 2050, 2100).user(2).region("eu");
        let ops = vec![
            w(1, "a", 1010, 1011).user(1).fail(),
            w(2, "b", 1010, 1011).user(2).region("eu").fail(),
            if eu_recovers { eu } else { eu.unknown() },
            if us_recovers { us } else { us.unknown() },
        ];
        check(
            &history(ops, vec![fault(1000, 0, true)]),
            &Probes::default(),
            None,
        )
    }

    #[test]
    fn rto_is_the_slowest_region() {
        let f = two_regions(true, true);
        assert_eq!(f.failover.first_rto_ms, Some(1100.0));
        // 1.1 s for eu would pass a 2 s RTO; us took 2.1 s, so the run does not.
        let v = verdict(&f, &slo(Some(2000), None, None));
        assert_eq!(check_of(&v, "rto"), ("2s".into(), "2.1s".into(), false));
        assert!(!v.passed);
        let v = verdict(&f, &slo(Some(2100), None, None));
        assert_eq!(check_of(&v, "rto"), ("2.1s".into(), "2.1s".into(), true));
    }

    #[test]
    fn not_recovered_names_the_regions() {
        let stated = slo(Some(60_000), None, None);
        let v = verdict(&two_regions(false, true), &stated);
        assert_eq!(
            check_of(&v, "rto"),
            ("60s".into(), "not recovered (us)".into(), false)
        );
        let v = verdict(&two_regions(true, false), &stated);
        assert_eq!(check_of(&v, "rto").1, "not recovered (eu)");
        let v = verdict(&two_regions(false, false), &stated);
        assert_eq!(check_of(&v, "rto").1, "not recovered (eu, us)");
        assert!(!v.passed);
    }

    #[test]
    fn unexercised_rto_fails_and_no_reads_pass() {
        let f = check(&history(vec![], vec![]), &Probes::default(), None);
        let v = verdict(&f, &slo(Some(1000), None, Some(0.0)));
        assert_eq!(
            check_of(&v, "rto"),
            ("1s".into(), "no primary failure".into(), false)
        );
        assert_eq!(
            check_of(&v, "stale_read_rate"),
            ("0.0%".into(), "no reads".into(), true)
        );
    }

    #[test]
    fn nothing_stated_passes() {
        let v = verdict(&findings(true, false), &Slo::default());
        assert_eq!(
            v,
            Verdict {
                passed: true,
                checks: vec![]
            }
        );
    }

    /// us declared down at 2500 with its own checks all ok in [1500, 2500] (a false
    /// failover) when `healthy`, failing otherwise; eu promoted at 2600; with `fail_step`,
    /// rerouting failed at 2700.
    fn failover(healthy: bool, fail_step: bool) -> Findings {
        use crate::history::{EventKind, HealthSample};
        let mut events = vec![
            ev(
                2500,
                EventKind::PrimaryDeclaredDown {
                    region: "us".into(),
                },
            ),
            ev(
                2600,
                EventKind::Promoted {
                    region: "eu".into(),
                    from: None,
                },
            ),
        ];
        if fail_step {
            events.push(ev(
                2700,
                EventKind::FailoverFailed {
                    error: "reconfiguring the eu app: refused".into(),
                },
            ));
        }
        let probes = Probes {
            health: (15..=25)
                .map(|i| HealthSample {
                    at_ns: i * 100 * MS,
                    region: "us".into(),
                    ok: healthy,
                })
                .collect(),
            ..Probes::default()
        };
        check(&history(vec![], events), &probes, None)
    }

    fn max_false(n: Option<u32>) -> Slo {
        Slo {
            max_false_failovers: n,
            ..Slo::default()
        }
    }

    #[test]
    fn a_false_failover_fails_unless_expected() {
        let f = failover(true, false);
        assert_eq!(f.false_failovers.count, 1);
        // Not stated: the limit is 0, and the check appears because it fails.
        let v = verdict(&f, &max_false(None));
        assert!(!v.passed);
        assert_eq!(
            check_of(&v, "false_failovers"),
            ("0 (default)".into(), "1 false of 1 failover".into(), false)
        );
        // Stated: expected.
        let v = verdict(&f, &max_false(Some(1)));
        assert!(v.passed);
        assert_eq!(
            check_of(&v, "false_failovers"),
            ("1".into(), "1 false of 1 failover".into(), true)
        );
        assert_eq!(v.checks.len(), 1);
    }

    #[test]
    fn justified_or_no_failovers_add_no_check_unless_stated() {
        for f in [failover(false, false), findings(false, true)] {
            let v = verdict(&f, &max_false(None));
            assert!(v.passed && v.checks.is_empty(), "{v:?}");
        }
        let v = verdict(&failover(false, false), &max_false(Some(0)));
        assert_eq!(
            check_of(&v, "false_failovers"),
            ("0".into(), "0 false of 1 failover".into(), true)
        );
        let v = verdict(&findings(false, true), &max_false(Some(0)));
        assert_eq!(
            check_of(&v, "false_failovers"),
            ("0".into(), "0 false of 0 failovers".into(), true)
        );
        // Not measured (no health samples): not counted, said.
        let mut f = failover(true, false);
        f.false_failovers = super::super::false_failovers::check(
            &history(
                vec![],
                vec![ev(
                    2500,
                    crate::history::EventKind::PrimaryDeclaredDown {
                        region: "us".into(),
                    },
                )],
            ),
            &Probes::default(),
        );
        let v = verdict(&f, &max_false(Some(0)));
        assert_eq!(
            check_of(&v, "false_failovers"),
            (
                "0".into(),
                "0 false of 1 failover (1 not measured)".into(),
                true
            )
        );
    }

    #[test]
    fn a_failed_step_always_fails_with_its_error() {
        let v = verdict(&failover(false, true), &max_false(None));
        assert!(!v.passed);
        assert_eq!(
            check_of(&v, "false_failovers"),
            (
                "0 (default)".into(),
                "0 false of 1 failover; failover failed: reconfiguring the eu app: refused".into(),
                false
            )
        );
        // However many false failovers are expected.
        let v = verdict(&failover(true, true), &max_false(Some(5)));
        assert_eq!(
            check_of(&v, "false_failovers"),
            (
                "5".into(),
                "1 false of 1 failover; failover failed: reconfiguring the eu app: refused".into(),
                false
            )
        );
        // Last in order, after the stated objectives.
        let stated = Slo {
            rto: Some(Duration::from_secs(6)),
            ..max_false(Some(5))
        };
        let v = verdict(&failover(true, true), &stated);
        let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["rto", "false_failovers"]);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0.0), "0s");
        assert_eq!(fmt_ms(350.0), "350ms");
        assert_eq!(fmt_ms(0.25), "0.25ms");
        assert_eq!(fmt_ms(4200.0), "4.2s");
        assert_eq!(fmt_ms(6004.0), "6.004s");
        assert_eq!(fmt_ms(60_000.0), "60s");
        assert_eq!(fmt_pct(0.05), "5.0%");
        assert_eq!(fmt_pct(0.0504), "5.04%");
        assert_eq!(fmt_pct(0.0), "0.0%");
        assert_eq!(fmt_pct(1.0 / 3.0), "33.333%");
    }
}
