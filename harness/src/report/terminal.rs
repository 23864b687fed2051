//! The terminal report: one table per run (finding, observed, stated, verdict), and a
//! comparison table when several experiments ran. Fits in 100 columns.

use crate::checker::{Findings, Phase};
use crate::posture::Posture;
use crate::run::Results;
use tabled::settings::{Alignment, Modify, Style, object::Columns};
use tabled::{Table, Tabled};

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "finding")]
    finding: String,
    #[tabled(rename = "observed")]
    observed: String,
    #[tabled(rename = "stated")]
    stated: String,
    #[tabled(rename = "verdict")]
    verdict: String,
}

/// Milliseconds as "850 ms" or "4.21 s"; "—" when not measured.
pub fn dur(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) if v.abs() >= 10.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or("—".into(), |r| format!("{:.1} %", r * 100.0))
}

/// The report of one run.
pub fn run_report(r: &Results) -> String {
    let f = &r.findings;
    let e = &r.experiment;
    let mut rows = Vec::new();
    let slo = |name: &str| r.slo.checks.iter().find(|c| c.name == name);
    let verdict_cells = |name: &str| match slo(name) {
        Some(c) => (
            c.stated.clone(),
            if c.passed {
                "pass".to_string()
            } else {
                "MISSED".to_string()
            },
        ),
        None => (String::new(), String::new()),
    };
    let (stated, verdict) = verdict_cells("rto");
    let rto = if f.failover.failure_at_ms.is_none() {
        "no failure".to_string()
    } else if !f.failover.recovered {
        "not recovered".to_string()
    } else {
        dur(f.failover.rto_ms)
    };
    rows.push(Row {
        finding: "RTO (every region writing again)".into(),
        observed: rto,
        stated,
        verdict,
    });
    if f.failover.failure_at_ms.is_some() {
        let per_region: Vec<String> = f
            .failover
            .by_region
            .iter()
            .map(|(region, r)| {
                format!(
                    "{region} {}",
                    if r.recovered {
                        dur(r.rto_ms)
                    } else {
                        "never".into()
                    }
                )
            })
            .collect();
        if !per_region.is_empty() {
            rows.push(Row {
                finding: "  by home region".into(),
                observed: per_region.join(", "),
                stated: String::new(),
                verdict: String::new(),
            });
        }
        rows.push(Row {
            finding: "  detect / promote / redirect".into(),
            observed: format!(
                "{} / {} / {}",
                dur(f.failover.detect_ms),
                dur(f.failover.promote_ms),
                dur(f.failover.redirect_ms)
            ),
            stated: String::new(),
            verdict: String::new(),
        });
        rows.push(Row {
            finding: "  read RTO".into(),
            observed: dur(f.failover.read_rto_ms),
            stated: String::new(),
            verdict: String::new(),
        });
    }
    let (stated, verdict) = verdict_cells("rpo");
    let lost = if f.lost_writes.checked {
        format!(
            "{} ({} lost)",
            dur(f.lost_writes.rpo_ms),
            f.lost_writes.count
        )
    } else {
        "not checked".into()
    };
    rows.push(Row {
        finding: "RPO (acked writes lost)".into(),
        observed: lost,
        stated,
        verdict,
    });
    if f.lost_writes.unknown_absent + f.lost_writes.unknown_present > 0 {
        rows.push(Row {
            finding: "  unknown-outcome writes absent/present".into(),
            observed: format!(
                "{} / {}",
                f.lost_writes.unknown_absent, f.lost_writes.unknown_present
            ),
            stated: String::new(),
            verdict: String::new(),
        });
    }
    let (stated, verdict) = verdict_cells("stale_read_rate");
    rows.push(Row {
        finding: "stale reads".into(),
        observed: format!(
            "{} ({} of {}), max age {}",
            pct(f.stale_reads.rate),
            f.stale_reads.count,
            f.stale_reads.reads,
            dur(f.stale_reads.max_age_ms)
        ),
        stated,
        verdict,
    });
    if e.posture.has_standby() {
        let l = &f.replication_lag;
        let unreplicated = if l.unreplicated > 0 {
            format!(" ({} never replicated)", l.unreplicated)
        } else {
            String::new()
        };
        rows.push(Row {
            finding: "replication lag p50 / p99 / max".into(),
            observed: format!(
                "{} / {} / {}{unreplicated}",
                dur(l.p50_ms),
                dur(l.p99_ms),
                dur(l.max_ms)
            ),
            stated: String::new(),
            verdict: String::new(),
        });
        let p = &f.replay_lag;
        rows.push(Row {
            finding: "  PostgreSQL replay_lag p99, max behind".into(),
            observed: format!(
                "{}, {}",
                dur(p.p99_ms),
                p.max_bytes_behind.map_or("—".into(), bytes)
            ),
            stated: String::new(),
            verdict: String::new(),
        });
    }
    let info = |finding: &str, observed: String| Row {
        finding: finding.into(),
        observed,
        stated: String::new(),
        verdict: String::new(),
    };
    if f.read_your_writes.reads_checked > 0 {
        let ryw = &f.read_your_writes;
        rows.push(info(
            "read-your-writes violations",
            format!("{} ({} of {})", pct(ryw.rate), ryw.count, ryw.reads_checked),
        ));
    }
    if f.split_brain.checked {
        let sb = &f.split_brain;
        let window = sb
            .window_ms
            .map_or(String::new(), |w| format!(", over {}", dur(Some(w))));
        rows.push(info(
            "split-brain writes (old primary, after promotion)",
            format!("{}{window}", sb.count),
        ));
    }
    if matches!(
        e.posture,
        Posture::ActiveActiveLww | Posture::ActiveActiveCrdt
    ) && f.lww.checked
    {
        let l = &f.lww;
        rows.push(info(
            "LWW wrong winners / dropped writes",
            format!(
                "{} of {} keys / {} writes, {} diverged",
                l.wrong_winners, l.keys, l.dropped_writes, l.diverged_keys
            ),
        ));
    }
    if f.counters.keys > 0 {
        let c = &f.counters;
        let total = c
            .final_total
            .map_or("not checked".to_string(), |t| t.to_string());
        rows.push(info(
            "counters: acked / converged / lost",
            format!(
                "{} / {total} / {} lost ({} unknown)",
                c.acked, c.lost, c.unknown
            ),
        ));
    }
    if e.posture == Posture::ActiveActivePartitioned && f.conflicts.checked {
        let c = &f.conflicts;
        rows.push(info(
            "conflicting keys (written in both regions)",
            format!("{} of {}", c.conflicting_keys, c.keys_written),
        ));
        rows.push(info(
            "travelling / home users: write p50",
            format!(
                "{} / {}",
                dur(c.travel_writes.p50_ms),
                dur(c.home_writes.p50_ms)
            ),
        ));
    }
    for (region, lat) in &f.latency {
        rows.push(Row {
            finding: format!("{region} users: write / read p50, p99"),
            observed: format!(
                "{} / {}, {} / {}",
                dur(lat.write.p50_ms),
                dur(lat.read.p50_ms),
                dur(lat.write.p99_ms),
                dur(lat.read.p99_ms)
            ),
            stated: String::new(),
            verdict: String::new(),
        });
    }
    for (region, phases) in &f.unavailability {
        let cells: Vec<String> = [Phase::Before, Phase::Fault, Phase::After]
            .iter()
            .filter_map(|p| {
                phases
                    .get(p)
                    .map(|c| format!("{} {}", phase_name(*p), pct(Some(c.rate))))
            })
            .collect();
        rows.push(Row {
            finding: format!("{region} users: failed ops"),
            observed: cells.join(", "),
            stated: String::new(),
            verdict: String::new(),
        });
    }
    rows.push(Row {
        finding: "operations ok / fail / unknown".into(),
        observed: format!(
            "{} / {} / {} of {}",
            f.ops.ok, f.ops.fail, f.ops.unknown, f.ops.total
        ),
        stated: String::new(),
        verdict: String::new(),
    });
    let mut table = Table::new(rows);
    table
        .with(Style::sharp())
        .with(Modify::new(Columns::new(1..)).with(Alignment::left()));
    let header = format!(
        "{} — {} ({}, seed {}): {}",
        e.name,
        e.posture,
        humantime::format_duration(e.duration),
        e.seed,
        if r.slo.passed {
            "SLOs met"
        } else {
            "SLO MISSED"
        }
    );
    format!("{header}\n{table}\n")
}

