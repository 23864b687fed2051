//! JUnit XML (`junit.xml`) for CI test reporters (GitHub Actions test-report actions,
//! GitLab, Jenkins): one `<testsuite>` per experiment (named after it), one `<testcase>` per
//! stated SLO (`name` = the SLO: `rto`, `rpo`, `stale_read_rate`; `classname` =
//! `experiment/posture`), with `<failure message="stated 6s, observed 7.2s">` when missed.
//! An experiment that states no SLO still has one passing testcase, `ran`, so it shows up;
//! one that could not run has a testcase `run` with an `<error>`. Each suite carries the run's
//! facts as `<properties>` and the terminal report as `<system-out>`.
//!
//! The shape is the common JUnit schema: `testsuites` › `testsuite` (`name`, `tests`,
//! `failures`, `errors`, `skipped`, `time`, and `timestamp` from the run id) › `testcase`
//! (`name`, `classname`, `time`) › `failure` / `error` (`message`, `type`). Testcases take
//! no time of their own (`time="0"`); a suite's time is the whole run's, in seconds.

use super::Entry;
use super::cells::{self, xml_escape as escape};
use super::terminal;
use std::fmt::Write;

/// A JUnit document with a suite per entry; `name` names the `<testsuites>`.
pub fn document(name: &str, entries: &[Entry]) -> String {
    let suites: Vec<Suite> = entries.iter().map(suite).collect();
    let (tests, failures, errors) = suites.iter().fold((0, 0, 0), |(t, f, e), s| {
        (t + s.tests, f + s.failures, e + s.errors)
    });
    let time: f64 = suites.iter().map(|s| s.time_s).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">",
        escape(&format!("regiondrill {name}"))
    );
    for s in &suites {
        xml.push_str(&s.xml);
    }
    xml.push_str("</testsuites>\n");
    xml
}

struct Suite {
    tests: usize,
    failures: usize,
    errors: usize,
    time_s: f64,
    xml: String,
}

fn suite(entry: &Entry) -> Suite {
    let experiment = entry.experiment();
    let classname = escape(&format!("{experiment}/{}", entry.posture()));
    let mut cases = String::new();
    let (tests, failures, errors, time_s, extra) = match *entry {
        Entry::CouldNotRun { error, .. } => {
            let _ = writeln!(
                cases,
                "    <testcase name=\"run\" classname=\"{classname}\" time=\"0\">\n      \
                 <error message=\"{}\" type=\"could-not-run\">{}</error>\n    </testcase>",
                escape(&format!("could not run: {}", first_line(error))),
                escape(error)
            );
            (1, 0, 1, 0.0, (String::new(), String::new()))
        }
        Entry::Ran(r) => {
            let mut failures = 0;
            for c in &r.slo.checks {
                if c.passed {
                    let _ = writeln!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{classname}\" time=\"0\"/>",
                        escape(&c.name)
                    );
                } else {
                    failures += 1;
                    let message = format!("stated {}, observed {}", c.stated, c.observed);
                    let _ = writeln!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{classname}\" time=\"0\">\n      \
                         <failure message=\"{}\" type=\"slo-missed\">{}: {}</failure>\n    \
                         </testcase>",
                        escape(&c.name),
                        escape(&message),
                        escape(&cells::slo_title(&c.name)),
                        escape(&message)
                    );
                }
            }
            if r.slo.checks.is_empty() {
                let _ = writeln!(
                    cases,
                    "    <testcase name=\"ran\" classname=\"{classname}\" time=\"0\"/>"
                );
            }
            let t = &r.run.timings;
            let time_s =
                (t.bring_up_ms + t.workload_ms + t.heal_settle_ms + t.teardown_ms + t.check_ms)
                    / 1000.0;
            let e = &r.experiment;
            let mut props = String::from("    <properties>\n");
            for (k, v) in [
                ("posture", e.posture.name().to_string()),
                ("scenario", e.scenario.clone().unwrap_or_default()),
                ("seed", e.seed.to_string()),
                (
                    "duration",
                    humantime::format_duration(e.duration).to_string(),
                ),
                ("run_id", r.run.id.clone()),
                ("backend", r.run.backend.clone()),
                ("fault_proxy", r.run.fault_proxy.clone()),
            ] {
                if !v.is_empty() {
                    let _ = writeln!(
                        props,
                        "      <property name=\"{k}\" value=\"{}\"/>",
                        escape(&v)
                    );
                }
            }
            props.push_str("    </properties>\n");
            let out = format!(
                "    <system-out>{}</system-out>\n",
                escape(&terminal::run_report(r))
            );
            (r.slo.checks.len().max(1), failures, 0, time_s, (props, out))
        }
    };
    let timestamp = match entry {
        Entry::Ran(r) => timestamp(&r.run.id)
            .map(|t| format!(" timestamp=\"{t}\""))
            .unwrap_or_default(),
        Entry::CouldNotRun { .. } => String::new(),
    };
    let mut xml = String::new();
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"0\" time=\"{time_s:.3}\"{timestamp}>",
        escape(experiment)
    );
    xml.push_str(&extra.0);
    xml.push_str(&cases);
    xml.push_str(&extra.1);
    xml.push_str("  </testsuite>\n");
    Suite {
        tests,
        failures,
        errors,
        time_s,
        xml,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// ISO 8601 (UTC) from a run id `yyyymmdd-hhmmss-…`, when it has that shape.
fn timestamp(run_id: &str) -> Option<String> {
    let b = run_id.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..8) && b.get(8) == Some(&b'-') && digits(9..15)) {
        return None;
    }
    let s = &run_id[..15];
    Some(format!(
        "{}-{}-{}T{}:{}:{}",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "[31mred[0m");
    }

    #[test]
    fn timestamps_from_run_ids() {
        assert_eq!(
            timestamp("20260115-093012-ap-async-1f2e").as_deref(),
            Some("2026-01-15T09:30:12")
        );
        assert_eq!(timestamp("my-run"), None);
    }
}
