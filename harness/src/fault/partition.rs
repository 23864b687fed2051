//! Partition: cuts links. A black hole drops bytes (connections stall; both ways or one way);
//! refuse takes the link down (connections closed, new ones refused).

use crate::stack::plan::StackPlan;
use super::{Fault, Running, cuts_monitor, describe_links, select, Need, link_needs};
use crate::fields::LinkSelector;
use crate::fields::{FaultCheck, joins, joins_regions};
use crate::proxy::{self, Direction, Stream};
use crate::stack::{Stack, StackError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `kind = "partition"`: its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `links`: link names; each must exist in the posture. Either this or `between`.
    links: Option<Spanned<Vec<Spanned<String>>>>,
    /// `between`: two distinct regions: every link between them, both ways.
    between: Option<Spanned<Vec<Spanned<String>>>>,
    /// `isolate`: a region: every link between it and any other (the witness included),
    /// both ways. Either this, `links` or `between`.
    isolate: Option<Spanned<String>>,
    /// `mode`: `black_hole` (bytes vanish, connections stall; default) or `refuse`
    /// (connections are closed and refused).
    mode: Option<Spanned<String>>,
    /// `direction`: `both` (default), or one way such as `"us->eu"` (only bytes flowing from
    /// `us` to `eu` are dropped; black_hole only).
    direction: Option<Spanned<String>>,
}

/// Cuts links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The links.
    pub links: LinkSelector,
    /// Black hole or refuse.
    pub mode: PartitionMode,
    /// Both ways or one way (black hole only).
    pub direction: CutDirection,
}

/// How a cut link shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionMode {
    /// Bytes vanish; connections stall.
    BlackHole,
    /// Connections are closed and refused.
    Refuse,
}

impl PartitionMode {
    /// As descriptions say it: "black hole", "refuse".
    pub fn name(self) -> &'static str {
        match self {
            PartitionMode::BlackHole => "black hole",
            PartitionMode::Refuse => "refuse",
        }
    }

    /// `mode` (default `black_hole`), for every kind that cuts links.
    pub(crate) fn check(mode: Option<&Spanned<String>>, cx: &mut FaultCheck<'_>) -> Option<Self> {
        let Some(m) = mode else {
            return Some(PartitionMode::BlackHole);
        };
        match m.get_ref().trim() {
            "black_hole" => Some(PartitionMode::BlackHole),
            "refuse" => Some(PartitionMode::Refuse),
            other => {
                cx.report(
                    m.span(),
                    "mode",
                    format!("unknown partition mode \"{other}\"; one of black_hole, refuse"),
                );
                None
            }
        }
    }

    /// The fault proxy's cut of both directions in this mode.
    pub fn both_ways(self) -> proxy::Partition {
        match self {
            PartitionMode::BlackHole => proxy::Partition::BlackHole(Direction::Both),
            PartitionMode::Refuse => proxy::Partition::Refuse,
        }
    }
}

/// Which way a partition cuts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutDirection {
    /// Both ways.
    Both,
    /// Only bytes flowing from the first region to the second.
    OneWay {
        /// Region the dropped bytes come from.
        from: String,
        /// Region they were going to.
        to: String,
    },
}

impl Fault for Partition {
    type Spec = Spec;

    fn validate(spec: Spec, cx: &mut FaultCheck<'_>) -> Option<Partition> {
        let links = cx.links(spec.links.as_ref(), spec.between.as_ref(), spec.isolate.as_ref());
        let mode = PartitionMode::check(spec.mode.as_ref(), cx);
        let direction = direction(spec.direction.as_ref(), cx, links.as_ref(), mode);
        Some(Partition {
            links: links?,
            mode: mode?,
            direction: direction?,
        })
    }

    async fn start(&self, stack: &Stack) -> Result<Running, StackError> {
        for l in select(stack, &self.links) {
            let how = match (self.mode, &self.direction) {
                (_, CutDirection::Both) | (PartitionMode::Refuse, _) => self.mode.both_ways(),
                (PartitionMode::BlackHole, CutDirection::OneWay { from, .. }) => {
                    // A link's client side is `spec.from`: bytes it sends travel upstream.
                    let stream = if l.spec.from == *from {
                        Stream::Upstream
                    } else {
                        Stream::Downstream
                    };
                    proxy::Partition::BlackHole(Direction::Only(stream))
                }
            };
            l.link.partition(how).await?;
        }
        Ok(Running::nothing())
    }

    async fn heal(&self, stack: &Stack) -> Result<Option<String>, StackError> {
        for l in select(stack, &self.links) {
            l.link.heal_partition().await?;
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        let direction = match &self.direction {
            CutDirection::Both => "both ways".to_string(),
            CutDirection::OneWay { from, to } => format!("{from}→{to} only"),
        };
        format!(
            "partition {} ({}, {direction})",
            describe_links(&self.links),
            self.mode.name()
        )
    }

    fn hits_primary(&self, stack: &Stack) -> bool {
        cuts_monitor(stack, &self.links)
    }

    fn needs(&self, plan: &StackPlan) -> Vec<Need> {
        link_needs(plan, &self.links)
    }
}

/// `direction`: `both` or `from->to` (black_hole only), along the selected links.
fn direction(
    d: Option<&Spanned<String>>,
    cx: &mut FaultCheck<'_>,
    links_sel: Option<&LinkSelector>,
    mode: Option<PartitionMode>,
) -> Option<CutDirection> {
    let Some(d) = d else {
        return Some(CutDirection::Both);
    };
    let text = d.get_ref().trim();
    if text == "both" {
        return Some(CutDirection::Both);
    }
    let parsed = text
        .split_once("->")
        .map(|(from, to)| (from.trim(), to.trim()))
        .filter(|(from, to)| {
            let known = |r: &str| cx.shape().regions.iter().any(|x| x == r);
            known(from) && known(to) && from != to
        });
    let Some((from, to)) = parsed else {
        cx.report(
            d.span(),
            "direction",
            format!("\"{text}\" is not a direction; write \"both\", \"us->eu\" or \"eu->us\""),
        );
        return None;
    };
    if mode == Some(PartitionMode::Refuse) {
        cx.report(
            d.span(),
            "direction",
            "a one-way cut needs mode = \"black_hole\" (a refused connection fails both ways)",
        );
        return None;
    }
    // The cut must be along the selected links: its two ends are the regions they join.
    let stray = match links_sel {
        Some(LinkSelector::Between(a, b)) => {
            (!joins_regions(a, b, from, to)).then(|| format!("between = [{a}, {b}]"))
        }
        Some(LinkSelector::Named(names)) => cx
            .shape()
            .links()
            .into_iter()
            .find(|l| names.contains(&l.name) && !joins(l, from, to))
            .map(|l| format!("link \"{}\" joins {} and {}", l.name, l.from, l.to)),
        Some(LinkSelector::Isolate(r)) => Some(format!("isolate = \"{r}\" cuts every way")),
        None => None,
    };
    if let Some(stray) = stray {
        cx.report(
            d.span(),
            "direction",
            format!("{from}->{to} does not run along the selected links ({stray})"),
        );
        return None;
    }
    Some(CutDirection::OneWay {
        from: from.to_string(),
        to: to.to_string(),
    })
}
