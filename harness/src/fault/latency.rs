//! Latency: adds a round trip (± jitter) on links, on top of the regions' baseline RTT. Half
//! goes on each direction, so the stated RTT is what a request and its reply pay.

use crate::stack::plan::StackPlan;
use super::{Fault, Running, describe_links, select, Need, link_needs};
use crate::fields::LinkSelector;
use crate::fields::{FaultCheck, show};
use crate::fields::DurationText;
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toml::Spanned;

/// `kind = "latency"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `links`: link names, e.g. `["replication", "eu-app-to-us-db"]`; each must exist in the
    /// posture. Either this or `between`.
    links: Option<Spanned<Vec<Spanned<String>>>>,
    /// `between`: two distinct regions, e.g. `["us", "eu"]`: every link between them that
    /// exists in the posture, both ways.
    between: Option<Spanned<Vec<Spanned<String>>>>,
    /// `isolate`: a region: every link between it and any other (the witness included),
    /// both ways. Either this, `links` or `between`.
    isolate: Option<Spanned<String>>,
    /// `rtt` (required): added round trip, more than 0 and at most the experiment's
    /// `duration` (longer than `workload.op_timeout` is allowed: every crossing times out).
    rtt: Option<Spanned<DurationText>>,
    /// `jitter`: ± this much on the added round trip; at most `rtt`. Default `"0ms"`.
    jitter: Option<Spanned<DurationText>>,
}

/// Adds a round trip (± jitter) on links, on top of the network's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The links.
    pub links: LinkSelector,
    /// Added round trip.
    #[serde(with = "humantime_serde")]
    pub rtt: Duration,
    /// Jitter on it.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
}

impl Fault for Latency {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<Latency> {
        let links = cx.links(spec.links.as_ref(), spec.between.as_ref(), spec.isolate.as_ref());
        let rtt = cx
            .positive_duration(
                "rtt",
                spec.rtt.as_ref(),
                "the added round trip, e.g. \"80ms\"",
            )
            .and_then(|rtt| match (cx.duration(), &spec.rtt) {
                // Longer than the operation timeout is a legitimate drill (every crossing
                // times out); longer than the run, a typo.
                (Some(d), Some(t)) if rtt > d => {
                    cx.report(
                        t.span(),
                        "rtt",
                        format!(
                            "\"{}\" ({}) is longer than the experiment's duration ({}): no \
                             round trip through these links would complete within the run; \
                             did you mean milliseconds (\"80ms\")?",
                            t.get_ref().0,
                            show(rtt),
                            show(d)
                        ),
                    );
                    None
                }
                _ => Some(rtt),
            });
        let jitter = cx.jitter("jitter", spec.jitter.as_ref(), rtt, "rtt");
        Some(Latency {
            links: links?,
            rtt: rtt?,
            jitter: jitter?,
        })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        for l in select(stack, &self.links) {
            l.link.add_delay(self.rtt, self.jitter).await?;
        }
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        for l in select(stack, &self.links) {
            l.link.remove_delay().await?;
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        let j = if self.jitter.is_zero() {
            String::new()
        } else {
            format!(" ± {}", show(self.jitter))
        };
        format!(
            "latency +{}{j} RTT on {}",
            show(self.rtt),
            describe_links(&self.links)
        )
    }

    fn needs(&self, plan: &StackPlan) -> Vec<Need> {
        link_needs(plan, &self.links)
    }
}