#[derive(Tabled)]
struct CompareRow {
    experiment: String,
    posture: String,
    #[tabled(rename = "RTO obs/stated")]
    rto: String,
    #[tabled(rename = "RPO obs/stated")]
    rpo: String,
    lost: String,
    #[tabled(rename = "stale")]
    stale: String,
    #[tabled(rename = "lag p99")]
    lag: String,
    verdict: String,
}

/// One row per run, for comparing postures.
pub fn comparison(results: &[Results]) -> String {
    let rows = results.iter().map(|r| {
        let f: &Findings = &r.findings;
        let stated = |n: &str| {
            r.slo
                .checks
                .iter()
                .find(|c| c.name == n)
                .map_or("—".to_string(), |c| c.stated.clone())
        };
        let rto = if f.failover.failure_at_ms.is_some() && !f.failover.recovered {
            "never".into()
        } else {
            dur(f.failover.rto_ms)
        };
        CompareRow {
            experiment: r.experiment.name.clone(),
            posture: r.experiment.posture.to_string(),
            rto: format!("{rto} / {}", stated("rto")),
            rpo: format!(
                "{} / {}",
                if f.lost_writes.checked {
                    dur(f.lost_writes.rpo_ms)
                } else {
                    "?".into()
                },
                stated("rpo")
            ),
            lost: if f.lost_writes.checked {
                f.lost_writes.count.to_string()
            } else {
                "?".into()
            },
            stale: pct(f.stale_reads.rate),
            lag: if r.experiment.posture.has_standby() {
                dur(f.replication_lag.p99_ms)
            } else {
                "—".into()
            },
            verdict: if r.slo.passed {
                "pass".into()
            } else {
                "MISSED".into()
            },
        }
    });
    let mut table = Table::new(rows);
    table.with(Style::sharp());
    format!("{table}\n")
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Before => "before",
        Phase::Fault => "fault",
        Phase::After => "after",
    }
}

fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}
