//! `--dry-run`: every fault, command and time a drill would run, printed without contacting
//! anything — what an SRE reads before pointing a drill at a stack that matters.

use super::Target;
use crate::experiment::Experiment;
use crate::fault::{self, Need};
use std::fmt::Write as _;
use std::time::Duration;

/// The drill `exp` would run on `target`, one line per action, in time order, with the
/// refusals (if any) at the end; and those refusals.
pub fn describe(exp: &Experiment, target: &Target) -> (String, Vec<String>) {
    let plan = &crate::stack::external::plan_for(exp.stack_plan(), target);
    let mut actions: Vec<(Duration, String)> = Vec::new();
    for f in &exp.faults {
        let what = fault::describe(&f.fault);
        let needs = fault::needs(&f.fault, plan);
        let ends = f.heal_at.unwrap_or(exp.duration);
        let heal_word = if f.heal_at.is_some() {
            "heal"
        } else {
            "heal (end of workload)"
        };
        actions.push((f.at, format!("start {what}")));
        actions.push((ends, format!("{heal_word} {what}")));
        for need in needs {
            match need {
                Need::Link(link) => {
                    let proxy = target
                        .links
                        .get(&link)
                        .map_or("(none)", |l| l.proxy.as_str());
                    let api = target.toxiproxy.as_deref().unwrap_or("(no Toxiproxy)");
                    actions.push((
                        f.at,
                        format!("  toxics on proxy `{proxy}` (link {link}) at {api}"),
                    ));
                }
                Need::NodeOp(node, op) => {
                    let at = if matches!(op, "kill" | "pause") {
                        f.at
                    } else {
                        ends
                    };
                    let cmd = target
                        .nodes
                        .get(&node)
                        .and_then(|o| o.command(op).map(|c| (c, o.timeout)));
                    let line = match cmd {
                        Some((c, t)) => format!(
                            "  {op} {node}: `{c}` (timeout {})",
                            humantime::format_duration(t)
                        ),
                        None => format!("  {op} {node}: NO COMMAND"),
                    };
                    actions.push((at, line));
                }
                Need::Clock(node) => {
                    actions.push((f.at, format!("  shift {node}'s clock: NOT POSSIBLE")));
                }
            }
        }
    }
    actions.sort_by_key(|(at, _)| *at);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run of {} against {} (nothing is contacted)",
        exp.name,
        target.source.display()
    );
    let _ = writeln!(
        out,
        "workload: {} for {}, {} users at {} operations/s, through {}",
        exp.posture.name(),
        humantime::format_duration(exp.duration),
        exp.workload.users,
        exp.workload.rate_per_s,
        if target.has_app() {
            "the target's apps (HTTP)"
        } else {
            "the target's databases (SQL, database-only mode)"
        }
    );
    for (region, r) in &target.regions {
        let addresses = [
            ("app", &r.app),
            ("db", &r.db),
            ("write_db", &r.write_db),
            ("cache", &r.cache),
        ];
        for (what, addr) in addresses {
            if let Some(a) = addr {
                let _ = writeln!(out, "  {region} {what}: {}", redact(a));
            }
        }
    }
    for (at, line) in &actions {
        let _ = writeln!(
            out,
            "{:>8}  {line}",
            humantime::format_duration(*at).to_string()
        );
    }
    let _ = writeln!(
        out,
        "   after  heal every named link (regiondrill's toxics removed, proxies enabled), \
         restart what was killed, read the final state from the primary"
    );
    let refusals = super::needs::refusals(target, exp);
    if refusals.is_empty() {
        let _ = writeln!(out, "the target can run every step");
    } else {
        let _ = writeln!(out, "REFUSED — the target cannot run this experiment:");
        for r in &refusals {
            let _ = writeln!(out, "  {r}");
        }
    }
    (out, refusals)
}

/// A DSN or URL with any password replaced by `***`.
fn redact(addr: &str) -> String {
    if let Ok(mut url) = reqwest::Url::parse(addr)
        && url.password().is_some()
    {
        let _ = url.set_password(Some("***"));
        return url.to_string();
    }
    addr.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
