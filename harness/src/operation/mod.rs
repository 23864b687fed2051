//! Operations: what an operator does on purpose, on the schedule beside the faults —
//! `rejoin` (a deposed primary made a standby of the new primary: rewound, or re-cloned when
//! the rewind fails) and `switchover` (a planned move of the primary to the standby).
//!
//! A sibling of [`crate::fault`], not fault kinds: an operation breaks nothing and heals
//! nothing, is never "in effect" (so it is never the failure a failover reacted to, nor a
//! fault phase of the failed-ops table), and runs to its end before the schedule's next item
//! (a switchover after a rejoin waits for it). Each records its own steps as history events
//! (`rejoin_started`, `divergent_writes`, `rejoined`, `caught_up`, `switchover_started`,
//! `writes_stopped`, `switched_over`), which `checker::failback` reads.
//!
//! # Adding a kind
//! A file here with its type and its `run`, a variant of [`Operation`], its name in [`KINDS`]
//! and its keys in [`validate`].

pub mod rejoin;
pub mod switchover;

use crate::experiment::spec::OperationEntry;
use crate::fields::Checker;
use crate::posture::Posture;
use crate::record::Recorder;
use crate::stack::Stack;
use crate::stack::topology::REGIONS;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toml::Spanned;

pub use rejoin::Rejoin;
pub use switchover::Switchover;

/// Every operation's name, as `kind = "…"` takes it.
pub const KINDS: &[&str] = &["rejoin", "switchover"];

/// What an operation does: one variant per kind. Serialized as `{"kind": "<name>", …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// `kind = "rejoin"`: [`Rejoin`].
    Rejoin(Rejoin),
    /// `kind = "switchover"`: [`Switchover`].
    Switchover(Switchover),
}

impl Operation {
    /// One line, e.g. "switchover to us (writes stopped)".
    pub fn describe(&self) -> String {
        match self {
            Operation::Rejoin(o) => o.describe(),
            Operation::Switchover(o) => o.describe(),
        }
    }

    /// Runs it to its end; what went wrong, in words, when it could not complete.
    pub async fn run(&self, stack: &Stack, recorder: &Recorder) -> Result<(), String> {
        match self {
            Operation::Rejoin(o) => o.run(stack, recorder).await,
            Operation::Switchover(o) => o.run(stack, recorder).await,
        }
    }
}

/// An operation and when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledOperation {
    /// Offset from the start of the workload.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// What it does.
    pub operation: Operation,
}

/// Checks `[[operations]]` entry `i`; None once a problem has been reported.
pub(crate) fn validate(
    c: &mut Checker,
    i: usize,
    entry: &Spanned<OperationEntry>,
    posture: Option<Posture>,
    duration: Option<Duration>,
) -> Option<ScheduledOperation> {
    let e = entry.get_ref();
    let p = |key: &str| format!("operations[{i}].{key}");
    let kinds = KINDS.join(", ");
    let kind = match &e.kind {
        None => {
            c.report(entry.span(), p("kind"), format!("required: one of {kinds}"));
            None
        }
        Some(k) => match k.get_ref().trim() {
            known @ ("rejoin" | "switchover") => {
                let active_passive = posture.map(|p| p.has_standby() && !p.is_active_active());
                if active_passive == Some(false) {
                    c.report(
                        k.span(),
                        p("kind"),
                        format!(
                            "{known} needs a primary and a standby: an active-passive posture \
                             (this one is {})",
                            posture.expect("known")
                        ),
                    );
                    None
                } else {
                    Some(known)
                }
            }
            other => {
                c.report(
                    k.span(),
                    p("kind"),
                    format!("unknown operation \"{other}\"; one of {kinds}"),
                );
                None
            }
        },
    };
    let at = match &e.at {
        None => {
            c.report(
                entry.span(),
                p("at"),
                "required: when the operation starts, from the start of the workload, e.g. \"12s\"",
            );
            None
        }
        Some(text) => c
            .parse_duration(&p("at"), text)
            .and_then(|at| match duration {
                Some(d) if at >= d => {
                    c.report(
                        text.span(),
                        p("at"),
                        format!(
                            "{} is not before the end of the workload ({})",
                            crate::fields::show(at),
                            crate::fields::show(d)
                        ),
                    );
                    None
                }
                _ => Some(at),
            }),
    };
    let only_switchover = |c: &mut Checker, key: &str, span: std::ops::Range<usize>| {
        c.report(
            span,
            p(key),
            "only a switchover takes this key (a rejoin takes kind and at)",
        );
    };
    let operation = match kind? {
        "rejoin" => {
            let mut ok = true;
            if let Some(to) = &e.to {
                only_switchover(c, "to", to.span());
                ok = false;
            }
            if let Some(s) = &e.stop_writes {
                only_switchover(c, "stop_writes", s.span());
                ok = false;
            }
            ok.then_some(Operation::Rejoin(Rejoin {}))
        }
        _ => {
            let to = match &e.to {
                None => Some(crate::stack::topology::PRIMARY_REGION.to_string()),
                Some(r) if REGIONS.contains(&r.get_ref().trim()) => {
                    Some(r.get_ref().trim().to_string())
                }
                Some(r) => {
                    c.report(
                        r.span(),
                        p("to"),
                        format!(
                            "unknown region \"{}\"; one of {}",
                            r.get_ref(),
                            REGIONS.join(", ")
                        ),
                    );
                    None
                }
            };
            to.map(|to| {
                Operation::Switchover(Switchover {
                    to,
                    stop_writes: e.stop_writes.as_ref().is_none_or(|s| *s.get_ref()),
                })
            })
        }
    };
    Some(ScheduledOperation {
        at: at?,
        operation: operation?,
    })
}
